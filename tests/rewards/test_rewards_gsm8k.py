"""gsm8k: the last number of the response, by value."""

import json

import pytest

from rlvr.rewards import run_verifier
from rlvr.rewards.gsm8k import last_number, numbers_equal, parse_label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("Total: 1,234,567 dollars", "1234567"),
        ("items 1,2,3", "3"),
        ("It dropped to -3.5 degrees.", "-3.5"),
        ("a \u22127 result", "-7"),
        ("about .5 of it", ".5"),
        ("The answer is 42.", "42"),
        ("no digits here", None),
        ("12,34", "34"),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_numbers_equal_by_value():
    assert numbers_equal("18", "18.00")
    assert numbers_equal("-0", "0")
    assert not numbers_equal("18", "18.5")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("18", "18"),
        (" 1,000 ", "1000"),
        (42, "42"),
        (2.5, "2.5"),
        ("Work... #### 70,000", "70000"),
        ("+5.", "5"),
    ],
)
def test_parse_label(label, expected):
    assert parse_label(label) == expected


@pytest.mark.parametrize("label", [None, True, "twelve", "1e5", [1]])
def test_bad_labels_score_zero_with_the_reason(label):
    result = run_verifier("gsm8k", "12", label)
    assert result.score == 0.0 and "LabelError" in result.details["error"]


def test_verifier_details():
    result = run_verifier("gsm8k", "He has 5 apples, then 7.", "7")
    assert result.score == 1.0 and result.verifier == "gsm8k"
    assert result.details == {"extracted": "7", "label": "7"}
    assert run_verifier("gsm8k", "nothing", "7").details["reason"] == "no number in the response"


def test_real_gsm8k_test_set(benchmark_data):
    rows = [json.loads(line) for line in (benchmark_data / "gsm8k_test.jsonl").open()]
    assert len(rows) == 40
    answers = [row["answer"].rsplit("####", 1)[1].strip() for row in rows]
    for i, row in enumerate(rows):
        assert run_verifier("gsm8k", row["answer"], answers[i]).score == 1.0, row["answer"]
        j = next(
            k
            for k in range(i + 1, i + len(rows))
            if not numbers_equal(parse_label(answers[k % len(rows)]), parse_label(answers[i]))
        )
        assert run_verifier("gsm8k", row["answer"], answers[j % len(rows)]).score == 0.0
