"""What `rlvr data synth` is told: file sizes, difficulty knobs, presets, and the checks on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.synth.instructions import SUPPORTED_INSTRUCTIONS

Difficulty = Literal["easy", "medium", "hard"]
VERIFIERS = ("gsm8k", "math", "ifeval")
GSM8K_OPERATIONS = ("+", "-", "*", "/")
MATH_KINDS = ("simplify", "add", "subtract", "multiply", "like_terms", "linear")


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
