"""The synthetic task suite: rlvr's embedded default data, generated from a seed with no downloads.

`write_suite(cfg, out_dir)` writes a pretraining corpus, verifiable prompts for three verifiers
(`gsm8k` word problems, `math` exercises with boxed answers, `ifeval` instruction constraints),
SFT demonstrations and preference pairs. Everything is templated so that a 5–15M-parameter model
trained for minutes on a CPU learns it partly — the point is a base model → SFT → DPO → RL chain
whose every stage has room to show a gain. docs/synthetic_suite.md explains the tasks, the
difficulty knobs and presets, what is held out, and the learnability measurements.

Determinism: every file is drawn from its own `random.Random` seeded with a string naming the
seed, the verifier and the file (string seeds go through SHA-512, unlike the per-process salted
`hash()`), so the same seed gives byte-identical files and one file's size does not change
another file's rows.

Held out: every problem has a *key* — the computation behind it (operands and operators) for
`gsm8k` and `math`, the topic and leading instruction for `ifeval`. A seeded hash puts a share
(`test_share`) of all keys in the test partition; the test files use only those keys and the train
files (pretraining text included) never do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math as pymath
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from rlvr.chat import EOS_TOKEN, render_chat
from rlvr.data import write_jsonl

Difficulty = Literal["easy", "medium", "hard"]
VERIFIERS = ("gsm8k", "math", "ifeval")
GSM8K_OPERATIONS = ("+", "-", "*", "/")
MATH_KINDS = ("simplify", "add", "subtract", "multiply", "like_terms", "linear")
MAX_VALUE = 999  # every number in a gsm8k problem or its working stays below four digits
MAX_MISSES = 20_000  # consecutive unusable draws before a file is declared impossible to fill

LOWERCASE = "change_case:english_lowercase"
CAPITAL = "change_case:english_capital"
NO_COMMA = "punctuation:no_comma"
NUMBER_WORDS = "length_constraints:number_words"
END_CHECKER = "startend:end_checker"
KEYWORDS_EXIST = "keywords:existence"
FORBIDDEN_WORDS = "keywords:forbidden_words"
QUOTATION = "startend:quotation"
TITLE = "detectable_format:title"
BULLETS = "detectable_format:number_bullet_lists"
HIGHLIGHTS = "detectable_format:number_highlighted_sections"
POSTSCRIPT = "detectable_content:postscript"
PLACEHOLDERS = "detectable_content:number_placeholders"
JSON_FORMAT = "detectable_format:json_format"
SUPPORTED_INSTRUCTIONS = (
    LOWERCASE, CAPITAL, NO_COMMA, NUMBER_WORDS, END_CHECKER, KEYWORDS_EXIST, FORBIDDEN_WORDS, QUOTATION,
    TITLE, BULLETS, HIGHLIGHTS, POSTSCRIPT, PLACEHOLDERS, JSON_FORMAT,
)  # fmt: skip
CONFLICTS = {
    LOWERCASE: {CAPITAL},
    JSON_FORMAT: {CAPITAL, QUOTATION, END_CHECKER, BULLETS, TITLE, POSTSCRIPT, HIGHLIGHTS},
    QUOTATION: {END_CHECKER, BULLETS},
    END_CHECKER: {POSTSCRIPT},
    BULLETS: {NUMBER_WORDS, HIGHLIGHTS},
}
"""Instruction pairs never combined in one prompt: no response satisfies both, or only an odd one."""


# ----------------------------------------------------------------------------- config


@dataclass
class TaskConfig:
    """Rows per file for one verifier."""

    rlvr_train: int = 2000
    rlvr_test: int = 200
    sft_train: int = 3000
    prefs_train: int = 1000
    prefs_test: int = 100

    def __post_init__(self) -> None:
        for f in dataclasses.fields(TaskConfig):
            if getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must be >= 0, got {getattr(self, f.name)}")


@dataclass
class Gsm8kConfig(TaskConfig):
    """Sizes and difficulty of the word problems; knobs left at None come from the preset."""

    max_operand: int | None = None
    """Largest starting amount and largest number added or subtracted."""
    max_factor: int | None = None
    """Largest multiplier or divisor (from 2)."""
    max_steps: int | None = None
    """Operations per problem: 1..max_steps, uniformly."""
    operations: list[str] | None = None
    """Any of + - * /."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_subset("operations", self.operations, GSM8K_OPERATIONS)
        _check_at_least(self, max_operand=2, max_factor=2, max_steps=1)


