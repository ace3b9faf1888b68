"""Testing a verifier by itself: cases in, a pass/fail table out.

    report = check_verifier("my_verifier", [
        Case("The answer is 42.", "42", expected=1.0),
        Case("No idea.", "42", expected=0.0, name="no number"),
    ])
    print(report.table())
    report.assert_passed()          # in a pytest test

`check_verifier` also runs the robustness probes of the verifier contract (empty, megabyte-long,
deeply nested and invalid-UTF-8 predictions; missing and malformed labels): each must come back with
a score in [0, 1] within `time_limit` seconds — through `call_verifier`, so an exception there is
reported as the verifier's error, exactly as training would see it. Each probe runs in a forked
child that is killed at the time limit, so a verifier that hangs (a quadratic regex on a megabyte
response, say) fails its probe instead of hanging the harness.
"""

from __future__ import annotations

import multiprocessing
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rlvr.rewards.contract import Verifier, VerifierResult, call_verifier, get_verifier


@dataclass
class Case:
    """One test case: `expected` is an exact score or an inclusive ``(low, high)`` range."""

    prediction: Any
    label: Any
    expected: float | tuple[float, float]
    prompt: str | None = None
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    name: str
    passed: bool
    score: float
    expected: str
    seconds: float
    note: str


@dataclass
class HarnessReport:
    verifier: str
    outcomes: list[Outcome]

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    def table(self) -> str:
        width = max([len(o.name) for o in self.outcomes] + [4])
        lines = [f"{'case':<{width}}  result  score   expected     time  note"]
        for o in self.outcomes:
            verdict = "pass" if o.passed else "FAIL"
            lines.append(
                f"{o.name:<{width}}  {verdict:<6}  {o.score:<6.3f}  {o.expected:<10}  {o.seconds:>5.2f}s  {o.note}"
            )
        failed = sum(not o.passed for o in self.outcomes)
        lines.append(f"{self.verifier}: {len(self.outcomes) - failed} passed, {failed} failed")
        return "\n".join(lines)

    def assert_passed(self) -> None:
        if not self.passed:
            raise AssertionError("verifier cases failed:\n" + self.table())


def _case(item: Case | Mapping[str, Any] | tuple[Any, ...]) -> Case:
    if isinstance(item, Case):
        return item
    if isinstance(item, Mapping):
        return Case(**item)
    return Case(*item)


def _within(score: float, expected: float | tuple[float, float]) -> bool:
    low, high = expected if isinstance(expected, tuple) else (expected, expected)
    return low - 1e-9 <= score <= high + 1e-9


def _note(result: VerifierResult) -> str:
    if result.timed_out:
        return "timed out"
    return str(result.details.get("error", ""))[:80]


def _probe_child(fn: Verifier, prediction: str, label: Any, conn: Any) -> None:
    conn.send(call_verifier(fn, prediction, label))


def _run_probe(fn: Verifier, prediction: str, label: Any, time_limit: float) -> VerifierResult | None:
    """`call_verifier` in a forked child, killed after `time_limit` seconds (None then)."""
    if sys.platform != "linux":  # no fork: run in-process, the time is still checked afterwards
        return call_verifier(fn, prediction, label)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_probe_child, args=(fn, prediction, label, send), daemon=True)
    child.start()
    send.close()
    result = receive.recv() if receive.poll(time_limit) else None
    child.kill()
    child.join()
    receive.close()
    return result


ROBUSTNESS_PREDICTIONS: dict[str, str] = {
    "empty prediction": "",
    "whitespace prediction": " \n\t ",
    "lone surrogates": "answer \ud800\udfff\udc80 42",
    "megabyte prediction": "9" * 1_000_000,
    "deeply nested braces": "\\boxed{" * 5000 + "1" + "}" * 5000,
    "huge exponent": "$\\boxed{9^{9^{9^{9}}}}$",
}
ROBUSTNESS_LABELS: dict[str, Any] = {
    "null label": None,
    "empty-object label": {},
    "malformed JSON label": '{"a": [1,',
}


