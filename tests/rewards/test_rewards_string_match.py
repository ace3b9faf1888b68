"""exact_match and f1: SQuAD normalisation, max over labels, <answer> tags."""

import pytest

from rlvr.rewards import run_verifier
from rlvr.rewards.string_match import extract_answer, normalize_answer, token_f1


def test_normalize_answer():
    assert normalize_answer("  The Eiffel-Tower!  ") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"


def test_extract_answer():
    assert extract_answer("think... <answer>Paris</answer>") == "Paris"
    assert extract_answer("<answer>a</answer> then <answer>b</answer>") == "b"
    assert extract_answer("just Paris") == "just Paris"


def test_token_f1_hand_values():
    assert token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("Cat", "the cat") == 1.0


def test_exact_match_max_over_labels():
    result = run_verifier("exact_match", "<answer>The Paris</answer>", ["London", "paris"])
    assert result.score == 1.0 and result.details["matched"] == "paris"
    assert run_verifier("exact_match", "Lyon", ["London", "Paris"]).score == 0.0
    assert run_verifier("string_matcher", "42", 42).score == 1.0


def test_f1_max_over_labels():
    result = run_verifier("f1", "the cat sat", ["dog", "cat sat down"])
    assert result.score == pytest.approx(0.8) and result.details["best_label"] == "cat sat down"


@pytest.mark.parametrize("label", [None, [], [None], {"a": 1}])
def test_bad_labels(label):
    assert "LabelError" in run_verifier("f1", "x", label).details["error"]