@dataclass
class MathConfig(TaskConfig):
    """Sizes and difficulty of the boxed-answer exercises; knobs left at None come from the preset."""

    kinds: list[str] | None = None
    """Exercise kinds: simplify, add, subtract, multiply (fractions), like_terms, linear."""
    max_denominator: int | None = None
    """Largest denominator of a fraction in lowest terms (simplify shows it times 2..4)."""
    unlike_denominators: bool | None = None
    """Whether added/subtracted fractions may have different denominators (half of them then do)."""
    max_coefficient: int | None = None
    """Largest coefficient in like_terms and linear, and largest whole solution of linear."""
    fractional_solutions: bool | None = None
    """Whether half of the linear equations have a fractional solution."""
    equivalent_form_share: float = 0.3
    """Share of fractional demonstrations boxing an equivalent form (\\dfrac{3}{4}, 3/4, 0.75)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_subset("kinds", self.kinds, MATH_KINDS)
        _check_at_least(self, max_denominator=2, max_coefficient=2)
        if not 0.0 <= self.equivalent_form_share <= 1.0:
            raise ValueError(f"equivalent_form_share must be in [0, 1], got {self.equivalent_form_share}")


@dataclass
class IfevalConfig(TaskConfig):
    """Sizes and difficulty of the instruction prompts; knobs left at None come from the preset."""

    max_instructions: int | None = None
    """Instructions per prompt: 1..max_instructions, uniformly (never two that conflict)."""
    instructions: list[str] | None = None
    """IFEval instruction ids to draw from (None: all of SUPPORTED_INSTRUCTIONS)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_subset("instructions", self.instructions, SUPPORTED_INSTRUCTIONS)
        _check_at_least(self, max_instructions=1)


@dataclass
class PretrainConfig:
    """Size of the pretraining corpus and the weights of its document kinds."""

    docs: int = 20000
    prose: float = 0.3
    """Paragraphs of simple English about one topic."""
    arithmetic: float = 0.1
    """Lines of one-step equations (`23 + 15 = 38.`)."""
    gsm8k: float = 0.2
    """Train word problems with their working, as `Question: ...\\nAnswer: ...`."""
    math: float = 0.2
    """Train exercises with their working, as `Problem: ...\\nSolution: ...`."""
    chat: float = 0.2
    """Train demonstrations of all three verifiers in the chat format, so the base model knows it."""

    def __post_init__(self) -> None:
        weights = [self.prose, self.arithmetic, self.gsm8k, self.math, self.chat]
        if self.docs < 0 or min(weights) < 0 or not sum(weights) > 0:
            raise ValueError("docs and the document-kind weights must be >= 0, with some weight > 0")


