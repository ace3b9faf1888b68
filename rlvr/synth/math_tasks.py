"""`math` exercises (fractions, like terms, linear equations) with the answer in `\\boxed{}`."""

from __future__ import annotations

import math as pymath
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from rlvr.synth.common import Problem, Unbuildable
from rlvr.synth.config import MathConfig


@dataclass(frozen=True)
class Exercise:
    """A math exercise before it is written up: its answer, typical wrong answers and working."""

    key: str
    prompt: str
    right: Fraction
    slips: tuple[Fraction, ...]
    """Typical mistakes, in order of preference (those equal to `right` are skipped)."""
    working: Callable[[Fraction], str]
    """The worked steps arriving at a given (right or wrong) result."""
    variable: str = ""
    """For like terms: the answer is `right` times this variable."""


def latex(value: Fraction) -> str:
    """The canonical label form: `5`, `\\frac{3}{4}`, `-\\frac{1}{2}`."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def equivalent_forms(value: Fraction) -> list[str]:
    """Other spellings of a non-integer `value` a symbolic checker must accept (none for integers)."""
    if value.denominator == 1:
        return []
    sign = "-" if value < 0 else ""
    p, q = abs(value.numerator), value.denominator
    forms = [f"{sign}\\dfrac{{{p}}}{{{q}}}", f"{sign}{p}/{q}"]
    decimal = Fraction(p, q) * 1000
    if decimal.denominator == 1:  # terminates within three decimal places
        forms.append(f"{sign}{float(Fraction(p, q))}")
    return forms


def _frac(p: int, q: int) -> str:
    return f"\\frac{{{p}}}{{{q}}}"


def _then_reduced(p: int, q: int) -> str:
    """` = \\frac{p'}{q'}` when `p/q` is not in lowest terms, else nothing."""
    value = Fraction(p, q)
    return "" if (value.numerator, value.denominator) == (p, q) else f" = {latex(value)}"


def _simplify(rng: random.Random, cfg: MathConfig) -> Exercise:
    assert cfg.max_denominator is not None
    q = rng.randint(2, cfg.max_denominator)
    p = rng.choice([p for p in range(1, q) if pymath.gcd(p, q) == 1])
    m = rng.randint(2, 4)
    template = rng.choice(("Simplify ${}$.", "Write ${}$ in lowest terms.", "Reduce ${}$ to lowest terms."))

    def working(result: Fraction) -> str:
        return f"{m * p} / {m} = {result.numerator} and {m * q} / {m} = {result.denominator}."

    right = Fraction(p, q)
    slips = (Fraction(q, p), Fraction(p + 1, q))
    return Exercise(f"simplify:{m * p}/{m * q}", template.format(_frac(m * p, m * q)), right, slips, working)


def _two_fractions(rng: random.Random, cfg: MathConfig, same_denominator: bool) -> tuple[int, int, int, int]:
    assert cfg.max_denominator is not None
    b = rng.randint(2, cfg.max_denominator)
    d = b if same_denominator else rng.randint(2, cfg.max_denominator)
    return rng.randint(1, b - 1), b, rng.randint(1, d - 1), d


def _add_or_subtract(rng: random.Random, cfg: MathConfig, op: str) -> Exercise:
    a, b, c, d = _two_fractions(rng, cfg, same_denominator=not cfg.unlike_denominators or rng.random() < 0.5)
    if op == "-" and Fraction(a, b) < Fraction(c, d):
        a, b, c, d = c, d, a, b
    if op == "-" and Fraction(a, b) == Fraction(c, d):
        raise Unbuildable("the difference is zero")
    common = b * d // pymath.gcd(b, d)
    a2, c2 = a * common // b, c * common // d
    numerator = a2 + c2 if op == "+" else a2 - c2
    expression = f"{_frac(a, b)} {op} {_frac(c, d)}"
    rewritten = "" if b == d else f" = {_frac(a2, common)} {op} {_frac(c2, common)}"

    def working(result: Fraction) -> str:
        if result == Fraction(numerator, common):
            return (
                f"${expression}{rewritten} = {_frac(numerator, common)}{_then_reduced(numerator, common)}$."
            )
        return f"${expression}{rewritten} = {latex(result)}$."

    right = Fraction(numerator, common)
    combined = Fraction(a + c, b + d) if op == "+" else Fraction(abs(a - c), max(abs(b - d), 1))
    slips = (combined, right + Fraction(1, common))
    kind = "add" if op == "+" else "subtract"
    template = rng.choice(("Compute ${}$.", "What is ${}$?", "Find ${}$ in lowest terms."))
    return Exercise(f"{kind}:{a}/{b}{op}{c}/{d}", template.format(expression), right, slips, working)


def _multiply(rng: random.Random, cfg: MathConfig) -> Exercise:
    a, b, c, d = _two_fractions(rng, cfg, same_denominator=False)
    expression = f"{_frac(a, b)} \\cdot {_frac(c, d)}"

    def working(result: Fraction) -> str:
        if result == Fraction(a * c, b * d):
            return f"${expression} = {_frac(a * c, b * d)}{_then_reduced(a * c, b * d)}$."
        return f"${expression} = {latex(result)}$."

    slips = (Fraction(a * d, b * c), Fraction(a * c + 1, b * d))
    template = rng.choice(("Compute ${}$.", "What is ${}$?"))
    return Exercise(
        f"multiply:{a}/{b}*{c}/{d}", template.format(expression), Fraction(a * c, b * d), slips, working
    )


def _like_terms(rng: random.Random, cfg: MathConfig) -> Exercise:
    assert cfg.max_coefficient is not None
    coefficients = [rng.randint(1, cfg.max_coefficient) for _ in range(rng.randint(2, 3))]
    signs = ["+"] + [rng.choice("+-") for _ in coefficients[1:]]
    total = sum(c if s == "+" else -c for c, s in zip(coefficients, signs, strict=True))
    if total <= 0:
        raise Unbuildable("the coefficients cancel")
    var = rng.choice("xyn")
    terms = " ".join(f"{s} {c}{var}" for c, s in zip(coefficients, signs, strict=True))[2:]
    arithmetic = " ".join(f"{s} {c}" for c, s in zip(coefficients, signs, strict=True))[2:]

    def working(result: Fraction) -> str:
        return f"{arithmetic} = {result}, so ${terms} = {_monomial(result, var)}$."

    slips = (Fraction(sum(coefficients)), Fraction(total + 1))
    template = rng.choice(("Simplify ${}$.", "Combine like terms: ${}$."))
    return Exercise(f"like_terms:{arithmetic}", template.format(terms), Fraction(total), slips, working, var)


def _monomial(coefficient: Fraction, var: str) -> str:
    return var if coefficient == 1 else f"{coefficient}{var}"


def _linear(rng: random.Random, cfg: MathConfig) -> Exercise:
    assert cfg.max_coefficient is not None
    a = rng.randint(2, cfg.max_coefficient)
    if cfg.fractional_solutions and rng.random() < 0.5:
        x = Fraction(rng.randint(1, 3 * a), a)
    else:
        x = Fraction(rng.randint(1, cfg.max_coefficient))
    b = rng.randint(1, 20)
    c = int(a * x) + b
    var = rng.choice("xyn")

    def working(result: Fraction) -> str:
        return f"${a}{var} = {c} - {b} = {c - b}$, so ${var} = {latex(result)}$."

    slips = (Fraction(c + b, a), x + 1)
    template = rng.choice(("Solve for ${v}$: ${e}$.", "Find ${v}$ if ${e}$."))
    return Exercise(
        f"linear:{a}x+{b}={c}", template.format(v=var, e=f"{a}{var} + {b} = {c}"), x, slips, working
    )


MATH_EXERCISES: dict[str, Callable[[random.Random, MathConfig], Exercise]] = {
    "simplify": _simplify,
    "add": lambda rng, cfg: _add_or_subtract(rng, cfg, "+"),
    "subtract": lambda rng, cfg: _add_or_subtract(rng, cfg, "-"),
    "multiply": _multiply,
    "like_terms": _like_terms,
    "linear": _linear,
}


def math_problem(rng: random.Random, cfg: MathConfig) -> Problem:
    """A fraction, like-terms or linear-equation exercise; the answer goes in `\\boxed{}`."""
    assert cfg.kinds is not None
    ex = MATH_EXERCISES[rng.choice(cfg.kinds)](rng, cfg)
    wrong = next((s for s in ex.slips if s != ex.right and s > 0), ex.right + 1)
    if ex.variable:
        label, shown, shown_wrong = (_monomial(v, ex.variable) for v in (ex.right, ex.right, wrong))
    else:
        forms = equivalent_forms(ex.right)
        label, shown_wrong = latex(ex.right), latex(wrong)
        shown = rng.choice(forms) if forms and rng.random() < cfg.equivalent_form_share else label
    return Problem(
        verifier="math",
        key="math:" + ex.key,
        prompt=ex.prompt,
        ground_truth=label,
        answer=f"{ex.working(ex.right)} The answer is $\\boxed{{{shown}}}$.",
        near_miss=f"{ex.working(wrong)} The answer is $\\boxed{{{shown_wrong}}}$.",
    )
