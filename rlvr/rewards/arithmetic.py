"""The worked arithmetic of an answer: equations `a op b = c` written in it that are false.

A math verifier checks the final answer only, so `21 - 9 = 10. 10 - 8 = 4. #### 4` passes when the
label is 4. As the *chosen* side of a preference pair such an answer teaches the wrong steps; the
`rlvr prefs` judge uses `false_equations` to keep it out of that role (`judge.check_arithmetic`).

Only single binary operations between plain numbers are checked (`12 + 7 = 19`, `3.5 × 4 = 14`,
`1,200 / 4 = 300`); anything else in the text (chains, units, LaTeX, variables) is left alone, so a
response is flagged only for an equation that is certainly false.
"""

from __future__ import annotations

import re

_NUMBER = r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?"
_OPERATORS = "+-*/×÷^"
# `c` not followed by more of an expression (`= 6/8`, `= 10 + 2`)
_EQUATION = re.compile(
    rf"({_NUMBER})\s*([-+*/×÷])\s*({_NUMBER})\s*=\s*({_NUMBER})(?![\d.]*\s*[-+*/×÷^(]\s*\d)"
)


def _inside_expression(text: str, start: int) -> bool:
    """`a` continues something before it: a longer number, a word, or an operator (`2 * 3 + 4 = 10`
    is one expression, not `3 + 4 = 10`)."""
    if start and (text[start - 1].isalnum() or text[start - 1] in "._"):
        return True
    before = text[:start].rstrip()
    return bool(before) and before[-1] in "(" + _OPERATORS


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def _holds(a: float, op: str, b: float, c: float, decimals: int) -> bool:
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op in "*×":
        value = a * b
    else:
        if b == 0:
            return False
        value = a / b
        if decimals:  # a quotient written rounded to the digits shown (10 / 3 = 3.33)
            return abs(round(value, decimals) - c) <= 10**-decimals / 2
    return abs(value - c) <= 1e-9 * max(1.0, abs(c))


def false_equations(text: str) -> list[str]:
    """The equations `a op b = c` in `text` whose two sides differ, as written."""
    out = []
    for match in _EQUATION.finditer(text):
        if _inside_expression(text, match.start()):
            continue
        a, op, b, c = match.groups()
        decimals = len(c.split(".")[1]) if "." in c else 0
        if not _holds(_value(a), op, _value(b), _value(c), decimals):
            out.append(match.group(0).strip())
    return out