@dataclass
class SynthConfig:
    """Everything `rlvr data synth` needs; the same config and seed always give the same bytes."""

    seed: int = 0
    difficulty: Difficulty = "medium"
    """Preset that fills every difficulty knob left unset (None); see PRESETS."""
    test_share: float = 0.2
    """Share of problem keys held out for the test files."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    gsm8k: Gsm8kConfig = field(default_factory=Gsm8kConfig)
    math: MathConfig = field(default_factory=MathConfig)
    ifeval: IfevalConfig = field(default_factory=IfevalConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"test_share must be in (0, 1), got {self.test_share}")


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "easy": {
        "gsm8k": {"max_operand": 20, "max_factor": 5, "max_steps": 1, "operations": ["+", "-"]},
        "math": {
            "kinds": ["simplify", "add", "like_terms", "linear"],
            "max_denominator": 6,
            "unlike_denominators": False,
            "max_coefficient": 6,
            "fractional_solutions": False,
        },
        "ifeval": {"max_instructions": 1},
    },
    "medium": {
        "gsm8k": {"max_operand": 40, "max_factor": 6, "max_steps": 2, "operations": ["+", "-", "*"]},
        "math": {
            "kinds": list(MATH_KINDS),
            "max_denominator": 9,
            "unlike_denominators": False,
            "max_coefficient": 9,
            "fractional_solutions": False,
        },
        "ifeval": {"max_instructions": 2},
    },
    "hard": {
        "gsm8k": {"max_operand": 99, "max_factor": 12, "max_steps": 3, "operations": list(GSM8K_OPERATIONS)},
        "math": {
            "kinds": list(MATH_KINDS),
            "max_denominator": 12,
            "unlike_denominators": True,
            "max_coefficient": 12,
            "fractional_solutions": True,
        },
        "ifeval": {"max_instructions": 3},
    },
}


def resolve(cfg: SynthConfig) -> SynthConfig:
    """`cfg` with every unset (None) difficulty knob filled from its `difficulty` preset."""
    tasks = {}
    for verifier in VERIFIERS:
        task = getattr(cfg, verifier)
        preset = PRESETS[cfg.difficulty][verifier]
        tasks[verifier] = dataclasses.replace(
            task, **{k: v for k, v in preset.items() if getattr(task, k) is None}
        )
    return dataclasses.replace(cfg, **tasks)


def _check_subset(name: str, values: list[str] | None, allowed: tuple[str, ...]) -> None:
    if values is not None and (not values or any(v not in allowed for v in values)):
        raise ValueError(f"{name} must be a non-empty list from {', '.join(allowed)}; got {values}")


def _check_at_least(cfg: Any, **minimums: int) -> None:
    for name, minimum in minimums.items():
        value = getattr(cfg, name)
        if value is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One verifiable prompt with a correct demonstration and a plausible wrong one."""

    verifier: str
    key: str
    """What decides the train/test split; problems with equal keys share a partition."""
    prompt: str
    ground_truth: str
    answer: str
    near_miss: str


class Unbuildable(Exception):
    """A drawn combination that cannot be written (e.g. word limits too tight); draw again."""


