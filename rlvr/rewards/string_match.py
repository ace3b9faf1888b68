"""Exact string match and token F1 (SQuAD normalisation), each the max over a list of labels.

The answer is the content of the last ``<answer>...</answer>`` when the response has one, else the
whole response. Normalisation (lowercase, punctuation and the articles a/an/the removed, whitespace
collapsed) follows the SQuAD evaluation script, as open-instruct's string verifiers do.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

from rlvr.rewards.contract import LabelError, VerifierResult, register

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def extract_answer(prediction: str) -> str:
    """The last ``<answer>`` span's content, or the whole prediction."""
    end = prediction.rfind("</answer>")
    start = prediction.rfind("<answer>", 0, end) if end >= 0 else -1
    return prediction[start + len("<answer>") : end] if start >= 0 else prediction


def token_f1(prediction: str, label: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(label).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _labels(label: Any) -> list[str]:
    labels = label if isinstance(label, list) else [label]
    if not labels or not all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in labels
    ):
        raise LabelError("a string-match label is a string or a non-empty list of strings")
    return [str(item) for item in labels]


@register("exact_match", aliases=("string_matcher", "exact"))
def exact_match(prediction: str, label: Any, prompt: str | None = None) -> VerifierResult:
    """1 if the normalised answer equals any normalised label."""
    labels, answer = _labels(label), extract_answer(prediction)
    normalized = normalize_answer(answer)
    matched = next((gold for gold in labels if normalize_answer(gold) == normalized), None)
    return VerifierResult(float(matched is not None), {"extracted": answer[:200], "matched": matched})


@register("f1", aliases=("string_f1", "token_f1"))
def f1(prediction: str, label: Any, prompt: str | None = None) -> VerifierResult:
    """Token F1 between the answer and the best-matching label."""
    labels, answer = _labels(label), extract_answer(prediction)
    scores = [token_f1(answer, gold) for gold in labels]
    best = max(range(len(labels)), key=scores.__getitem__)
    return VerifierResult(scores[best], {"extracted": answer[:200], "best_label": labels[best]})
