"""`gsm8k` word problems: one person's stock of objects changed step by step, one equation a step."""

from __future__ import annotations

import random

from rlvr.synth.common import NAMES, Problem, Unbuildable
from rlvr.synth.config import Gsm8kConfig

MAX_VALUE = 999  # every number in a gsm8k problem or its working stays below four digits

GSM8K_OBJECTS = (
    "apples", "pens", "stickers", "marbles", "cookies", "books", "stamps", "cards", "shells", "coins",
)  # fmt: skip
GSM8K_STEPS = {
    "+": ("{P} buys {n} more.", "{P} finds {n} more.", "{P} gets {n} more from a friend."),
    "-": ("{P} gives away {n}.", "{P} loses {n}.", "{P} sells {n}."),
    "*": ("{P} then has {n} times as many.", "The number of {obj} grows {n} times."),
    "/": ("{P} puts them into {n} equal groups and keeps one group.", "{P} keeps one of every {n}."),
}
GSM8K_QUESTIONS = ("How many {obj} does {name} have now?", "How many {obj} does {name} have in the end?")


def apply_op(a: int, op: str, b: int) -> int:
    """`a op b` for the four gsm8k operations (division is exact by construction)."""
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]


def _gsm8k_operand(rng: random.Random, value: int, op: str, cfg: Gsm8kConfig) -> int | None:
    """A second operand for `value op n` keeping the result in 1..MAX_VALUE, or None if none exists."""
    assert cfg.max_operand is not None and cfg.max_factor is not None
    if op == "+":
        high = min(cfg.max_operand, MAX_VALUE - value)
        return rng.randint(2, high) if high >= 2 else None
    if op == "-":
        high = min(cfg.max_operand, value - 1)
        return rng.randint(1, high) if high >= 1 else None
    if op == "*":
        high = min(cfg.max_factor, MAX_VALUE // value)
        return rng.randint(2, high) if high >= 2 else None
    divisors = [d for d in range(2, cfg.max_factor + 1) if value % d == 0]
    return rng.choice(divisors) if divisors else None


def gsm8k_chain(rng: random.Random, cfg: Gsm8kConfig) -> tuple[int, list[tuple[str, int]]]:
    """A start amount and 1..max_steps `(operation, operand)` steps, every result in 1..MAX_VALUE."""
    assert cfg.max_operand is not None and cfg.max_steps is not None and cfg.operations is not None
    value = start = rng.randint(2, cfg.max_operand)
    steps = []
    for _ in range(rng.randint(1, cfg.max_steps)):
        for op in rng.sample(cfg.operations, len(cfg.operations)):
            operand = _gsm8k_operand(rng, value, op, cfg)
            if operand is not None:
                break
        else:
            raise Unbuildable(f"no operation applies to {value}")
        steps.append((op, operand))
        value = apply_op(value, op, operand)
    return start, steps


def gsm8k_working(start: int, steps: list[tuple[str, int]], slip: tuple[int, int] | None = None) -> str:
    """`a + b = c. c * d = e. #### e`; `slip=(step, delta)` adds `delta` to that step's result."""
    lines, value = [], start
    for i, (op, operand) in enumerate(steps):
        result = apply_op(value, op, operand) + (slip[1] if slip and slip[0] == i else 0)
        lines.append(f"{value} {op} {operand} = {result}.")
        value = result
    return " ".join(lines) + f" #### {value}"


def _gsm8k_slip(rng: random.Random, start: int, steps: list[tuple[str, int]]) -> tuple[int, int]:
    """An arithmetic slip `(step, delta)` at a step no division follows, so the working stays whole."""
    last_division = max((i for i, (op, _) in enumerate(steps) if op == "/"), default=0)
    step = rng.randint(last_division, len(steps) - 1)
    value = start
    for op, operand in steps[: step + 1]:
        value = apply_op(value, op, operand)
    return step, rng.choice([d for d in (-10, -2, -1, 1, 2, 10) if value + d >= 0])


def gsm8k_problem(rng: random.Random, cfg: Gsm8kConfig) -> Problem:
    """A word problem about one person's stock of objects, solved one equation per step."""
    name, pronoun = rng.choice(NAMES)
    obj = rng.choice(GSM8K_OBJECTS)
    start, steps = gsm8k_chain(rng, cfg)
    words = {"P": pronoun.capitalize(), "obj": obj, "name": name}
    sentences = [f"{name} has {start} {obj}."]
    sentences += [rng.choice(GSM8K_STEPS[op]).format(n=n, **words) for op, n in steps]
    sentences.append(rng.choice(GSM8K_QUESTIONS).format(**words))
    answer = gsm8k_working(start, steps)
    return Problem(
        verifier="gsm8k",
        key="gsm8k:" + str(start) + "".join(f"{op}{n}" for op, n in steps),
        prompt=" ".join(sentences),
        ground_truth=answer.rsplit("#### ", 1)[1],
        answer=answer,
        near_miss=gsm8k_working(start, steps, _gsm8k_slip(rng, start, steps)),
    )