def is_held_out(seed: int, key: str, test_share: float) -> bool:
    """Whether `key` is in the test partition: a seeded, process-independent hash of the key."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < test_share


def _rng(seed: int, *purpose: str) -> random.Random:
    return random.Random("/".join([str(seed), *purpose]))


# ----------------------------------------------------------------------------- English

NAMES = (
    ("Tom", "he"), ("Ann", "she"), ("Ben", "he"), ("Mia", "she"), ("Sam", "he"), ("Lily", "she"),
    ("Max", "he"), ("Emma", "she"), ("Jack", "he"), ("Zoe", "she"), ("Leo", "he"), ("Ella", "she"),
    ("Omar", "he"), ("Nina", "she"), ("Hugo", "he"), ("Rosa", "she"),
)  # fmt: skip
TOPICS = {
    "animal": ("cat", "dog", "bird", "horse", "fox", "duck", "rabbit", "cow", "owl", "frog", "goat", "bear"),
    "place": ("park", "river", "sea", "town", "garden", "forest", "farm", "beach", "lake", "village", "hill"),
    "thing": ("kite", "boat", "train", "bike", "cake", "book", "lamp", "hat", "ball", "drum", "clock"),
}
ACTIONS = {
    "animal": ("runs {place}", "sleeps {place}", "plays {place}", "looks for food {place}", "rests {place}"),
    "place": ("is full of people", "looks lovely", "gets cold at night", "feels peaceful", "has many trees"),
    "thing": ("sits {place}", "belongs to {name}", "was a gift from {name}", "stays {place}"),
}
ADJECTIVES = (
    "small", "big", "happy", "quiet", "old", "young", "warm", "bright", "soft", "brave", "kind", "slow",
    "fast", "green", "red", "blue", "tall", "calm", "busy", "pretty",
)  # fmt: skip
PLACES = ("in the garden", "near the river", "at home", "by the lake", "under the tree", "on the hill")
TIMES = ("in the morning", "in the evening", "every day", "after lunch", "in the summer", "on Sunday")
PLAIN_SENTENCES = (
    "{T} is {adj}.",
    "{T} is {adj} and {adj2}.",
    "{T} {action}.",
    "{T} {action} {time}.",
    "I like {t} because it is {adj}.",
    "{Name} thinks {t} is {adj}.",
    "{Name} saw {t} {time}.",
    "Everyone knows {t} is {adj}.",
)
COMMA_SENTENCES = (
    "{Time}, {t} {action}.",
    "{T} is {adj}, {adj2} and {adj3}.",
    "{Name} smiled, because {t} is {adj}.",
)
KEYWORDS = (
    "lantern", "ladder", "mirror", "blanket", "pencil", "candle", "basket", "ribbon", "pillow", "wagon",
)  # fmt: skip
KEYWORD_SENTENCES = (
    "{T} has a {kw}.", "I saw a {kw} there.", "We found a {kw} nearby.", "{Name} brought a {kw}.",
)  # fmt: skip
PLACEHOLDER_SENTENCES = (
    "My name is [name].", "Write to me at [address].", "Meet me at [place].", "Call me on [phone].",
    "See you on [day].",
)  # fmt: skip
POSTSCRIPTS = ("I hope you like it.", "Say hello to {Name} for me.", "Write back soon.", "Thank you.")
END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have more questions.",
    "That is all for now.",
    "Thank you for reading.",
    "See you next time.",
)


def random_topic(rng: random.Random) -> tuple[str, str]:
    """`(category, noun)` of a random topic."""
    category = rng.choice(sorted(TOPICS))
    return category, rng.choice(TOPICS[category])


def prose_sentence(
    rng: random.Random, category: str, noun: str, comma: bool = False, avoid: frozenset[str] = frozenset()
) -> str:
    """One simple sentence about `the noun`, with a comma iff `comma`, using no adjective in `avoid`."""
    adj, adj2, adj3 = rng.sample([a for a in ADJECTIVES if a not in avoid], 3)
    name = rng.choice(NAMES)[0]
    time = rng.choice(TIMES)
    action = rng.choice(ACTIONS[category]).format(place=rng.choice(PLACES), name=name)
    return rng.choice(COMMA_SENTENCES if comma else PLAIN_SENTENCES).format(
        T=f"The {noun}", t=f"the {noun}", adj=adj, adj2=adj2, adj3=adj3, action=action, Name=name,
        time=time, Time=time[0].upper() + time[1:],
    )  # fmt: skip


def prose(rng: random.Random, category: str, noun: str, sentences: int, comma_share: float = 0.25) -> str:
    """A paragraph of simple sentences about one topic."""
    return " ".join(prose_sentence(rng, category, noun, rng.random() < comma_share) for _ in range(sentences))


# ----------------------------------------------------------------------------- gsm8k

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


# ----------------------------------------------------------------------------- math


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


# ----------------------------------------------------------------------------- ifeval

IFEVAL_TASKS = (
    "Write a short story about the {noun}.",
    "Describe the {noun}.",
    "Write a few sentences about the {noun}.",
    "Write a short note about the {noun}.",
)


def _one_or_two(rng: random.Random, pool: tuple[str, ...]) -> list[str]:
    return rng.sample(pool, rng.randint(1, 2))


def _and(words: list[str], conjunction: str) -> str:
    return f" {conjunction} ".join(words)


def instruction_kwargs(rng: random.Random, instruction: str) -> dict[str, Any]:
    """IFEval kwargs for `instruction`, with exactly the kwarg names of Google's IFEval."""
    if instruction == NUMBER_WORDS:
        return {"relation": rng.choice(("at least", "less than")), "num_words": rng.choice(range(15, 45, 5))}
    if instruction == END_CHECKER:
        return {"end_phrase": rng.choice(END_PHRASES)}
    if instruction == KEYWORDS_EXIST:
        return {"keywords": _one_or_two(rng, KEYWORDS)}
    if instruction == FORBIDDEN_WORDS:
        return {"forbidden_words": _one_or_two(rng, ADJECTIVES)}
    if instruction == BULLETS:
        return {"num_bullets": rng.randint(2, 5)}
    if instruction == HIGHLIGHTS:
        return {"num_highlights": rng.randint(1, 3)}
    if instruction == POSTSCRIPT:
        return {"postscript_marker": rng.choice(("P.S.", "P.P.S"))}
    if instruction == PLACEHOLDERS:
        return {"num_placeholders": rng.randint(1, 3)}
    return {}


