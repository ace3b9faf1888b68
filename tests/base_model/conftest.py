"""Shared fixtures: a small generated corpus, a tokenizer trained on it, its token files, tiny configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pretrain_helpers import TINY_MODEL, word_problems, write_jsonl

from base_model.config import PretrainConfig
from base_model.data import iter_texts, prepare_memmaps
from base_model.tokenizer import train_tokenizer
from rlvr.config import from_dict, merge


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = 'def add(a, b):\n    """Sum."""\n\treturn a + b  # tab-indented\n\n\nprint(add(12, 30))\n'
    rows = [{"text": t} for t in word_problems(1500)] + [{"text": code}] * 20
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def tokenizer_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(iter_texts([str(corpus)]), out, vocab_size=384)
    return out


@pytest.fixture(scope="session")
def token_dir(corpus: Path, tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tokens")
    prepare_memmaps([str(corpus)], tokenizer_dir, out, val_fraction=0.05)
    return out


@pytest.fixture
def make_cfg(tmp_path: Path, tokenizer_dir: Path, token_dir: Path) -> Callable[..., PretrainConfig]:
    """`make_cfg({"train": {"max_steps": 4}})`: a tiny fp32 run on the fixture corpus, nested updates merged in."""

    def make(updates: dict[str, Any] | None = None) -> PretrainConfig:
        base = {
            "name": "tiny-test",
            "runs_root": str(tmp_path / "runs"),
            "tokenizer": str(tokenizer_dir),
            "log": {"wandb": False, "progress": False, "every": 1000},
            "model": TINY_MODEL,
            "data": {
                "train": [{"paths": [str(token_dir / "corpus.tokens.bin")]}],
                "eval_paths": [str(token_dir / "val" / "corpus.tokens.bin")],
                "seq_len": 64,
                "eval_sequences": 8,
            },
            "optim": {"lr": 3e-3},
            "schedule": {"warmup_steps": 2},
            "train": {
                "max_steps": 6,
                "global_batch_size": 8,
                "micro_batch_size": 4,
                "precision": "fp32",  # exact comparisons; bf16 has its own test
                "eval_every": 3,
                "save_every": 3,
                "peak_tflops": 1.0,  # skip the start-up matmul measurement
            },
        }
        return from_dict(PretrainConfig, merge(base, updates or {}))

    return make
