"""The `math` and `strict_math` verifiers (MATH / Minerva style answers).

Cheapest test first: equal after normalisation (text), then exact rational comparison of plain
numbers (``0.5`` = ``\\frac{1}{2}``), and only then sympy — in a sandbox worker with a hard
deadline (`rlvr.rewards.sandbox`), because symbolic checks can hang. A check that runs out of time
returns score 0 with ``timed_out=True``: it is reported as a timeout, not as a wrong answer.
"""

from __future__ import annotations

import time
from typing import Any

from rlvr.rewards import sandbox
from rlvr.rewards.contract import LabelError, VerifierResult, on_warm_up, register
from rlvr.rewards.math_normalize import as_number, candidates, canonical, hendrycks_strip, minerva_normalize

DEFAULT_TIMEOUT = 5.0
"""Seconds of symbolic checking allowed per row (the sum over its candidate answers)."""
SYMBOLIC_CHECK = "rlvr.rewards.latex_sympy:symbolic_equal"
on_warm_up(sandbox.warm_up)


def _labels(label: Any) -> list[str]:
    labels = label if isinstance(label, list) else [label]
    out = []
    for item in labels:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise LabelError(
                f"math label must be a string or number (or a list of them), got {type(item).__name__}"
            )
        if not str(item).strip():
            raise LabelError("math label is empty")
        out.append(str(item))
    if not out:
        raise LabelError("math label list is empty")
    return out


def text_equal(answer: str, gold: str) -> bool:
    """Equal after any of the normalisations (canonical, Hendrycks alone, Minerva alone)."""
    return (
        canonical(answer) == canonical(gold)
        or hendrycks_strip(answer) == hendrycks_strip(gold)
        or minerva_normalize(answer) == minerva_normalize(gold)
    )


def _verify(prediction: str, label: Any, strict: bool, timeout: float) -> VerifierResult:
    golds = _labels(label)
    found = candidates(prediction, strict=strict)
    details: dict[str, Any] = {
        "candidates": [{"source": s, "answer": a[:200]} for s, a in found],
        "label": golds[0],
    }
    if not found:
        details["reason"] = "no answer found (or longer than an answer can be)"
        return VerifierResult(0.0, details)
    pairs = [(answer, gold) for _, answer in found for gold in golds]
    for answer, gold in pairs:
        if text_equal(answer, gold):
            return VerifierResult(1.0, {**details, "matched": answer[:200], "how": "text"})
    undecided = []
    for answer, gold in pairs:
        a, g = canonical(answer), canonical(gold)
        value_a, value_g = as_number(a), as_number(g)
        if value_a is not None and value_g is not None:
            if value_a == value_g:
                return VerifierResult(1.0, {**details, "matched": answer[:200], "how": "numeric"})
        else:
            undecided.append((a, g))
    deadline = time.monotonic() + timeout
    timed_out, notes = False, []
    for a, g in undecided:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        outcome = sandbox.run(SYMBOLIC_CHECK, a, g, timeout=remaining)
        if outcome.status == "timeout":
            timed_out = True
        elif outcome.status == "error":
            notes.append(f"error: {outcome.error}")
        elif outcome.value[0]:
            return VerifierResult(1.0, {**details, "matched": a[:200], "how": "symbolic"})
        else:
            notes.append(outcome.value[1])  # "symbolic" (compared, unequal) or why it could not be parsed
    if notes:
        details["symbolic_checks"] = notes
    if timed_out:
        details["reason"] = f"symbolic check exceeded its {timeout:g}s deadline"
    return VerifierResult(0.0, details, timed_out=timed_out)


@register("math", aliases=("hendrycks_math", "minerva_math", "math500"))
def math_verifier(
    prediction: str, label: Any, prompt: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> VerifierResult:
    """1 if the last boxed / Minerva / ``$...$`` answer equals the label (text, number or sympy)."""
    return _verify(prediction, label, strict=False, timeout=timeout)


@register("strict_math")
def strict_math(
    prediction: str, label: Any, prompt: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> VerifierResult:
    """Like `math`, but only the Minerva "Final Answer: The final answer is X" form counts."""
    return _verify(prediction, label, strict=True, timeout=timeout)