def instruction_text(instruction: str, kw: dict[str, Any]) -> str:
    """How the prompt asks for `instruction` (IFEval's wording, shortened)."""
    plural = "s" if len(kw.get("keywords", kw.get("forbidden_words", ()))) > 1 else ""
    return {
        LOWERCASE: "Your entire response should be in English, and in all lowercase letters.",
        CAPITAL: "Your entire response should be in English, and in all capital letters.",
        NO_COMMA: "Do not use any commas in your response.",
        NUMBER_WORDS: f"Answer with {kw.get('relation')} {kw.get('num_words')} words.",
        END_CHECKER: f"Finish your response with this exact phrase: {kw.get('end_phrase')}",
        KEYWORDS_EXIST: f"Include the keyword{plural} {_and(kw.get('keywords', []), 'and')} in the response.",
        FORBIDDEN_WORDS: f"Do not include the word{plural} {_and(kw.get('forbidden_words', []), 'or')} "
        "in the response.",
        QUOTATION: "Wrap your entire response with double quotation marks.",
        TITLE: "Your answer must contain a title, wrapped in double angular brackets, "
        "such as <<poem of joy>>.",
        BULLETS: f"Your answer must contain exactly {kw.get('num_bullets')} bullet points. "
        "Use markdown bullet points such as: * This is a point.",
        HIGHLIGHTS: f"Highlight at least {kw.get('num_highlights')} sections in your answer with markdown, "
        "i.e. *highlighted section*.",
        POSTSCRIPT: "At the end of your response, please add a postscript starting with "
        f"{kw.get('postscript_marker')}",
        PLACEHOLDERS: f"The response must contain at least {kw.get('num_placeholders')} placeholders "
        "represented by square brackets, such as [address].",
        JSON_FORMAT: "Entire output should be wrapped in JSON format.",
    }[instruction]


def conflicts(a: str, b: str) -> bool:
    return a == b or b in CONFLICTS.get(a, ()) or a in CONFLICTS.get(b, ())


@dataclass
class ResponsePlan:
    """What a response must look like; built from instructions, each obeyed or deliberately broken."""

    case: Literal["lower", "upper", "as written"] = "as written"
    commas: Literal["none", "some", "any"] = "any"
    min_words: int = 0
    max_words: int | None = None
    """Exclusive upper bound on the word count."""
    end_phrase: str = ""
    keywords: tuple[str, ...] = ()
    avoid: frozenset[str] = frozenset()
    """Adjectives the prose must not use."""
    use_word: str = ""
    """A forbidden word to use anyway (the near miss)."""
    quotation: bool = False
    title: bool = False
    bullets: int = 0
    highlights: int = 0
    placeholders: int = 0
    postscript: str = ""
    json: Literal["", "valid", "broken"] = ""


