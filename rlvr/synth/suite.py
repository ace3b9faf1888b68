"""The suite's files: problems drawn per partition, the row formats, the pretraining corpus, write_suite."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from rlvr.chat import EOS_TOKEN, render_chat
from rlvr.data import write_jsonl
from rlvr.synth.common import Problem, Unbuildable, _rng, is_held_out, prose, random_topic
from rlvr.synth.config import VERIFIERS, SynthConfig, resolve
from rlvr.synth.gsm8k import gsm8k_problem
from rlvr.synth.ifeval import ifeval_problem
from rlvr.synth.math_tasks import math_problem

MAX_MISSES = 20_000  # consecutive unusable draws before a file is declared impossible to fill

GENERATORS: dict[str, Callable[[random.Random, Any], Problem]] = {
    "gsm8k": gsm8k_problem,
    "math": math_problem,
    "ifeval": ifeval_problem,
}


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
