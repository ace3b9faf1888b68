"""`rlvr sft|dpo|rm --config configs/<stage>/tiny.yaml`: the shipped presets run and print their figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.cli import main

FAST = [
    "--train.max_steps=1",
    "--train.batch_size=4",
    "--train.micro_batch_size=4",
    "--train.precision=fp32",
    "--data.max_length=192",
    "--eval.max_prompts=4",
    "--eval.max_new_tokens=4",
    "--log.wandb=false",
    "--log.progress=false",
]


@pytest.mark.parametrize("stage", ["sft", "dpo", "rm"])
def test_stage_command_trains_and_prints_held_out_figures(
    stage: str, tmp_path: Path, suite: Path, base_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = "sft_train.jsonl" if stage == "sft" else "prefs_train.jsonl"
    paths = [
        f"--runs_root={tmp_path}",
        f"--init_from={base_checkpoint}",
        f"--data.train=[{suite / train}]",
        f"--eval.prefs_test={suite / 'prefs_test.jsonl'}",
    ]
    if stage != "rm":
        paths.append(f"--eval.rlvr_test={suite / 'rlvr_test.jsonl'}")
    assert main([stage, "--config", f"configs/{stage}/tiny.yaml", *paths, *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["checkpoint"]).is_dir()
    figure = "pairwise_accuracy" if stage == "rm" else "accuracy"
    count = printed["pairs" if stage == "rm" else "prompts"]  # eval.max_prompts
    assert count == 4 and printed[figure] * count in range(count + 1)  # a share of those 4
    metrics = [json.loads(line) for line in (tmp_path / stage / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1][f"eval/{figure}"] == printed[figure]  # kept in the run's metrics too


def test_config_errors_name_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dpo", "--config", "configs/dpo/tiny.yaml", "--dpo.loss_type=kto"]) == 2
    assert "dpo.loss_type" in capsys.readouterr().err