def plan_response(
    rng: random.Random, instructions: list[tuple[str, dict[str, Any]]], broken: int | None = None
) -> ResponsePlan:
    """The plan obeying every instruction except the one at index `broken` (which it violates)."""
    plan = ResponsePlan()
    for i, (instruction, kw) in enumerate(instructions):
        obey = i != broken
        if instruction in (LOWERCASE, CAPITAL):
            plan.case = ("lower" if instruction == LOWERCASE else "upper") if obey else "as written"
        elif instruction == NO_COMMA:
            plan.commas = "none" if obey else "some"
        elif instruction == NUMBER_WORDS:
            if (kw["relation"] == "at least") == obey:
                plan.min_words = kw["num_words"]
            else:
                plan.max_words = kw["num_words"]
        elif instruction == END_CHECKER:
            plan.end_phrase = kw["end_phrase"] if obey else ""
        elif instruction == KEYWORDS_EXIST:
            plan.keywords = tuple(kw["keywords"] if obey else kw["keywords"][:-1])
        elif instruction == FORBIDDEN_WORDS:
            plan.avoid = frozenset(kw["forbidden_words"])
            plan.use_word = "" if obey else rng.choice(kw["forbidden_words"])
        elif instruction == BULLETS:
            n = kw["num_bullets"]
            plan.bullets = n if obey else rng.choice([m for m in (n - 1, n + 1) if m > 0])
        elif instruction == HIGHLIGHTS:
            plan.highlights = kw["num_highlights"] - (not obey)
        elif instruction == PLACEHOLDERS:
            plan.placeholders = kw["num_placeholders"] - (not obey)
        elif instruction == POSTSCRIPT:
            plan.postscript = kw["postscript_marker"] if obey else ""
        elif instruction == JSON_FORMAT:
            plan.json = "valid" if obey else "broken"
        else:  # QUOTATION, TITLE
            setattr(plan, {QUOTATION: "quotation", TITLE: "title"}[instruction], obey)
    return plan


def word_count(text: str) -> int:
    """Words as IFEval counts them (NLTK's `\\w+` tokenizer)."""
    return len(re.findall(r"\w+", text))


def write_response(rng: random.Random, category: str, noun: str, plan: ResponsePlan) -> str:
    """Prose about the topic laid out as `plan` says, redrawn until its word limits hold."""
    name = rng.choice(NAMES)[0]
    extras = [rng.choice(KEYWORD_SENTENCES).format(T=f"The {noun}", kw=kw, Name=name) for kw in plan.keywords]
    extras += rng.sample(PLACEHOLDER_SENTENCES, plan.placeholders)
    extras += [f"The {noun} is {plan.use_word}."] if plan.use_word else []
    fewest = max(len(extras) + (plan.commas == "some"), plan.highlights, 1)
    if plan.bullets and plan.bullets < fewest:
        raise Unbuildable("more required sentences than bullets")
    count = plan.bullets or max(fewest, rng.randint(2, 4))
    for _ in range(40):
        text = _lay_out(rng, category, noun, plan, extras, count)
        words = word_count(text)
        if words < plan.min_words:
            count = plan.bullets or count + 1
        elif plan.max_words is not None and words >= plan.max_words:
            count = plan.bullets or max(fewest, count - 1)
        else:
            return text
    raise Unbuildable("the word limits cannot be met")


