"""Tülu 3's IF constraints: ``{"func_name": "validate_lowercase", <kwargs>}`` labels.

The 25 functions of open-instruct's `if_functions.IF_FUNCTIONS_MAP`, re-implemented with the
names, argument names and semantics of its current version. That version fixed bugs of the one Tülu 3
trained with, and the fixed behaviour is kept here: `validate_placeholders` returned a (truthy)
tuple so it always passed, `validate_choice` tested ``text in option`` instead of ``option in text``,
`validate_sections` counted raw splitter occurrences, and "around" for capital words meant exactly N.
Null kwargs are dropped, as open-instruct does (the RLVR data pads every key with null).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from rlvr.rewards.contract import LabelError, VerifierResult, register
from rlvr.rewards.ifeval_util import detect_language


def _quantified(count: int, N: int, quantifier: str, tolerance: int) -> bool:
    if quantifier == "at least":
        return count >= N
    if quantifier == "at most":
        return count <= N
    if quantifier == "around":
        return abs(count - N) <= tolerance
    return False


def verify_keywords(text: str, keyword_list: list[str]) -> bool:
    return all(keyword.lower() in text.lower() for keyword in keyword_list)


def verify_keyword_frequency(text: str, word: str, N: int) -> bool:
    return sum(1 for w in re.findall(r"\b\w+\b", text.lower()) if w == word.lower()) == N


def validate_forbidden_words(text: str, forbidden_words: list[str]) -> bool:
    return not any(word.lower() in text.lower() for word in forbidden_words)


def verify_letter_frequency(text: str, letter: str, N: int) -> bool:
    if len(letter) != 1:
        raise LabelError("letter must be a single character")
    return text.count(letter) == N


def validate_response_language(text: str, language: str) -> bool:
    detected = detect_language(text)
    if detected is None:  # open-instruct lets langdetect raise here, which scores the row 0
        raise ValueError("langdetect found no features in the text")
    return detected == language


def verify_paragraph_count(text: str, N: int) -> bool:
    text = "\n".join(line.strip() for line in text.splitlines()).strip()
    paragraphs = text.split("* * *")
    return all(p.strip() for p in paragraphs) and len(paragraphs) == N


def validate_word_constraint(text: str, N: int, quantifier: str) -> bool:
    return _quantified(len(text.strip().split()), N, quantifier, max(round(N * 0.1), 1))


def verify_sentence_constraint(text: str, N: int, quantifier: str) -> bool:
    sentences = re.split(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?|!)\s", text)
    return _quantified(len(sentences), N, quantifier, 1)


def validate_paragraphs(text: str, N: int, first_word: str, i: int) -> bool:
    paragraphs = text.split("\n\n")
    if len(paragraphs) != N:
        return False
    if not 1 <= i <= N:
        raise LabelError(f"paragraph index i={i} is outside 1..{N}")
    return paragraphs[i - 1].strip().startswith(first_word)


def verify_postscript(text: str, postscript_marker: str) -> bool:
    index = text.find(postscript_marker)
    return index >= 0 and len(text[index:].strip()) > len(postscript_marker)


def validate_placeholders(text: str, N: int) -> bool:
    return len(re.findall(r"\[(.*?)\]", text)) >= N


def verify_bullet_points(text: str, N: int) -> bool:
    return sum(1 for line in text.split("\n") if line.strip().startswith(("*", "-"))) == N


def validate_title(text: str) -> bool:
    return bool(re.findall(r"<<(.*?)>>", text))


def validate_choice(text: str, options: list[str]) -> bool:
    return any(option in text for option in options)


def validate_highlighted_sections(text: str, N: int) -> bool:
    return len(re.findall(r"\*(.*?)\*", text)) >= N


def validate_sections(text: str, N: int, section_splitter: str) -> bool:
    pattern = r"\s?" + re.escape(section_splitter) + r"\s?\d+\s?"
    return len(re.split(pattern, text, flags=re.IGNORECASE)) - 1 >= N


def validate_json_format(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def validate_repeat_prompt(text: str, original_prompt: str) -> bool:
    return text.startswith(original_prompt)


def validate_two_responses(text: str) -> bool:
    if text.count("******") != 1:
        return False
    first, second = (part.strip() for part in text.split("******"))
    return first != second


def validate_uppercase(text: str) -> bool:
    return text == text.upper()


def validate_lowercase(text: str) -> bool:
    return text == text.lower()


def validate_frequency_capital_words(text: str, N: int, quantifier: str) -> bool:
    return _quantified(len(re.findall(r"\b[A-Z]+\b", text)), N, quantifier, max(round(N * 0.1), 1))


def validate_end(text: str, end_phrase: str) -> bool:
    return text.endswith(end_phrase)


def validate_quotation(text: str) -> bool:
    return text.startswith('"') and text.endswith('"')


def validate_no_commas(text: str) -> bool:
    return "," not in text


IF_FUNCTIONS: dict[str, Callable[..., bool]] = {
    fn.__name__: fn
    for fn in (
        verify_keywords, verify_keyword_frequency, validate_forbidden_words, verify_letter_frequency,
        validate_response_language, verify_paragraph_count, validate_word_constraint,
        verify_sentence_constraint, validate_paragraphs, verify_postscript, validate_placeholders,
        verify_bullet_points, validate_title, validate_choice, validate_highlighted_sections,
        validate_sections, validate_json_format, validate_repeat_prompt, validate_two_responses,
        validate_uppercase, validate_lowercase, validate_frequency_capital_words, validate_end,
        validate_quotation, validate_no_commas,
    )
}  # fmt: skip


def _as_dict(label: Any) -> Any:
    if isinstance(label, str) and '"func_name"' in label:
        try:
            return json.loads(label)
        except ValueError:
            return label
    return label


def is_tulu_label(label: Any) -> bool:
    """True for a ``{"func_name": ...}`` label (object or JSON string)."""
    label = _as_dict(label)
    return isinstance(label, dict) and "func_name" in label


def parse_label(label: Any) -> tuple[str, dict[str, Any]]:
    label = _as_dict(label)
    if not isinstance(label, dict) or "func_name" not in label:
        raise LabelError('a Tülu IF label is an object with "func_name" (and the function\'s arguments)')
    name = label["func_name"]
    if name not in IF_FUNCTIONS:
        raise LabelError(f"unknown IF function {name!r}")
    return name, {k: v for k, v in label.items() if k != "func_name" and v is not None}


@register("tulu_if", aliases=("ifeval_old", "if_functions"))
def tulu_if(prediction: str, label: Any, prompt: str | None = None) -> VerifierResult:
    """1 if the prediction satisfies the Tülu 3 IF function named in the label, else 0."""
    name, kwargs = parse_label(label)
    try:
        followed = IF_FUNCTIONS[name](prediction, **kwargs)
    except TypeError as err:  # wrong or missing argument names in the label
        raise LabelError(f"{name}: {err}") from None
    return VerifierResult(float(followed), {"func_name": name, "kwargs": kwargs, "followed": bool(followed)})
