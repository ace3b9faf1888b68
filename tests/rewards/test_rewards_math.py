"""math / strict_math: extraction, normalisation, the LaTeX parser, equivalence, and MATH-500."""

import json
import random
import re
import time

import pytest

from rlvr.rewards import run_verifier
from rlvr.rewards.harness import math_rewrites
from rlvr.rewards.latex_sympy import ParseError, parse_answer, parse_expr, symbolic_equal
from rlvr.rewards.math_normalize import (
    MAX_ANSWER_CHARS,
    as_number,
    candidates,
    canonical,
    hendrycks_strip,
    last_boxed,
    last_dollar,
    minerva_answer,
    minerva_normalize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{1} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5$ and more", "5"),
        ("\\boxed{unbalanced", None),
        ("no box", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


MINERVA = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.")


@pytest.mark.parametrize(
    "text",
    [
        "Final Answer: The final answer is $5$. I hope it is correct.",
        "Final Answer: The final answer is 5",
        "Final Answer: The final answer is 5\nI hope it is correct.",
        "x Final Answer: The final answer is 1 Final Answer: The final answer is 2. I hope it is correct.",
        "Final Answer: The final answer is 3.\nFinal Answer: The final answer is 4. I hope it is correct.",
        "nothing here",
    ],
)
def test_minerva_answer_matches_the_harness_regex(text):
    match = MINERVA.search(text + "I hope it is correct.")
    assert minerva_answer(text) == (match.group(1).strip() if match else None)


def test_minerva_answer_is_linear_on_a_long_repetitive_line():
    prefix = "Final Answer: The final answer is "
    text = prefix * 50_000  # 1.7 MB: the harness regex is quadratic here and takes minutes
    start = time.monotonic()
    answer = minerva_answer(text)
    assert time.monotonic() - start < 2.0  # a few milliseconds when linear
    # what the regex finds: from the first prefix's end up to the `.` it needs before " I hope ..."
    short = prefix * 3
    assert MINERVA.search(short + "I hope it is correct.").group(1).strip() == short[len(prefix) : -2]
    assert answer == text[len(prefix) : -2]


def test_last_dollar_and_candidates():
    assert last_dollar("a $x$ and $y+1$.") == "y+1"
    assert last_dollar("one $ only") is None
    assert candidates("$\\boxed{3}$ Final Answer: The final answer is $3$. I hope it is correct.") == [
        ("boxed", "3"),
        ("minerva", "$3$"),
    ]
    assert candidates("so $x = 4$.") == [("dollars", "x = 4")]
    assert candidates("\\boxed{3}", strict=True) == [("whole response", "\\boxed{3}")]
    assert candidates("\\boxed{" + "1" * (MAX_ANSWER_CHARS + 1) + "}") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x = 5", "5"),
        ("10 \\text{ cm}", "10"),
        ("90^\\circ", "90"),
        ("\\$32,348", "32348"),
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\sqrt3", "\\sqrt{3}"),
        ("3/4", "\\frac{3}{4}"),
        ("0.5", "\\frac{1}{2}"),
        ("50\\%", "50"),
        ("\\text{(B)}", "(B)"),
        ("1,2", "1,2"),
        ("1{,}000", "1000"),
        ("(-\\infty, 3)", "(-\\iny,3)"),
    ],
)
def test_canonical(raw, expected):
    assert canonical(raw) == expected


def test_minerva_and_hendrycks_rules():
    assert minerva_normalize("\\boxed{10}") == "10"
    assert (
        minerva_normalize("The answer is \\boxed{10}") == "Theansweris10"
    )  # Minerva drops spaces, keeps words
    assert minerva_normalize("5 \\text{ meters}") == "5"
    assert hendrycks_strip("k = \\frac{1}{2}") == "\\frac{1}{2}"
    assert hendrycks_strip(".25") == "0.25"
    assert hendrycks_strip(".5") == "\\frac{1}{2}"  # the rule for exactly 0.5
    assert hendrycks_strip("\\frac1{72}") == "\\frac{1}{72}"