def check_verifier(
    verifier: str | Verifier,
    cases: Iterable[Case | Mapping[str, Any] | tuple[Any, ...]],
    robustness: bool = True,
    time_limit: float = 10.0,
) -> HarnessReport:
    """Run `cases` (and, with `robustness`, the contract's probes) through `verifier`."""
    fn = get_verifier(verifier) if isinstance(verifier, str) else verifier
    name = verifier if isinstance(verifier, str) else getattr(verifier, "__name__", repr(verifier))
    outcomes = []
    cases = [_case(item) for item in cases]
    for index, case in enumerate(cases, start=1):
        result = call_verifier(fn, case.prediction, case.label, case.prompt, case.options)
        expected = case.expected if isinstance(case.expected, tuple) else (case.expected,)
        outcomes.append(
            Outcome(
                case.name or f"case {index}",
                _within(result.score, case.expected),
                result.score,
                "-".join(f"{e:g}" for e in expected),
                result.seconds,
                _note(result),
            )
        )
    if robustness:
        label = cases[0].label if cases else "1"
        probes = [(n, p, label) for n, p in ROBUSTNESS_PREDICTIONS.items()]
        probes += [(n, "The answer is 1.", bad) for n, bad in ROBUSTNESS_LABELS.items()]
        for probe, prediction, probe_label in probes:
            start = time.perf_counter()
            result = _run_probe(fn, prediction, probe_label, time_limit)
            seconds = time.perf_counter() - start
            if result is None:
                note = f"did not finish within {time_limit:g}s (killed)"
                outcomes.append(Outcome(f"[probe] {probe}", False, 0.0, "in [0,1]", seconds, note))
                continue
            ok = seconds <= time_limit and 0.0 <= result.score <= 1.0
            outcomes.append(Outcome(f"[probe] {probe}", ok, result.score, "in [0,1]", seconds, _note(result)))
    return HarnessReport(name, outcomes)


def math_rewrites(answer: str) -> list[str]:
    """Equivalent ways to write a MATH answer, for testing math verifiers.

    ``\\dfrac``↔``\\frac``, spacing, swapped terms of a sum, ``\\frac{X}{Y}`` as ``(X)/(Y)``, ``\\left(``/``\\right)``, ``\\text{}``, degree marks, ``x =``,
    decimal↔fraction, thousands separators, ``a\\sqrt{b}``↔``\\sqrt{a^2 b}``; empty when none applies.
    """
    a = answer.strip()
    out = []
    if "\\frac" in a:
        out.append(a.replace("\\frac", "\\dfrac"))
    if "\\dfrac" in a:
        out.append(a.replace("\\dfrac", "\\frac"))
    if "," in a or "+" in a:  # spacing, leaving thousands separators (58,500 and 10,\!080) alone
        out.append(re.sub(r"\s*(\+|,(?!\d{3}(?!\d)|\\!))\s*", r" \1 ", a))
    terms = re.fullmatch(r"([^+,=]+)\+([^+,=]+)", a)
    if terms and terms.group(1).count("{") == terms.group(1).count("}"):
        out.append(f"{terms.group(2).strip()} + {terms.group(1).strip()}")
    quotient = re.fullmatch(r"\\[dt]?frac\{([^{}]*\\[^{}]*)\}\{([^{}]+)\}", a)
    if quotient:  # a fraction with a command inside (\pi, \sqrt): written as a quotient
        out.append(f"({quotient.group(1)})/({quotient.group(2)})")
    if len(a) > 2 and a[0] in "([" and a[-1] in ")]" and "," in a and "\\left" not in a:
        out.append(f"\\left{a[0]} {a[1:-1]} \\right{a[-1]}")
    if re.fullmatch(r"-?\d+", a):
        out += [f"{a}^\\circ", f"{a}^{{\\circ}}", f"\\text{{{a}}}", f"x = {a}", f"{a}.0"]
        if abs(int(a)) >= 1000:
            out.append(f"{int(a):,}")
            out.append(f"{int(a):,}".replace(",", "{,}"))
    fraction = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", a)
    if fraction and int(fraction.group(3)) != 0:
        value = Fraction(int(fraction.group(2)), int(fraction.group(3)))
        denominator = value.denominator
        for prime in (2, 5):
            while denominator % prime == 0:
                denominator //= prime
        if denominator == 1:  # a terminating decimal
            out.append(fraction.group(1) + str(float(value)))
        out.append(f"{fraction.group(1)}{fraction.group(2)}/{fraction.group(3)}")
    if re.fullmatch(r"-?\d+\.\d+", a):
        value = Fraction(a)
        out.append(f"\\frac{{{value.numerator}}}{{{value.denominator}}}")
    root = re.fullmatch(r"(\d+)\\sqrt\{(\d+)\}", a)
    if root:
        out.append(f"\\sqrt{{{int(root.group(1)) ** 2 * int(root.group(2))}}}")
    return [rewrite for rewrite in dict.fromkeys(out) if rewrite != a]
