"""Data parallel on 2 CPU processes (torchrun, gloo): DDP and DeepSpeed ZeRO-2 both reproduce the
single-process run, and a ZeRO-2 run resumed from its checkpoint continues it exactly."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from base_model.config import PretrainConfig
from base_model.trainer import pretrain
from rlvr.config import save_config
from rlvr.tracking import read_metrics

ZERO2 = Path(__file__).resolve().parents[2] / "configs" / "deepspeed" / "zero2.json"


def torchrun(cfg: PretrainConfig, tmp_path: Path, *overrides: str) -> None:
    config = tmp_path / f"{cfg.name}.yaml"
    save_config(cfg, config)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "base_model.cli", "--config", str(config), *overrides]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]


def test_two_processes_match_one(make_cfg: Callable[..., PretrainConfig], tmp_path: Path) -> None:
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

    ddp = make_cfg({"name": "ddp", **updates})
    torchrun(ddp, tmp_path)
    zero2 = make_cfg({"name": "zero2", **updates, "train": {**updates["train"], "deepspeed": str(ZERO2)}})
    torchrun(zero2, tmp_path, "--train.max_steps=4")
    torchrun(zero2, tmp_path)  # resumes from step 4

    for cfg in (ddp, zero2):
        records = read_metrics(cfg.run_dir / "metrics.jsonl")
        assert [r["step"] for r in records] == list(range(1, 7)), cfg.name
        for key in ("loss", "grad_norm", "eval_loss"):
            got = [r.get(key) for r in records if key in r]
            assert got == pytest.approx([r[key] for r in expected if key in r], rel=1e-4), (cfg.name, key)
    assert (zero2.run_dir / "checkpoints" / "step6-tokens0B" / "model.safetensors").is_file()