def _lay_out(
    rng: random.Random, category: str, noun: str, plan: ResponsePlan, extras: list[str], count: int
) -> str:
    commas = [
        (plan.commas == "some" and i == 0) or (plan.commas == "any" and rng.random() < 0.25)
        for i in range(count)
    ]
    sentences = [prose_sentence(rng, category, noun, c, plan.avoid) for c in commas[: count - len(extras)]]
    sentences += extras
    rng.shuffle(sentences)
    sentences = [f"*{s}*" if i < plan.highlights else s for i, s in enumerate(sentences)]
    text = "\n".join(f"* {s}" for s in sentences) if plan.bullets else " ".join(sentences)
    if plan.title:
        adjective = rng.choice([a for a in ADJECTIVES if a not in plan.avoid])
        text = f"<<The {adjective.capitalize()} {noun.capitalize()}>>\n\n{text}"
    if plan.postscript:
        text += f"\n\n{plan.postscript} " + rng.choice(POSTSCRIPTS).format(Name=rng.choice(NAMES)[0])
    if plan.end_phrase:
        text += ("\n\n" if plan.bullets else " ") + plan.end_phrase
    text = {"lower": text.lower(), "upper": text.upper(), "as written": text}[plan.case]
    if plan.quotation:
        text = f'"{text}"'
    if plan.json:
        text = json.dumps({"answer": text}, ensure_ascii=False)[: -1 if plan.json == "broken" else None]
    return text


def ifeval_problem(rng: random.Random, cfg: IfevalConfig) -> Problem:
    """A request for a few sentences on a topic under 1..max_instructions IFEval constraints."""
    assert cfg.max_instructions is not None
    pool = list(cfg.instructions or SUPPORTED_INSTRUCTIONS)
    chosen: list[str] = []
    for _ in range(rng.randint(1, cfg.max_instructions)):
        options = [i for i in pool if not any(conflicts(i, c) for c in chosen)]
        if options:
            chosen.append(rng.choice(options))
    instructions = [(i, instruction_kwargs(rng, i)) for i in chosen]
    category, noun = random_topic(rng)
    prompt = " ".join(
        [rng.choice(IFEVAL_TASKS).format(noun=noun)] + [instruction_text(i, kw) for i, kw in instructions]
    )
    truth = {"instruction_id_list": chosen, "kwargs": [kw for _, kw in instructions]}
    broken = rng.randrange(len(instructions))
    return Problem(
        verifier="ifeval",
        key=f"ifeval:{noun}:{chosen[0]}",
        prompt=prompt,
        ground_truth=json.dumps(truth, ensure_ascii=False),
        answer=write_response(rng, category, noun, plan_response(rng, instructions)),
        near_miss=write_response(rng, category, noun, plan_response(rng, instructions, broken)),
    )


GENERATORS: dict[str, Callable[[random.Random, Any], Problem]] = {
    "gsm8k": gsm8k_problem,
    "math": math_problem,
    "ifeval": ifeval_problem,
}


# ----------------------------------------------------------------------------- files


def draw(
    cfg: SynthConfig, verifier: str, purpose: str, held_out: bool, unique: bool = False
) -> Iterator[Problem]:
    """Endless problems of one verifier from the test (`held_out`) or train partition of the keys.

    `cfg` must be resolved. `unique` skips prompts already drawn (test files count each prompt once).
    Raises ValueError when the knobs leave too few keys or prompts to continue.
    """
    make, knobs = GENERATORS[verifier], getattr(cfg, verifier)
    rng = _rng(cfg.seed, verifier, purpose)
    seen: set[str] = set()
    misses = 0
    while True:
        try:
            problem = make(rng, knobs)
        except Unbuildable:
            problem = None
        if (
            problem is None
            or is_held_out(cfg.seed, problem.key, cfg.test_share) != held_out
            or problem.prompt in seen
        ):
            misses += 1
            if misses > MAX_MISSES:
                raise ValueError(
                    f"{verifier} {purpose}: no new {'test' if held_out else 'train'} problem in "
                    f"{MAX_MISSES:,} draws; the difficulty knobs leave too few distinct prompts for this size"
                )
            continue
        misses = 0
        if unique:
            seen.add(problem.prompt)
        yield problem


def _user(problem: Problem) -> dict[str, str]:
    return {"role": "user", "content": problem.prompt}


def _assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def rlvr_row(problem: Problem) -> dict[str, Any]:
    return {"messages": [_user(problem)], "ground_truth": problem.ground_truth, "dataset": problem.verifier}


