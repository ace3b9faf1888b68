"""GSM8K: the last number in the response equals the label.

Thousands separators are removed only where they are separators (``1,234,567``), so a list such as
``1,2,3`` still ends in ``3``; the sign (``-`` or the Unicode minus) and decimals are kept, and
numbers compare by value (``18.0`` equals ``18``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from rlvr.rewards.contract import LabelError, VerifierResult, register

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
MAX_DIGITS = 1000
"""Longer numbers are compared as text: Decimal arithmetic on megabyte-long digit runs is slow."""


def last_number(text: str) -> str | None:
    """The last number in `text` as written, thousands separators removed; None if there is none."""
    text = _THOUSANDS.sub("", text.replace("\u2212", "-"))
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 — only the last match is wanted
        pass
    return last.group(0) if last else None


def _canonical(number: str) -> Decimal | str:
    return number if len(number) > MAX_DIGITS else Decimal(number)


def numbers_equal(a: str, b: str) -> bool:
    """Equal by value: ``18`` = ``18.00`` = ``+18``; -0 = 0."""
    return _canonical(a) == _canonical(b)


def parse_label(label: Any) -> str:
    """A GSM8K label as a number string: accepts numbers, ``"1,000"``, or a full solution ending in ``#### N``."""
    if isinstance(label, bool) or not isinstance(label, str | int | float):
        raise LabelError(f"gsm8k label must be a number or a string, got {type(label).__name__}")
    text = str(label)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = _THOUSANDS.sub("", text.strip().replace("\u2212", "-").lstrip("+").rstrip("."))
    try:
        if len(text) <= MAX_DIGITS:
            Decimal(text)
    except InvalidOperation:
        raise LabelError(f"gsm8k label {str(label)[:100]!r} is not a number") from None
    if not _NUMBER.fullmatch(text):
        raise LabelError(f"gsm8k label {str(label)[:100]!r} is not a plain number")
    return text


@register("gsm8k")
def gsm8k(prediction: str, label: Any, prompt: str | None = None) -> VerifierResult:
    """1 if the last number in `prediction` equals `label` by value, else 0."""
    gold = parse_label(label)
    extracted = last_number(prediction)
    if extracted is None:
        return VerifierResult(0.0, {"extracted": None, "label": gold, "reason": "no number in the response"})
    details = {"extracted": extracted[:100], "label": gold[:100]}
    return VerifierResult(float(numbers_equal(extracted, gold)), details)
