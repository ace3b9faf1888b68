import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pretrain_helpers import TINY_MODEL, word_problems, write_jsonl

from base_model.cli import main
from rlvr.train.checkpoint import list_checkpoints


def test_tokenizer_prepare_train_soup_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in word_problems(400, seed=5)])
    assert (
        main(["tokenizer", "--inputs", str(corpus), "--out", str(tmp_path / "tok"), "--vocab_size", "384"])
        == 0
    )
    args = [
        "prepare",
        "--inputs",
        str(corpus),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--out",
        str(tmp_path / "tokens"),
    ]
    assert main([*args, "--val_fraction", "0.1"]) == 0
    assert "tokens" in capsys.readouterr().out

    config = {
        "name": "cli",
        "runs_root": str(tmp_path / "runs"),
        "tokenizer": str(tmp_path / "tok"),
        "log": {"wandb": False, "progress": False},
        "model": TINY_MODEL,
        "data": {"train": [{"paths": [str(tmp_path / "tokens" / "*.tokens.bin")]}], "seq_len": 64},
        "train": {
            "max_steps": 2,
            "global_batch_size": 4,
            "micro_batch_size": 4,
            "save_every": 1,
            "peak_tflops": 1.0,
        },
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    assert (
        main(["--config", str(tmp_path / "cfg.yaml"), "--train.precision=fp32", "--data.eval_paths=[]"]) == 0
    )
    assert "final checkpoint" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "runs" / "cli" / "config.yaml").read_text())
    assert saved["train"]["precision"] == "fp32" and saved["optim"]["z_loss"] == 1e-5  # resolved config kept

    a, b = list_checkpoints(tmp_path / "runs" / "cli" / "checkpoints")
    assert main(["soup", "--inputs", str(a), str(b), "--out", str(tmp_path / "soup")]) == 0
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["inputs"] == [str(a), str(b)]


def test_bad_input_gives_a_clear_message_and_non_zero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            ["prepare", "--inputs", str(tmp_path / "nope.jsonl"), "--tokenizer", str(tmp_path), "--out", "x"]
        )
        == 1
    )
    assert "rlvr pretrain tokenizer" in capsys.readouterr().err  # no tokenizer: says how to make one
    (tmp_path / "cfg.yaml").write_text("train: {max_stepz: 3}\n")
    assert main(["--config", str(tmp_path / "cfg.yaml")]) == 2
    assert "did you mean 'train.max_steps'" in capsys.readouterr().err
    assert main(["soup", "--inputs", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "at least two" in capsys.readouterr().err


def test_presets_and_rlvr_routing() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "pretrain", "presets"], capture_output=True, text=True, check=True
    ).stdout
    assert "olmo2_7b" in out and "7.30B parameters" in out and "13.72B parameters" in out