def sft_row(problem: Problem) -> dict[str, Any]:
    return {"messages": [_user(problem), _assistant(problem.answer)]}


def prefs_row(problem: Problem) -> dict[str, Any]:
    return {
        "chosen": [_user(problem), _assistant(problem.answer)],
        "rejected": [_user(problem), _assistant(problem.near_miss)],
    }


SPLIT_FILES: dict[str, tuple[str, Callable[[Problem], dict[str, Any]], bool]] = {
    "rlvr_train.jsonl": ("rlvr_train", rlvr_row, False),
    "rlvr_test.jsonl": ("rlvr_test", rlvr_row, True),
    "sft_train.jsonl": ("sft_train", sft_row, False),
    "prefs_train.jsonl": ("prefs_train", prefs_row, False),
    "prefs_test.jsonl": ("prefs_test", prefs_row, True),
}
"""file name -> (size field of each TaskConfig, row builder, held out?)."""


def split_rows(cfg: SynthConfig, filename: str) -> list[dict[str, Any]]:
    """The rows of one prompt/SFT/preference file: every verifier's share, shuffled together."""
    size_field, build, held_out = SPLIT_FILES[filename]
    rows = []
    for verifier in VERIFIERS:
        n = getattr(getattr(cfg, verifier), size_field)
        rows += [build(p) for p in islice(draw(cfg, verifier, size_field, held_out, unique=held_out), n)]
    _rng(cfg.seed, filename, "order").shuffle(rows)
    return rows


def pretrain_texts(cfg: SynthConfig) -> Iterator[str]:
    """The pretraining documents: prose, equation drills, worked problems and chats, all train-side.

    Chats are rendered with the chat template minus the `<|endoftext|>` at either end: the
    pretraining packer puts one after every document, and that EOS is the next chat's BOS.
    """
    rng = _rng(cfg.seed, "pretrain", "kinds")
    mix = {k: getattr(cfg.pretrain, k) for k in ("prose", "arithmetic", "gsm8k", "math", "chat")}
    chats = {v: draw(cfg, v, "pretrain_chat", held_out=False) for v in VERIFIERS}
    worked = {v: draw(cfg, v, "pretrain", held_out=False) for v in ("gsm8k", "math")}
    drills = draw(_one_step(cfg), "gsm8k", "pretrain_drills", held_out=False)
    for kind in rng.choices(list(mix), weights=list(mix.values()), k=cfg.pretrain.docs):
        if kind == "prose":
            yield prose(rng, *random_topic(rng), sentences=rng.randint(3, 8))
        elif kind == "arithmetic":
            yield "\n".join(next(drills).answer.split(" #### ")[0] for _ in range(rng.randint(4, 10)))
        elif kind == "chat":
            chat = render_chat(sft_row(next(chats[rng.choice(VERIFIERS)]))["messages"])
            yield chat.removeprefix(EOS_TOKEN).removesuffix(EOS_TOKEN)
        else:
            problem = next(worked[kind])
            question, answer = ("Question", "Answer") if kind == "gsm8k" else ("Problem", "Solution")
            yield f"{question}: {problem.prompt}\n{answer}: {problem.answer}"


def _one_step(cfg: SynthConfig) -> SynthConfig:
    """`cfg` with one-step gsm8k problems: their working is a single equation, a drill line."""
    return dataclasses.replace(cfg, gsm8k=dataclasses.replace(cfg.gsm8k, max_steps=1))


def write_suite(cfg: SynthConfig, out_dir: Path) -> dict[str, int]:
    """Write every file of the suite into `out_dir`; returns `{file name: rows}`."""
    cfg = resolve(cfg)
    out_dir = Path(out_dir)
    counts = {
        "pretrain.jsonl": write_jsonl(({"text": t} for t in pretrain_texts(cfg)), out_dir / "pretrain.jsonl")
    }
    for filename in SPLIT_FILES:
        counts[filename] = write_jsonl(split_rows(cfg, filename), out_dir / filename)
    return counts
