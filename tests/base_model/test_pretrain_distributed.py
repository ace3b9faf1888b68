"""Pretraining on 2 CPU processes (torchrun, gloo) in every `train.sharding` mode: each reproduces the
single-process run (loss curve and final weights), a run killed after its step-4 checkpoint resumes
to the same numbers, and the sharded modes hold about half the parameter, gradient and optimizer
bytes per process."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from base_model.config import PretrainConfig
from base_model.trainer import pretrain
from rlvr.config import save_config
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import read_state_dict

MODES = ["ddp", "zero2", "zero3", "fsdp2"]
FAST = ["fsdp2"]
"""The mode `make test` runs; `make test-all` runs them all."""
# 2 processes reduce in another order than 1: fp32 sums differ in the last bits, so losses agree to
# rel 1e-4 after 6 steps, and weights to 1 % of the furthest Adam can move one in 6 steps at lr 3e-3
# (an element whose gradient is near zero turns rounding into a visible share of its update).
RTOL_LOSS, ATOL_WEIGHT = 1e-4, 0.01 * 6 * 3e-3
# Bytes per process against one process in the same mode (DeepSpeed keeps an fp32 master partition
# beside fp32 weights, which plain AdamW has not): the sharded parts hold ≈ 1/2, padding a little over.
SHARDED_PARTS = {"ddp": (), "zero2": ("grads", "optimizer"), "zero3": ("params", "grads", "optimizer"),
                 "fsdp2": ("params", "grads", "optimizer")}  # fmt: skip


def torchrun(cfg: PretrainConfig, tmp_path: Path, *overrides: str, processes: int = 2) -> None:
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
    command += ["-m", "base_model.cli", "--config", str(config), *overrides]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.mark.parametrize(
    "mode", [pytest.param(m, marks=[] if m in FAST else [pytest.mark.slow]) for m in MODES]
)
def test_two_processes_match_one(make_cfg: Callable[..., PretrainConfig], tmp_path: Path, mode: str) -> None:
    # A constant LR, so "4 steps, then resume to 6" is the same schedule as "6 steps".
    updates = {
        "schedule": {"kind": "constant", "warmup_steps": 0},
        "train": {
            "max_steps": 6,
            "global_batch_size": 8,
            "micro_batch_size": 2,
            "save_every": 2,
            "eval_every": 2,
        },
    }
    single = make_cfg({"name": "single", **updates})
    pretrain(single)
    expected = read_metrics(single.run_dir / "metrics.jsonl")

    cfg = make_cfg({"name": mode, **updates, "train": {**updates["train"], "sharding": mode}})
    torchrun(cfg, tmp_path, "--train.max_steps=4")
    torchrun(cfg, tmp_path)  # resumes from step 4
    records = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 7))
    for key in ("loss", "grad_norm", "eval_loss"):
        got = [r.get(key) for r in records if key in r]
        assert got == pytest.approx([r[key] for r in expected if key in r], rel=RTOL_LOSS), key
    final = "step6-tokens0B"
    want = read_state_dict(single.run_dir / "checkpoints" / final)
    got = read_state_dict(cfg.run_dir / "checkpoints" / final)
    assert got.keys() == want.keys()
    for key, tensor in want.items():
        assert got[key].dtype == tensor.dtype and got[key].allclose(tensor, atol=ATOL_WEIGHT, rtol=0), key
    alone = expected
    if mode in ("zero2", "zero3"):
        one = make_cfg(
            {
                "name": f"{mode}-alone",
                **updates,
                "train": {**updates["train"], "sharding": mode, "max_steps": 1},
            }
        )
        torchrun(one, tmp_path, processes=1)
        alone = read_metrics(one.run_dir / "metrics.jsonl")
    for part in ("params", "grads", "optimizer"):
        whole, mine = alone[-1][f"memory/{part}"], records[-1][f"memory/{part}"]
        assert whole > 0 and mine > 0, (part, mine, whole)
        if part in SHARDED_PARTS[mode]:
            assert 0.45 * whole <= mine <= 0.62 * whole, (part, mine, whole)
        else:
            assert mine == pytest.approx(whole, rel=0.02), (part, mine, whole)
