"""PPO and GRPO on 2 CPU processes (torchrun, gloo; the transformers engine on rank 0) in every
`train.sharding` mode: each reproduces the single-process run's metrics and final weights, a run
killed at a step resumes to the same result, and the sharded parts hold about half the bytes per
process. Each torchrun launch costs ≈15 s here: the fsdp2 PPO run is in `make test`, the rest `slow`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_distributed import MODES, assert_same_training, torchrun
from test_ppo_trainer import ppo_cfg

from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.trainer import PPOTrainer, train
from rlvr.config import load_config
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import list_checkpoints
from rlvr.train.distributed import Dist

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


PPO_KEYS = ("reward", "policy_loss", "value_loss", "kl", "entropy", "clipfrac", "ratio_max", "grad_norm/policy",
            "grad_norm/value", "eval/accuracy")  # fmt: skip


@pytest.mark.parametrize(
    "mode", [pytest.param(m, marks=[] if m == "fsdp2" else [pytest.mark.slow]) for m in MODES]
)
def test_ppo_on_two_processes_matches_one(
    tmp_path: Path, suite: Path, base_checkpoint: Path, mode: str
) -> None:
    """4 steps of 8 episodes in 2 minibatches: each process trains 2 sequences per update; killed as
    step 3 starts, then resumed from the step-2 checkpoint."""
    single = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "single"})
    train(single)
    two = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": mode, "train": {"sharding": mode}})
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AT_STEP_3)
    killed = torchrun(two, tmp_path, stage="ppo", entry=[str(script)], check=False)
    assert killed.returncode != 0 and "KeyboardInterrupt" in killed.stderr
    (saved,) = list_checkpoints(two.run_dir / "checkpoints")
    assert saved.name.startswith("step2-")
    torchrun(two, tmp_path, stage="ppo")  # resumes from step 2
    alone = None
    if mode in ("zero2", "zero3"):
        one = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": f"{mode}-alone", "data": {"test": []},
                                                         "train": {"sharding": mode, "total_episodes": 8}})  # fmt: skip
        torchrun(one, tmp_path, stage="ppo", processes=1)
        alone = one.run_dir
    assert_same_training(
        two.run_dir, single.run_dir, PPO_KEYS, mode, folders=("policy", "value"), alone=alone
    )


@pytest.mark.slow
def test_grpo_on_two_processes_matches_one(tmp_path: Path, suite: Path, base_checkpoint: Path) -> None:
    """One pass with the KL in the loss: each process fills in the old log-probs of its own rows."""
    updates = {"algo": "grpo", "kl": {"estimator": "k3", "placement": "loss", "beta": 0.1},
               "loss": {"epochs": 1, "minibatches": 1}, "data": {"test": []}}  # fmt: skip
    single = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "single", **updates})
    train(single)
    two = ppo_cfg(
        tmp_path, suite, base_checkpoint, {"name": "fsdp2", **updates, "train": {"sharding": "fsdp2"}}
    )
    torchrun(two, tmp_path, stage="ppo")
    assert_same_training(two.run_dir, single.run_dir, ("reward", "policy_loss", "kl", "kl_loss", "grad_norm/policy"),
                         "fsdp2", folders=("policy",))  # fmt: skip


def test_a_batch_that_does_not_split_evenly_over_processes_is_refused(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    trainer = PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"rollout": {"prompts_per_step": 3}}))
    trainer.dist = Dist(rank=0, world=2)  # 6 episodes, 2 minibatches: 3 per minibatch for 2 processes
    with pytest.raises(ValueError, match="do not split evenly"):
        trainer._micro_batches_per_update()


def test_cluster_config_loads() -> None:
    cfg = load_config(PPOConfig, CONFIGS / "ppo" / "olmo2_1b_rlvr_cluster.yaml")
    assert cfg.train.sharding == "zero2"
    assert cfg.rollout.backend == "vllm" and cfg.rollout.vllm.dtype == "bfloat16"
    episodes = cfg.rollout.prompts_per_step * cfg.rollout.samples_per_prompt
    assert all(episodes % (cfg.loss.minibatches * gpus) == 0 for gpus in (8, 16, 32, 64))  # whole nodes


ENGINE_KILLED_AT_STEP_3 = """
import sys

import psutil

from rlvr.algos.ppo.trainer import PPOTrainer
from rlvr.cli import main

real_step = PPOTrainer.train_step


def kills_an_engine_at_step_3(self):
    if self.step == 3 and self.sampler is not None:
        engines = [p for p in psutil.Process().children() if p.name().startswith("VLLM::Engine")]
        engines[-1].kill()
        engines[-1].wait(30)
    return real_step(self)


if __name__ == "__main__":
    PPOTrainer.train_step = kills_an_engine_at_step_3
    sys.exit(main(sys.argv[1:]))
"""
"""`rlvr` whose last vLLM engine process dies as step 3 starts (after the checkpoint at step 2)."""


@pytest.mark.slow
def test_grpo_on_two_sharded_processes_and_two_vllm_engines(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    """fsdp2 on 2 processes feeding 2 vLLM engines (weights streamed from the shards, every engine
    verified after every sync) trains as 1 process with 1 engine; a killed engine stops the run with
    an error naming it, and the run resumes from its last checkpoint (the fresh engines start from
    the initial weights and are synced before they sample)."""
    pytest.importorskip("vllm")
    updates = {"algo": "grpo", "kl": {"estimator": "k3", "placement": "loss", "beta": 0.1},
               "loss": {"epochs": 1, "minibatches": 1}, "data": {"test": []},
               "rollout": {"backend": "vllm", "vllm": {"gpu_memory_utilization": 0.05, "max_model_len": 128}}}  # fmt: skip
    single = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "single", **updates})
    train(single)
    fleet = {**updates["rollout"], "vllm": {**updates["rollout"]["vllm"], "engines": 2}}  # type: ignore[dict-item]
    two = ppo_cfg(tmp_path, suite, base_checkpoint,
                  {"name": "fsdp2-2engines", **updates, "rollout": fleet, "train": {"sharding": "fsdp2"}})  # fmt: skip
    script = tmp_path / "engine_killed.py"
    script.write_text(ENGINE_KILLED_AT_STEP_3)
    killed = torchrun(two, tmp_path, stage="ppo", entry=[str(script)], check=False)
    assert killed.returncode != 0
    assert "engine 1" in killed.stderr, killed.stderr[-4000:]
    (saved,) = list_checkpoints(two.run_dir / "checkpoints")
    assert saved.name.startswith("step2-")
    torchrun(two, tmp_path, stage="ppo")  # resumes from step 2
    records = read_metrics(two.run_dir / "metrics.jsonl")
    synced = [r for r in records if r["step"] >= 2]  # step 1's batch came from the starting weights
    assert len(synced) == 3
    for r in synced:
        gaps = [r["sync_probe_gap/engine0"], r["sync_probe_gap/engine1"]]
        assert max(gaps) <= 1e-3 and r["sync_probe_gap"] == max(gaps)
    assert_same_training(two.run_dir, single.run_dir, ("reward", "policy_loss", "kl", "kl_loss", "grad_norm/policy"),
                         "fsdp2", folders=("policy",))  # fmt: skip
