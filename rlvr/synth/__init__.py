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

from rlvr.synth.common import Problem, is_held_out
from rlvr.synth.config import (
    PRESETS,
    VERIFIERS,
    Difficulty,
    Gsm8kConfig,
    IfevalConfig,
    MathConfig,
    PretrainConfig,
    SynthConfig,
    TaskConfig,
    resolve,
)
from rlvr.synth.instructions import SUPPORTED_INSTRUCTIONS
from rlvr.synth.suite import write_suite

__all__ = [
    "PRESETS",
    "SUPPORTED_INSTRUCTIONS",
    "VERIFIERS",
    "Difficulty",
    "Gsm8kConfig",
    "IfevalConfig",
    "MathConfig",
    "PretrainConfig",
    "Problem",
    "SynthConfig",
    "TaskConfig",
    "is_held_out",
    "resolve",
    "write_suite",
]
