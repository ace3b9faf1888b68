"""Each post-training stage learns: on a toy task a tiny model picks up in a few steps, the quantity
the stage optimises moves by a measured margin through the real trainer (not merely "changes").

The toy world: answers are one digit, "1"–"4" (one token each). SFT teaches the random base model
the answer format (a digit, then EOS) on "Pick a number." (any digit) and "Say N." (N). DPO and the
reward model start from that SFT model, as in the recipe, and learn the pairs "Say N." → N over
each other digit: every answer is chosen in three pairs and rejected in three, so a model that
ignores the prompt ranks exactly half of them right. PPO and GRPO start from it too and learn that
the verifier (`exact_match`) pays for "3" only.

Every step sees all its examples (full batches), so a logged figure is measured on the same data
each step, before that step's update. Seeds are fixed; the margins sit well inside the spread seen
over seeds 0–7 (the trainer's seed and the base model's initialisation varied together), quoted in
each test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rlvr.algos.common import StageResult, run_stage
from rlvr.algos.dpo import DPOConfig, DPOTrainer
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.trainer import train
from rlvr.algos.reward_model import RewardModelConfig, RewardModelTrainer
from rlvr.algos.sft import SFTConfig, SFTTrainer
from rlvr.config import from_dict, merge
from rlvr.tracking import read_metrics

SEED = 0
DIGITS = ("1", "2", "3", "4")
OPEN_PROMPTS = ("Pick a number.", "Choose a number.", "Give me a number.", "Name a number.")
TARGET = "3"
"""The only answer the RL verifier pays for."""


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Models this small gain nothing from a second thread, and on cores shared with other work two
    threads made each step about 20× slower (spin-waiting on a busy core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def chat(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("toy")
    sft = [{"messages": chat(p, d)} for p in OPEN_PROMPTS for d in DIGITS]
    sft += [{"messages": chat(f"Say {d}.", d)} for d in DIGITS for _ in range(2)]
    prefs = [
        {"chosen": chat(f"Say {d}.", d), "rejected": chat(f"Say {d}.", other)}
        for d in DIGITS
        for other in DIGITS
        if other != d
    ]
    rlvr = [
        {"messages": [{"role": "user", "content": p}], "ground_truth": TARGET, "dataset": "exact_match"}
        for p in OPEN_PROMPTS
    ]
    return {
        "sft": write_jsonl(root / "sft.jsonl", sft),
        "prefs": write_jsonl(root / "prefs.jsonl", prefs),
        "rlvr": write_jsonl(root / "rlvr.jsonl", rlvr),
    }


def stage_config(
    cls: type, root: Path, init_from: str, train_file: str, rows: int, updates: dict[str, Any]
) -> Any:
    """A full-batch fp32 run: every step sees all `rows` examples, so its logged figures are measured
    on the same data before each update, from the starting weights (step 1) on."""
    base = {
        "name": "toy",
        "seed": SEED,
        "runs_root": str(root),
        "init_from": init_from,
        "log": {"wandb": False, "progress": False, "every": 1000},
        "data": {"train": [train_file], "max_length": 64},
        "optim": {"lr": 3e-3, "warmup_ratio": 0.0, "schedule": "constant"},
        "train": {"epochs": 1000, "batch_size": rows, "micro_batch_size": rows, "precision": "fp32",
                  "attention": "eager", "save_every": 1000},
    }  # fmt: skip
    return from_dict(cls, merge(base, updates))


def curve(cfg: Any, key: str) -> list[float]:
    return [r[key] for r in read_metrics(cfg.run_dir / "metrics.jsonl") if key in r]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def sft_run(
    toy: dict[str, str], base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SFTConfig, StageResult]:
    rows = len(OPEN_PROMPTS) * len(DIGITS) + 2 * len(DIGITS)
    cfg = stage_config(SFTConfig, tmp_path_factory.mktemp("runs"), str(base_checkpoint), toy["sft"], rows,
                       {"name": "sft", "optim": {"lr": 1e-2}, "train": {"max_steps": 16}})  # fmt: skip
    return cfg, run_stage(SFTTrainer, cfg)


def test_sft_loss_falls_to_the_cost_of_the_answers(sft_run: tuple[SFTConfig, StageResult]) -> None:
    """Loss per label token (the digit and EOS): from ln(vocab) = ln 512 ≈ 6.24 for the random model to
    about ln(4)/2 ≈ 0.69, a uniform choice among the four digits followed by a sure EOS. Seeds 0–7:
    first step 6.09–6.42; mean of the first three steps 5.22–5.99, of the last three 0.70–0.74."""
    cfg, _ = sft_run
    losses = curve(cfg, "token_loss")
    assert len(losses) == 16
    assert losses[0] == pytest.approx(math.log(512), abs=0.3)
    first, last = mean(losses[:3]), mean(losses[-3:])
    assert last < first - 3.5, losses
    assert last < 0.85, losses


def test_dpo_margin_between_chosen_and_rejected_rises(
    toy: dict[str, str], sft_run: tuple[SFTConfig, StageResult], tmp_path: Path
) -> None:
    """`rewards/margin`, β × (chosen − rejected policy/reference log-ratio), is 0 at the first step (the
    policy is the reference) and rises on the pairs trained on; `rewards/accuracy` (pairs whose chosen
    log-ratio is the higher) with it. Seeds 0–7: margin over the last three steps 3.0–6.3, accuracy
    0.92–1.0."""
    cfg = stage_config(DPOConfig, tmp_path, str(sft_run[1].checkpoint), toy["prefs"], 12,
                       {"name": "dpo", "optim": {"schedule": "linear"}, "train": {"max_steps": 24}})  # fmt: skip
    run_stage(DPOTrainer, cfg)
    margins, accuracy = curve(cfg, "rewards/margin"), curve(cfg, "rewards/accuracy")
    assert len(margins) == 24
    assert margins[0] == pytest.approx(0.0, abs=1e-4)
    assert mean(margins[-3:]) > margins[0] + 1.5, margins
    assert mean(accuracy[-3:]) >= 0.75, accuracy


def test_reward_model_learns_to_rank_its_pairs(
    toy: dict[str, str], sft_run: tuple[SFTConfig, StageResult], tmp_path: Path
) -> None:
    """Pairwise accuracy and mean margin (chosen − rejected reward) on the 12 training pairs, as the
    trainer evaluates them before the first step and after the last. Seeds 0–7: accuracy 0.33–0.75
    (about chance) → 1.0; margin −0.00…0.08 → 7.1–15.3."""
    cfg = stage_config(RewardModelConfig, tmp_path, str(sft_run[1].checkpoint), toy["prefs"], 12,
                       {"name": "rm", "optim": {"schedule": "linear"}, "train": {"max_steps": 60},
                        "eval": {"prefs_test": toy["prefs"], "at_start": True}})  # fmt: skip
    result = run_stage(RewardModelTrainer, cfg)
    assert result.evaluation["pairs"] == 12
    (before,), (after,) = curve(cfg, "eval_start/pairwise_accuracy"), curve(cfg, "eval/pairwise_accuracy")
    assert after >= 0.9 and after - before >= 0.25, (before, after)
    (margin_before,), (margin_after,) = curve(cfg, "eval_start/margin"), curve(cfg, "eval/margin")
    assert margin_after > margin_before + 3.0, (margin_before, margin_after)


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_rl_mean_reward_rises(
    algo: str, toy: dict[str, str], sft_run: tuple[SFTConfig, StageResult], tmp_path: Path
) -> None:
    """The SFT policy answers "Pick a number." with each digit about a quarter of the time; the verifier
    pays 10 for "3" and nothing for the others (-10 for no EOS). Mean reward of 32 samples a step, the
    first two steps against the last two (of 8). Seeds 0–7: 2.2–4.2 → 7.2–9.7 (gain +5.0 to +6.3),
    correct rate over the last two steps 0.81–0.97."""
    rl = {
        "name": algo,
        "seed": SEED,
        "algo": algo,
        "runs_root": str(tmp_path / "runs"),
        "policy": str(sft_run[1].checkpoint),
        "value_init": "policy",
        "log": {"wandb": False, "progress": False, "every": 1000},
        "data": {"train": [toy["rlvr"]], "max_prompt_tokens": 32},
        "rollout": {"backend": "hf", "prompts_per_step": 4, "samples_per_prompt": 8, "max_response_tokens": 4,
                    "max_total_tokens": 64, "temperature": 1.0},
        "kl": {"beta": 0.01} if algo == "ppo" else {"beta": 0.01, "estimator": "k3", "placement": "loss"},
        "loss": {"epochs": 2, "minibatches": 1},
        "optim": {"lr": 3e-3},
        "train": {"total_episodes": 8 * 32, "micro_batch_size": 32, "attention": "eager", "save_every": 1000},
    }  # fmt: skip
    cfg = from_dict(PPOConfig, rl)
    train(cfg)
    rewards, correct = curve(cfg, "reward"), curve(cfg, "correct_rate")
    assert len(rewards) == 8
    first, last = mean(rewards[:2]), mean(rewards[-2:])
    assert last > first + 3.0, rewards
    assert mean(correct[-2:]) >= 0.7, correct
