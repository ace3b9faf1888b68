"""`false_equations`: the false `a op b = c` steps of an answer, by hand-checked examples."""

from __future__ import annotations

import pytest

from rlvr.rewards.arithmetic import false_equations


@pytest.mark.parametrize(
    ("text", "false"),
    [
        ("21 - 9 = 10. 10 - 8 = 4. #### 4", ["21 - 9 = 10", "10 - 8 = 4"]),  # right answer, wrong steps
        ("26 - 24 = 2. 2 * 2 = 4. #### 4", []),
        ("Answer: 4 + 4 = 9.", ["4 + 4 = 9"]),
        ("5-3=1", ["5-3=1"]),
        ("3.5 × 4 = 15 and 3.5 × 4 = 14", ["3.5 × 4 = 15"]),
        ("1,200 / 4 = 300", []),
        ("1,200 / 4 = 30", ["1,200 / 4 = 30"]),
        ("-3 + 5 = 2", []),
        ("7 / 0 = 0", ["7 / 0 = 0"]),
        ("10 / 3 = 3.33", []),  # a quotient rounded to the digits written
        ("10 / 3 = 3.4", ["10 / 3 = 3.4"]),
    ],
)
def test_false_steps_are_found(text: str, false: list[str]) -> None:
    assert false_equations(text) == false


@pytest.mark.parametrize(
    "text",
    [
        "2 * 3 + 4 = 10",  # one longer expression, not `3 + 4 = 10`
        "3/4 = 6/8",  # the right side goes on
        "2 + 3 = 6 - 1",
        "x2 + 1 = 13",  # a variable's name, not a number
        "v1.2 + 1 = 5",
        "(2 + 3) = 5",
        "no arithmetic here = 3",
    ],
)
def test_what_is_not_a_plain_equation_is_left_alone(text: str) -> None:
    assert false_equations(text) == []
