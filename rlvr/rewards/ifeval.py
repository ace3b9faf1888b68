"""IFEval: the 25 instruction types of google-research's instruction_following_eval.

Each check is re-implemented from the official `instructions.py` (the current version of the
google-research repository) instruction by instruction; `kwargs` are validated as its
`build_description` does, except that a missing or out-of-range argument is a label error here
instead of being replaced by a random value. Scoring modes follow `evaluation_lib.py`:

- strict: the response as is (an empty response follows nothing);
- loose: an instruction is followed if any of 8 variants follows it — the response with its first
  line, last line or both removed, each with and without ``*`` characters.

Score = fraction of instructions followed (or 1/0 for all/any with ``all_or_nothing=True``).
The label is ``{"instruction_id_list": [...], "kwargs": [...]}`` (object or JSON string; open-instruct's
``instruction_id`` key is accepted too). A label in Tülu 3's ``{"func_name": ...}`` form is routed to
`rlvr.rewards.tulu_if`, so the ``ifeval`` name serves both kinds of RLVR data.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable
from typing import Any, Literal

from rlvr.rewards import ifeval_util, tulu_if
from rlvr.rewards.contract import LabelError, VerifierResult, on_warm_up, register
from rlvr.rewards.ifeval_util import count_sentences, count_words, detect_language, word_tokenize

on_warm_up(ifeval_util.warm_up)
Mode = Literal["strict", "loose"]
_RELATIONS = ("less than", "at least")
_CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


# --- the checks: check(response, **kwargs) -> bool, kwargs already validated ---------------------


def keywords_existence(value: str, keywords: list[str]) -> bool:
    return all(re.search(keyword, value, flags=re.IGNORECASE) for keyword in sorted(keywords))


def keywords_frequency(value: str, keyword: str, frequency: int, relation: str) -> bool:
    return _compare(len(re.findall(keyword.strip(), value, flags=re.IGNORECASE)), relation, frequency)


def forbidden_words(value: str, forbidden_words: list[str]) -> bool:
    return not any(
        re.search(r"\b" + word + r"\b", value, flags=re.IGNORECASE) for word in set(forbidden_words)
    )


def letter_frequency(value: str, letter: str, let_frequency: int, let_relation: str) -> bool:
    return _compare(collections.Counter(value.lower())[letter.strip().lower()], let_relation, let_frequency)


def response_language(value: str, language: str) -> bool:
    detected = detect_language(value)
    return detected is None or detected == language  # undetectable counts as followed, as in IFEval


def number_sentences(value: str, num_sentences: int, relation: str) -> bool:
    return _compare(count_sentences(value), relation, num_sentences)


def number_paragraphs(value: str, num_paragraphs: int) -> bool:
    paragraphs = re.split(r"\s?\*\*\*\s?", value)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False
    return count == num_paragraphs


def number_words(value: str, num_words: int, relation: str) -> bool:
    return _compare(count_words(value), relation, num_words)


def nth_paragraph_first_word(value: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    paragraphs = re.split(r"\n\n", value)
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    if nth_paragraph > count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for letter in word:
        if letter in {".", ",", "?", "!", "'", '"'}:
            break
        first += letter.lower()
    return count == num_paragraphs and first == first_word.lower()


def number_placeholders(value: str, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", value)) >= num_placeholders


def postscript(value: str, postscript_marker: str) -> bool:
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, value.lower(), flags=re.MULTILINE))


def number_bullet_lists(value: str, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", value, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def constrained_response(value: str) -> bool:
    value = value.strip()
    return any(option in value for option in _CONSTRAINED_RESPONSES)


def number_highlighted_sections(value: str, num_highlights: int) -> bool:
    count = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
    count += sum(
        1 for h in re.findall(r"\*\*[^\n\*]*\*\*", value) if h.removeprefix("**").removesuffix("**").strip()
    )
    return count >= num_highlights


def multiple_sections(value: str, section_spliter: str, num_sections: int) -> bool:
    sections = re.split(r"\s?" + section_spliter.strip() + r"\s?\d+\s?", value)
    return len(sections) - 1 >= num_sections


def json_format(value: str) -> bool:
    value = value.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(prefix)
    try:
        json.loads(value.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def title(value: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))


def two_responses(value: str) -> bool:
    responses = value.split("******")
    valid = []
    for index, response in enumerate(responses):
        if response.strip():
            valid.append(response)
        elif index not in (0, len(responses) - 1):
            return False
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def repeat_prompt(value: str, prompt_to_repeat: str) -> bool:
    return value.strip().lower().startswith(prompt_to_repeat.strip().lower())


def end_checker(value: str, end_phrase: str) -> bool:
    return value.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def capital_word_frequency(value: str, capital_frequency: int, capital_relation: str) -> bool:
    capitals = sum(1 for word in word_tokenize(value) if word.isupper())
    return _compare(capitals, capital_relation, capital_frequency)


def english_capital(value: str) -> bool:
    if not value.isupper():
        return False
    detected = detect_language(value)
    return detected is None or detected == "en"


def english_lowercase(value: str) -> bool:
    if not value.islower():
        return False
    detected = detect_language(value)
    return detected is None or detected == "en"


def no_comma(value: str) -> bool:
    return "," not in value


def quotation(value: str) -> bool:
    value = value.strip()
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


# --- the registry: instruction id -> (check, required kwargs with their kinds) --------------------

_INT, _STR, _LIST, _REL = "int", "str", "list", "relation"

INSTRUCTIONS: dict[str, tuple[Callable[..., bool], dict[str, str]]] = {
    "keywords:existence": (keywords_existence, {"keywords": _LIST}),
    "keywords:frequency": (keywords_frequency, {"keyword": _STR, "frequency": _INT, "relation": _REL}),
    "keywords:forbidden_words": (forbidden_words, {"forbidden_words": _LIST}),
    "keywords:letter_frequency": (
        letter_frequency,
        {"letter": _STR, "let_frequency": _INT, "let_relation": _REL},
    ),
    "language:response_language": (response_language, {"language": _STR}),
    "length_constraints:number_sentences": (number_sentences, {"num_sentences": _INT, "relation": _REL}),
    "length_constraints:number_paragraphs": (number_paragraphs, {"num_paragraphs": _INT}),
    "length_constraints:number_words": (number_words, {"num_words": _INT, "relation": _REL}),
    "length_constraints:nth_paragraph_first_word": (
        nth_paragraph_first_word,
        {"num_paragraphs": _INT, "nth_paragraph": _INT, "first_word": _STR},
    ),
    "detectable_content:number_placeholders": (number_placeholders, {"num_placeholders": _INT}),
    "detectable_content:postscript": (postscript, {"postscript_marker": _STR}),
    "detectable_format:number_bullet_lists": (number_bullet_lists, {"num_bullets": _INT}),
    "detectable_format:constrained_response": (constrained_response, {}),
    "detectable_format:number_highlighted_sections": (number_highlighted_sections, {"num_highlights": _INT}),
    "detectable_format:multiple_sections": (
        multiple_sections,
        {"section_spliter": _STR, "num_sections": _INT},
    ),
    "detectable_format:json_format": (json_format, {}),
    "detectable_format:title": (title, {}),
    "combination:two_responses": (two_responses, {}),
    "combination:repeat_prompt": (repeat_prompt, {"prompt_to_repeat": _STR}),
    "startend:end_checker": (end_checker, {"end_phrase": _STR}),
    "change_case:capital_word_frequency": (
        capital_word_frequency,
        {"capital_frequency": _INT, "capital_relation": _REL},
    ),
    "change_case:english_capital": (english_capital, {}),
    "change_case:english_lowercase": (english_lowercase, {}),
    "punctuation:no_comma": (no_comma, {}),
    "startend:quotation": (quotation, {}),
}


def _validated(instruction_id: str, kwargs: Any) -> dict[str, Any]:
    """The kwargs of one instruction, checked; null values dropped (HF IFEval pads every key with null)."""
    if instruction_id not in INSTRUCTIONS:
        raise LabelError(f"unknown IFEval instruction id {instruction_id!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise LabelError(f"{instruction_id}: kwargs must be an object, got {type(kwargs).__name__}")
    given = {k: v for k, v in kwargs.items() if v is not None}
    wanted = INSTRUCTIONS[instruction_id][1]
    unexpected = sorted(set(given) - set(wanted))
    missing = sorted(set(wanted) - set(given))
    if unexpected or missing:
        raise LabelError(f"{instruction_id}: missing kwargs {missing}, unexpected kwargs {unexpected}")
    for key, kind in wanted.items():
        value = given[key]
        ok = {
            _INT: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            _STR: isinstance(value, str) and bool(value.strip()),
            _LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
            _REL: value in _RELATIONS,
        }[kind]
        if not ok:
            raise LabelError(f"{instruction_id}: bad {key}={value!r}")
    if instruction_id == "keywords:letter_frequency" and len(given["letter"]) != 1:
        raise LabelError(f"{instruction_id}: letter must be a single character, got {given['letter']!r}")
    if (
        instruction_id.endswith("nth_paragraph_first_word")
        and not 0 < given["nth_paragraph"] <= given["num_paragraphs"]
    ):
        raise LabelError(f"{instruction_id}: nth_paragraph must be in 1..num_paragraphs")
    return given


def parse_label(label: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[(instruction_id, kwargs), ...]`` from an IFEval label (object or JSON string)."""
    if isinstance(label, str):
        try:
            label = json.loads(label)
        except ValueError as err:
            raise LabelError(f"ifeval label is not valid JSON: {err}") from None
    if isinstance(label, list) and len(label) == 1:
        label = label[0]
    if not isinstance(label, dict):
        raise LabelError(f"ifeval label must be an object, got {type(label).__name__}")
    ids = label.get("instruction_id_list", label.get("instruction_id"))
    kwargs = label.get("kwargs")
    if not isinstance(ids, list) or not ids:
        raise LabelError("ifeval label needs a non-empty 'instruction_id_list'")
    if kwargs is None:
        kwargs = [{}] * len(ids)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise LabelError("ifeval label 'kwargs' must be a list parallel to 'instruction_id_list'")
    return [(i, _validated(i, k)) for i, k in zip(ids, kwargs, strict=True)]


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode variants: first/last line removed, ``*`` removed, in the official order."""
    lines = response.split("\n")
    first, last, both = ("\n".join(part).strip() for part in (lines[1:], lines[:-1], lines[1:-1]))
    no_stars = [text.replace("*", "") for text in (response, first, last, both)]
    return [response, no_stars[0], first, last, both, *no_stars[1:]]


def follows(response: str, instruction_id: str, kwargs: dict[str, Any], mode: Mode = "strict") -> bool:
    """Does `response` follow one instruction? (kwargs as returned by `parse_label`)."""
    check = INSTRUCTIONS[instruction_id][0]
    variants = [response] if mode == "strict" else loose_variants(response)
    return any(text.strip() and check(text, **kwargs) for text in variants)


@register("ifeval")
def ifeval(
    prediction: str,
    label: Any,
    prompt: str | None = None,
    mode: Mode = "strict",
    all_or_nothing: bool = False,
) -> VerifierResult:
    """Fraction of the label's IFEval instructions the prediction follows (see the module doc)."""
    if mode not in ("strict", "loose"):
        raise ValueError(f"ifeval mode must be 'strict' or 'loose', got {mode!r}")
    if tulu_if.is_tulu_label(label):
        return tulu_if.tulu_if(prediction, label, prompt)
    instructions = parse_label(label)
    with ifeval_util.language_memo():
        verdicts = [{"id": i, "followed": follows(prediction, i, kwargs, mode)} for i, kwargs in instructions]
    followed = sum(v["followed"] for v in verdicts)
    score = float(followed == len(verdicts)) if all_or_nothing else followed / len(verdicts)
    return VerifierResult(
        score, {"mode": mode, "followed": followed, "total": len(verdicts), "instructions": verdicts}
    )
