"""PPO and GRPO on 2 CPU processes (torchrun, gloo; the transformers engine on rank 0): DDP and
DeepSpeed ZeRO-2 reproduce the single-process run's metrics and final weights, and a ZeRO-2 run
killed at a step resumes to the same result. Each torchrun launch costs ≈15 s here, so those tests
are `slow` (`make test-all`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_distributed import ZERO2, torchrun
from test_ppo_trainer import ppo_cfg

from base_model.checkpoint import read_state_dict
from base_model.distributed import Dist
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.trainer import PPOTrainer, train
from rlvr.config import load_config
from rlvr.tracking import read_metrics

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

KILLED_AT_STEP_3 = """
import sys

from rlvr.algos.ppo.trainer import PPOTrainer
from rlvr.cli import main

real_step = PPOTrainer.train_step


def dies_at_step_3(self):
    if self.step == 3:
        raise KeyboardInterrupt
    return real_step(self)


PPOTrainer.train_step = dies_at_step_3
sys.exit(main(sys.argv[1:]))
"""
"""`rlvr` with every process dying as step 3 starts (after the checkpoint at step 2)."""


def assert_same_run(got: PPOConfig, want: PPOConfig, keys: tuple[str, ...], parts: tuple[str, ...]) -> None:
    expected = read_metrics(want.run_dir / "metrics.jsonl")
    records = read_metrics(got.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected], got.name
    for key in keys:
        want_values = {r["step"]: r[key] for r in expected if key in r}
        got_values = {r["step"]: r[key] for r in records if key in r}
        assert want_values and got_values == pytest.approx(want_values, rel=1e-4, abs=1e-6), (got.name, key)
    final = f"step{expected[-1]['step']}"
    for part in parts:
        weights = read_state_dict(got.run_dir / "checkpoints" / final / part)
        for name, tensor in read_state_dict(want.run_dir / "checkpoints" / final / part).items():
            torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6, msg=f"{got.name} {name}")


@pytest.mark.slow
def test_ppo_on_two_processes_matches_one(tmp_path: Path, suite: Path, base_checkpoint: Path) -> None:
    """4 steps of 8 episodes in 2 minibatches: each process trains 2 sequences per update."""

    def cfg(name: str, train_updates: dict[str, Any] | None = None) -> PPOConfig:
        return ppo_cfg(tmp_path, suite, base_checkpoint, {"name": name, "train": train_updates or {}})

    single = cfg("single")
    train(single)
    ddp = cfg("ddp")
    torchrun(ddp, tmp_path, stage="ppo")
    zero2 = cfg("zero2", {"deepspeed": str(ZERO2)})
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AT_STEP_3)
    killed = torchrun(zero2, tmp_path, stage="ppo", entry=[str(script)], check=False)
    assert killed.returncode != 0 and "KeyboardInterrupt" in killed.stderr
    checkpoints = zero2.run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step2"]
    assert len(list((checkpoints / "step2" / "policy" / "deepspeed").glob("*optim_states.pt"))) == 2
    torchrun(zero2, tmp_path, stage="ppo")  # resumes from step 2
    keys = ("reward", "policy_loss", "value_loss", "kl", "entropy", "clipfrac", "ratio_max", "grad_norm/policy",
            "grad_norm/value", "eval/accuracy")  # fmt: skip
    for run in (ddp, zero2):
        assert_same_run(run, single, keys, ("policy", "value"))


@pytest.mark.slow
def test_grpo_on_two_processes_matches_one(tmp_path: Path, suite: Path, base_checkpoint: Path) -> None:
    """One pass with the KL in the loss: each process fills in the old log-probs of its own rows."""
    updates = {"algo": "grpo", "kl": {"estimator": "k3", "placement": "loss", "beta": 0.1},
               "loss": {"epochs": 1, "minibatches": 1}, "data": {"test": []}}  # fmt: skip
    single = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "single", **updates})
    train(single)
    two = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "two", **updates})
    torchrun(two, tmp_path, stage="ppo")
    assert_same_run(two, single, ("reward", "policy_loss", "kl", "kl_loss", "grad_norm/policy"), ("policy",))


def test_a_batch_that_does_not_split_evenly_over_processes_is_refused(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    trainer = PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"rollout": {"prompts_per_step": 3}}))
    trainer.dist = Dist(rank=0, world=2)  # 6 episodes, 2 minibatches: 3 per minibatch for 2 processes
    with pytest.raises(ValueError, match="do not split evenly"):
        trainer._micro_batches_per_update()


def test_cluster_config_loads() -> None:
    cfg = load_config(PPOConfig, CONFIGS / "ppo" / "olmo2_1b_rlvr_cluster.yaml")
    assert cfg.train.deepspeed == "configs/deepspeed/zero2.json"
    assert (CONFIGS / "deepspeed" / "zero2.json").is_file()
    assert cfg.rollout.backend == "vllm" and cfg.rollout.vllm.dtype == "bfloat16"
    episodes = cfg.rollout.prompts_per_step * cfg.rollout.samples_per_prompt
    assert all(episodes % (cfg.loss.minibatches * gpus) == 0 for gpus in (8, 16, 32, 64))  # whole nodes