def test_as_number():
    assert as_number("\\frac{2}{4}") == as_number("0.5") == as_number("-\\frac{-1}{2}")
    assert as_number("1000") == 1000
    assert as_number("\\frac{1}{0}") is None
    assert as_number("\\sqrt{2}") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2x+1", "2*x + 1"),
        ("\\frac{\\sqrt{3}}{2}", "sqrt(3)/2"),
        ("\\sqrt[3]{8}", "2"),
        ("3\\pi r^2", "3*pi*r**2"),
        ("\\sin^2 x", "sin(x)**2"),
        ("|-3|", "3"),
        ("5!", "120"),
        ("a_{1}b", "a_1*b"),
        ("2^{-1}", "1/2"),
        ("\\log_2 8", "3"),
    ],
)
def test_parse_expr(text, expected):
    assert str(parse_expr(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["9^{9^{9^{9}}}", "10^{100000}", "4000!", "\\unknown{x}", "x \\le 3", "{" * 100 + "1" + "}" * 100, ""],
)
def test_parse_expr_refuses(text):
    with pytest.raises(ParseError):
        parse_expr(text)


def test_parse_answer_structures():
    assert parse_answer("[1,3)")[0] == "[)"
    assert parse_answer("\\{1,2\\}")[0] == "set"
    assert parse_answer("1,2")[0] == "set"
    assert parse_answer("(1)(2)") == ("expr", [parse_expr("2")])
    assert parse_answer("(1,2)\\cup(3,4)")[0] == "union"


EQUIVALENT = [
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("2\\pi", "\\pi \\cdot 2"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("1, 2", "2, 1"),
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"),
    ("10\\%", "10"),
    ("\\frac12", "0.5"),
    ("\\dfrac{7}{2}", "3.5"),
    ("\\frac{3}{4}", "\\dfrac{3}{4}"),
    ("3\\sqrt{13}", "\\sqrt{117}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90 degrees"),
    ("\\text{(A)}", "A"),
    ("\\frac{\\pi}{4}", "\\pi/4"),
    ("y = 2x+3", "2x + 3"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"),
    ("(-\\infty, 3) \\cup (5, \\infty)", "(5,\\infty)\\cup(-\\infty,3)"),
    ("1000", "1{,}000"),
    ("-1", "e^{i\\pi}"),
]
DIFFERENT = [
    ("2", "3"),
    ("\\sqrt{2}", "1.414"),
    ("x+1", "x-1"),
    ("(1,2)", "(2,1)"),
    ("(1,3]", "[1,3)"),
    ("\\frac{1}{3}", "0.33"),
    ("\\pi", "3.14159"),
    ("2x", "x^2"),
    ("1,2,3", "1,2"),
    ("\\{1,2\\}", "(1,2)"),
]


@pytest.mark.parametrize(("label", "answer"), EQUIVALENT)
def test_equivalent_answers_score_1(label, answer):
    result = run_verifier("math", f"So the answer is $\\boxed{{{answer}}}$.", label)
    assert result.score == 1.0, result.details


@pytest.mark.parametrize(("label", "answer"), DIFFERENT)
def test_different_answers_score_0(label, answer):
    result = run_verifier("math", f"So the answer is $\\boxed{{{answer}}}$.", label)
    assert result.score == 0.0 and not result.timed_out, result.details


def test_symbolic_equal_reports_unparsed():
    assert symbolic_equal("\\foo", "1") == (False, "unparsed: unsupported command \\foo")


def test_strict_math_needs_the_minerva_form():
    minerva = "Work.\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."
    assert run_verifier("strict_math", minerva, "0.5").score == 1.0
    # without the Minerva line, strict_math (like open-instruct's) only compares the whole normalised response
    assert run_verifier("strict_math", "so $x$ is $\\boxed{0.5}$", "0.5").score == 0.0
    assert run_verifier("math", "so $x$ is $\\boxed{0.5}$", "0.5").score == 1.0


def test_details_and_label_lists():
    result = run_verifier("math", "$\\boxed{4}$", ["2", "4"])
    assert (
        result.score == 1.0
        and result.details["how"] == "text"
        and result.details["candidates"][0]["source"] == "boxed"
    )
    assert "LabelError" in run_verifier("math", "$\\boxed{4}$", [None]).details["error"]
    assert "LabelError" in run_verifier("math", "$\\boxed{4}$", " ").details["error"]


def test_math_rewrites_hand_values():
    assert "\\dfrac{1}{2}" in math_rewrites("\\frac{1}{2}")
    assert "0.5" in math_rewrites("\\frac{1}{2}")
    assert "\\sqrt{117}" in math_rewrites("3\\sqrt{13}")
    assert "\\sqrt{3} + 2" in math_rewrites("2+\\sqrt{3}")
    assert all(" , " not in rewrite for rewrite in math_rewrites("58,500"))  # a separator, not a list
    assert "12,345" in math_rewrites("12345") and "90^\\circ" in math_rewrites("90")
    assert math_rewrites("\\text{Monday}") == []


@pytest.fixture
def math500(benchmark_data):
    return [json.loads(line) for line in (benchmark_data / "math500_test.jsonl").open()]


def test_math500_reference_solutions(math500):
    scores = [run_verifier("math", row["solution"], row["answer"]).score for row in math500]
    assert sum(scores) / len(scores) >= 0.995


def test_math500_equivalent_rewrites_are_accepted(math500):
    pairs = [(row["answer"], rewrite) for row in math500 for rewrite in math_rewrites(row["answer"])]
    assert len(pairs) > 2 * len(math500)
    rejected = [
        p for p in pairs if run_verifier("math", f"The answer is $\\boxed{{{p[1]}}}$.", p[0]).score != 1.0
    ]
    assert rejected == []


def test_math500_different_answers_are_rejected(math500):
    rng = random.Random(0)
    accepted, total = [], 0
    for row in math500:
        other = rng.choice(math500)
        if canonical(other["answer"]) == canonical(row["answer"]):
            continue  # the same answer written the same way is not a negative
        total += 1
        result = run_verifier("math", row["solution"], other["answer"])
        assert not result.timed_out
        if result.score:
            accepted.append((row["answer"], other["answer"]))
    assert total > 0.9 * len(math500)
    assert len(accepted) <= total * 0.005, accepted
