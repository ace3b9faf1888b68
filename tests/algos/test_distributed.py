"""SFT, DPO and reward-model training on 2 CPU processes (torchrun, gloo) in every `train.sharding`
mode: each reproduces the single-process run (metrics and final weights), a run stopped after its
step-2 checkpoint resumes to the same numbers, and the sharded parts (zero2: gradients and optimizer
states; zero3, fsdp2: parameters too) hold about half the bytes per process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rlvr.algos.common import run_stage
from rlvr.algos.dpo import DPOConfig, DPOTrainer
from rlvr.algos.reward_model import RewardModelConfig, RewardModelTrainer
from rlvr.algos.sft import SFTConfig, SFTTrainer
from rlvr.config import save_config
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import list_checkpoints, read_state_dict

MODES = ["ddp", "zero2", "zero3", "fsdp2"]
SHARDED_PARTS = {"ddp": (), "zero2": ("grads", "optimizer"), "zero3": ("params", "grads", "optimizer"),
                 "fsdp2": ("params", "grads", "optimizer")}  # fmt: skip
RTOL, ATOL_WEIGHT = 1e-4, 4e-5
"""2 processes sum in another order than 1, so fp32 results differ in the last bits. Metrics agree to
rel 1e-4; weights to 1 % of the furthest Adam can move one in 4 steps at lr 1e-3 (4e-5): an element
whose gradient is near zero turns rounding into a visible share of its update."""


def torchrun(
    cfg: Any,
    tmp_path: Path,
    *overrides: str,
    stage: str = "sft",
    entry: Sequence[str] = ("-m", "rlvr.cli"),
    check: bool = True,
    processes: int = 2,
) -> subprocess.CompletedProcess[str]:
    """`rlvr <stage> --config <cfg>` (or `entry` in place of `-m rlvr.cli`) on 2 processes."""
    config = tmp_path / f"{cfg.name}.yaml"
    save_config(cfg, config)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
    ]
    command += [*entry, stage, "--config", str(config), *overrides]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as err:  # its output comes as bytes, whatever `text` says
        stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else err.stderr or ""
        pytest.fail(f"torchrun did not finish in {err.timeout:g} s; its stderr ended with:\n{stderr[-4000:]}")
    if check:
        assert run.returncode == 0, run.stderr[-4000:]
    return run


STAGES = {
    "sft": (SFTConfig, SFTTrainer),
    "dpo": (DPOConfig, DPOTrainer),
    "rm": (RewardModelConfig, RewardModelTrainer),
}


def assert_same_training(
    got: Path,
    want: Path,
    keys: Sequence[str],
    mode: str,
    folders: Sequence[str] = ("",),
    alone: Path | None = None,
) -> None:
    """Run `got` (2 processes under `mode`) against run `want` (1 process): the same steps and
    `keys` metrics, the same final weights in each checkpoint folder, and per-process bytes ≈ 1/2 of
    those of one process for the parts `mode` shards (the same for the others). `alone`: a
    1-process run in `mode` to take the bytes from (DeepSpeed keeps an fp32 master partition beside
    fp32 weights, which plain AdamW has not); else `want`'s."""
    expected = read_metrics(want / "metrics.jsonl")
    records = read_metrics(got / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected]
    for key in keys:
        want_values = {r["step"]: r[key] for r in expected if key in r}
        got_values = {r["step"]: r[key] for r in records if key in r}
        assert want_values and got_values == pytest.approx(want_values, rel=RTOL, abs=1e-6), key
    final_want, final_got = (
        list_checkpoints(want / "checkpoints")[-1],
        list_checkpoints(got / "checkpoints")[-1],
    )
    assert final_got.name == final_want.name
    for folder in folders:
        weights = read_state_dict(final_got / folder)
        for name, tensor in read_state_dict(final_want / folder).items():
            assert weights[name].dtype == tensor.dtype, name
            assert weights[name].allclose(tensor, rtol=0, atol=ATOL_WEIGHT), (folder, name)
    baseline = read_metrics(alone / "metrics.jsonl") if alone is not None else expected
    memory = [k for k in expected[-1] if k.startswith("memory/")]
    assert memory
    for key in memory:
        whole, mine = baseline[-1][key], records[-1][key]
        assert whole > 0 and mine > 0, (key, mine, whole)
        if key.rsplit("/", 1)[-1] in SHARDED_PARTS[mode]:
            assert 0.45 * whole <= mine <= 0.62 * whole, (key, mine, whole)
        else:
            assert mine == pytest.approx(whole, rel=0.02), (key, mine, whole)


def mode_params(fast: Sequence[tuple[str, str]]) -> list[Any]:
    """(stage, mode) pairs; those in `fast` run in `make test`, the rest are `slow`."""
    return [
        pytest.param(stage, mode, marks=[] if (stage, mode) in fast else [pytest.mark.slow])
        for stage in STAGES
        for mode in MODES
    ]


@pytest.mark.parametrize(("stage", "mode"), mode_params([("sft", "fsdp2")]))
def test_two_processes_match_one(
    stage_cfg: Callable[..., Any], tmp_path: Path, stage: str, mode: str
) -> None:
    config_cls, trainer_cls = STAGES[stage]
    # A constant LR, so "2 steps, then resume to 4" is the same schedule as "4 steps".
    updates = {
        "optim": {"schedule": "constant", "warmup_ratio": 0.0},
        "train": {
            "max_steps": 4,
            "batch_size": 8,
            "micro_batch_size": 2,
            "save_every": 2,
            "precision": "fp32",
        },
    }
    single = stage_cfg(config_cls, {"name": "single", **updates})
    run_stage(trainer_cls, single)
    two = stage_cfg(config_cls, {"name": mode, **updates, "train": {**updates["train"], "sharding": mode}})
    torchrun(two, tmp_path, "--train.max_steps=2", stage=stage)
    torchrun(two, tmp_path, stage=stage)  # resumes from step 2
    alone = None
    if mode in ("zero2", "zero3"):
        one = stage_cfg(config_cls, {"name": f"{mode}-alone", **updates,
                                     "train": {**updates["train"], "sharding": mode, "max_steps": 1}})  # fmt: skip
        torchrun(one, tmp_path, stage=stage, processes=1)
        alone = one.run_dir
    assert_same_training(two.run_dir, single.run_dir, ("loss", "grad_norm"), mode, alone=alone)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["zero2", "zero3", "fsdp2"])
def test_optimizer_offload_gives_the_same_updates(
    stage_cfg: Callable[..., Any], tmp_path: Path, mode: str
) -> None:
    """`train.offload_optimizer`: the optimizer states (fsdp2: the shards too) in CPU memory, the same
    numbers as the single-process run."""
    updates = {"train": {"max_steps": 2, "batch_size": 8, "micro_batch_size": 2, "precision": "fp32"}}
    single = stage_cfg(SFTConfig, {"name": "single", **updates})
    run_stage(SFTTrainer, single)
    train = {**updates["train"], "sharding": mode, "offload_optimizer": True}
    two = stage_cfg(SFTConfig, {"name": f"{mode}-offload", "train": train})
    torchrun(two, tmp_path, stage="sft")
    want, got = read_metrics(single.run_dir / "metrics.jsonl"), read_metrics(two.run_dir / "metrics.jsonl")
    for key in ("loss", "grad_norm"):
        assert [r[key] for r in got] == pytest.approx([r[key] for r in want], rel=RTOL), key
