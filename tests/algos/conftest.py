"""Shared fixtures: a small synthetic suite, a tokenizer trained on it and a tiny OLMo 2 "base" checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from base_model.data import iter_texts
from base_model.model import ModelConfig, build_model
from base_model.tokenizer import load_tokenizer, train_tokenizer
from rlvr.config import from_dict, merge
from rlvr.synth import SynthConfig, write_suite
from rlvr.train.checkpoint import save_model

# Head size 32 (vLLM's CPU minimum), 2 layers: a forward pass over a batch takes milliseconds.
TINY = {"d_model": 64, "n_layers": 2, "n_heads": 2, "mlp_hidden": 128, "vocab_size": 512, "max_seq_len": 256}


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    sizes = {"rlvr_train": 0, "rlvr_test": 8, "sft_train": 40, "prefs_train": 24, "prefs_test": 8}
    cfg = from_dict(SynthConfig, {"pretrain": {"docs": 200}, "gsm8k": sizes, "math": sizes, "ifeval": sizes})
    write_suite(cfg, out)
    return out


@pytest.fixture(scope="session")
def base_checkpoint(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised tiny model with the suite's tokenizer, saved like the pipeline's base model."""
    tokenizer_dir = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(
        iter_texts([str(suite / "pretrain.jsonl"), str(suite / "sft_train.jsonl")]),
        tokenizer_dir,
        vocab_size=TINY["vocab_size"],
    )
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model(ModelConfig(**TINY), tokenizer.eos_token_id, tokenizer.pad_token_id, seed=0)
    out = tmp_path_factory.mktemp("base")
    save_model(model, tokenizer, out)
    return out


@pytest.fixture
def stage_cfg(tmp_path: Path, suite: Path, base_checkpoint: Path) -> Callable[..., Any]:
    """`stage_cfg(SFTConfig, {"train": {...}})`: a tiny fp32 run on the suite, nested updates merged in."""

    def make(cls: type, updates: dict[str, Any] | None = None) -> Any:
        train_file = "sft_train.jsonl" if cls.__name__ == "SFTConfig" else "prefs_train.jsonl"
        base = {
            "name": "test",
            "runs_root": str(tmp_path / "runs"),
            "init_from": str(base_checkpoint),
            "log": {"wandb": False, "progress": False, "every": 1000},
            "data": {"train": [str(suite / train_file)], "max_length": 192},
            "optim": {"lr": 1e-3, "warmup_ratio": 0.25},
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "micro_batch_size": 4,
                "precision": "fp32",
                "attention": "eager",
                "save_every": 3,
            },
        }
        return from_dict(cls, merge(base, updates or {}))

    return make
