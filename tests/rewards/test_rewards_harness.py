"""The harness for custom verifiers: cases in, pass/fail table out, contract probes."""

import re
import time

import pytest

from rlvr.rewards import Case, VerifierResult, check_verifier, register, unregister


def ends_with_label(prediction: str, label, prompt=None) -> VerifierResult:
    return VerifierResult(float(prediction.rstrip().endswith(str(label))), {"tail": prediction[-20:]})


def test_passing_cases_and_probes():
    report = check_verifier(
        ends_with_label,
        [
            Case("it is 42", "42", 1.0, name="match"),
            ("it is 41", "42", 0.0),
            {"prediction": "x 42", "label": 42, "expected": (0.5, 1.0)},
        ],
    )
    assert report.passed, report.table()
    table = report.table()
    assert "match" in table and "case 2" in table and "[probe] megabyte prediction" in table
    assert table.splitlines()[-1] == f"ends_with_label: {len(report.outcomes)} passed, 0 failed"
    report.assert_passed()


def test_failures_are_shown():
    report = check_verifier(ends_with_label, [Case("it is 41", "42", 1.0, name="wrong")], robustness=False)
    assert not report.passed
    assert "FAIL" in report.table()
    with pytest.raises(AssertionError, match="wrong"):
        report.assert_passed()


def test_a_slow_verifier_fails_the_probes():
    def slow(prediction, label, prompt=None):
        if len(prediction) > 100_000:
            time.sleep(0.3)
        return 0.0

    report = check_verifier(slow, [Case("a", "b", 0.0)], time_limit=0.1)
    failed = [o.name for o in report.outcomes if not o.passed]
    assert failed == ["[probe] megabyte prediction"]


def test_a_hanging_verifier_is_killed_and_reported():
    def quadratic(prediction, label, prompt=None):
        return float(bool(re.findall(r"(\d+)\s*([a-z]+)", prediction)))  # O(n^2) on a long digit run

    start = time.monotonic()
    report = check_verifier(quadratic, [Case("42 km", "x", 1.0)], time_limit=1.0)
    assert time.monotonic() - start < 15
    failed = {o.name: o.note for o in report.outcomes if not o.passed}
    assert failed == {"[probe] megabyte prediction": "did not finish within 1s (killed)"}


def test_a_raising_verifier_is_reported_by_name():
    @register("fragile_demo")
    def fragile(prediction, label, prompt=None):
        return float(prediction.split()[1] == label)

    try:
        report = check_verifier("fragile_demo", [Case("a b", "b", 1.0)])
        notes = {o.name: o.note for o in report.outcomes}
        assert "IndexError" in notes["[probe] empty prediction"]
        assert report.passed  # an exception is a 0 with its reason, which is within the contract
    finally:
        unregister("fragile_demo")
