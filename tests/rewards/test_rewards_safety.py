"""Safety: hard deadlines from any thread or process, timeouts reported, pathological input bounded."""

import multiprocessing
import threading
import time

import pytest

from rlvr.rewards import math_verifiers, run_verifier, sandbox
from rlvr.rewards.harness import ROBUSTNESS_LABELS, ROBUSTNESS_PREDICTIONS

# catastrophic backtracking inside the C regex engine: ignores signals, only a kill stops it
STALL = ("re:match", "(a+)+$", "a" * 40 + "b")


@pytest.fixture(scope="module", autouse=True)
def warm_worker():
    sandbox.warm_up()
    yield


def _timed(function, *args, timeout):
    start = time.monotonic()
    outcome = sandbox.run(function, *args, timeout=timeout)
    return outcome, time.monotonic() - start


def test_a_stuck_worker_is_killed_and_replaced():
    before = sandbox.stats()["killed"]
    outcome, elapsed = _timed(*STALL, timeout=0.5)
    assert outcome.status == "timeout"
    assert elapsed < 2.0
    assert sandbox.stats()["killed"] == before + 1
    ok, _ = _timed("operator:add", 2, 3, timeout=60)
    assert (ok.status, ok.value) == ("ok", 5)


def test_errors_in_the_worker_are_returned_not_raised():
    outcome, _ = _timed("json:loads", "{", timeout=60)
    assert outcome.status == "error" and "JSONDecodeError" in outcome.error


def test_deadline_holds_from_a_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(_timed(*STALL, timeout=0.5)))
    thread.start()
    thread.join(30)
    ((outcome, elapsed),) = results
    assert outcome.status == "timeout" and elapsed < 2.0


def _in_pool_worker(_):
    outcome, elapsed = _timed(*STALL, timeout=0.5)
    return outcome.status, elapsed


def test_deadline_holds_from_a_daemonic_pool_process():
    with multiprocessing.get_context("fork").Pool(1) as pool:
        status, elapsed = pool.map(_in_pool_worker, [0])[0]
    assert status == "timeout" and elapsed < 2.0


def test_math_timeout_is_reported_not_silently_wrong(monkeypatch):
    monkeypatch.setattr(math_verifiers, "SYMBOLIC_CHECK", "re:match")
    start = time.monotonic()
    result = run_verifier("math", "$\\boxed{(a+)+b}$", "a" * 40 + "c", options={"timeout": 0.5})
    assert time.monotonic() - start < 2.0
    assert result.score == 0.0 and result.timed_out and result.details["timed_out"] is True
    assert "deadline" in result.details["reason"]


PATHOLOGICAL = {
    **ROBUSTNESS_PREDICTIONS,
    "tower in the label's place": "$\\boxed{9^9^9^9}$",
    "megabyte of one line": "Final Answer: The final answer is " * 30_000,
    "megabyte of dollars": "$1$ " * 250_000,
    "invalid utf-8 escaped": "abc\udcff\udcfe answer 4",
}
LABELS = {
    "gsm8k": "4",
    "math": "9^{9^{9^{9}}}",
    "strict_math": "4",
    "ifeval": {
        "instruction_id_list": ["length_constraints:number_sentences", "change_case:capital_word_frequency",
                                "language:response_language", "keywords:existence"],
        "kwargs": [{"num_sentences": 3, "relation": "at least"}, {"capital_frequency": 2, "capital_relation": "at least"},
                   {"language": "en"}, {"keywords": ["answer"]}],
    },
    "tulu_if": {"func_name": "verify_sentence_constraint", "N": 2, "quantifier": "at least"},
    "exact_match": "4",
    "f1": "4",
}  # fmt: skip


@pytest.mark.parametrize("verifier", sorted(LABELS))
def test_pathological_input_finishes_within_the_deadline(verifier):
    for name, prediction in PATHOLOGICAL.items():
        start = time.monotonic()
        result = run_verifier(
            verifier, prediction, LABELS[verifier], options={"timeout": 2.0} if "math" in verifier else {}
        )
        elapsed = time.monotonic() - start
        # run_verifier keeps every score in [0, 1]; what it hides is a verifier that crashed (scored 0,
        # "error") or left the range (clipped, "clipped_from")
        assert "error" not in result.details and "clipped_from" not in result.details, (name, result)
        assert elapsed < 5.0, f"{verifier} took {elapsed:.1f}s on {name}"
    for name, label in ROBUSTNESS_LABELS.items():
        result = run_verifier(verifier, "The answer is 4.", label)
        assert result.score == 0.0 or verifier in ("exact_match", "f1"), (name, result)


def test_huge_exponents_are_refused_fast_not_timed_out():
    result = run_verifier("math", "$\\boxed{9^{9^{9^{9}}}}$", "1")
    assert result.score == 0.0 and not result.timed_out
    assert result.details["symbolic_checks"] == ["unparsed: number too large to evaluate"]
