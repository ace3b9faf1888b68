"""SFT, DPO and reward-model training on 2 CPU processes (torchrun, gloo): DDP and DeepSpeed ZeRO-2
reproduce the single-process run, and a ZeRO-2 run resumed from its checkpoint continues it exactly."""

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

ZERO2 = Path(__file__).resolve().parents[2] / "configs" / "deepspeed" / "zero2.json"


def torchrun(
    cfg: Any,
    tmp_path: Path,
    *overrides: str,
    stage: str = "sft",
    entry: Sequence[str] = ("-m", "rlvr.cli"),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`rlvr <stage> --config <cfg>` (or `entry` in place of `-m rlvr.cli`) on 2 processes."""
    config = tmp_path / f"{cfg.name}.yaml"
    save_config(cfg, config)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
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


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_two_processes_match_one(stage_cfg: Callable[..., Any], tmp_path: Path, stage: str) -> None:
    config_cls, trainer_cls = STAGES[stage]
    # A constant LR, so "2 steps, then resume to 4" is the same schedule as "4 steps".
    updates = {
        "optim": {"schedule": "constant", "warmup_ratio": 0.0},
        "train": {"max_steps": 4, "batch_size": 8, "micro_batch_size": 2, "save_every": 2},
    }
    single = stage_cfg(config_cls, {"name": "single", **updates})
    run_stage(trainer_cls, single)
    expected = read_metrics(single.run_dir / "metrics.jsonl")

    ddp = stage_cfg(config_cls, {"name": "ddp", **updates})
    torchrun(ddp, tmp_path, stage=stage)
    zero2 = stage_cfg(
        config_cls, {"name": "zero2", **updates, "train": {**updates["train"], "deepspeed": str(ZERO2)}}
    )
    torchrun(zero2, tmp_path, "--train.max_steps=2", stage=stage)
    torchrun(zero2, tmp_path, stage=stage)  # resumes from step 2
    for cfg in (ddp, zero2):
        records = read_metrics(cfg.run_dir / "metrics.jsonl")
        assert [r["step"] for r in records] == [1, 2, 3, 4], cfg.name
        for key in ("loss", "grad_norm"):
            assert [r[key] for r in records] == pytest.approx([r[key] for r in expected], rel=1e-4), (
                cfg.name,
                key,
            )
    assert (zero2.run_dir / "checkpoints" / "step4-tokens0B" / "model.safetensors").is_file()
