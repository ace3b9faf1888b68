"""From-scratch OLMo 2 pretraining: tokenizer, token memmaps, the training loop, souping.

    from base_model import train_tokenizer, iter_texts, prepare_memmaps, PretrainConfig, pretrain, soup

    train_tokenizer(iter_texts(["corpus.jsonl"]), "runs/tokenizer", vocab_size=1024)
    prepare_memmaps(["corpus.jsonl"], "runs/tokenizer", "runs/tokens", val_fraction=0.02)
    cfg = load_config(PretrainConfig, "configs/pretrain/tiny.yaml", ["--train.max_steps=100"])
    final_checkpoint = pretrain(cfg)
    soup([ckpt_a, ckpt_b, ckpt_c], "runs/soup")

Names are imported on first use, so `import base_model` (and `rlvr pretrain --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "train_tokenizer": "base_model.tokenizer",
    "load_tokenizer": "base_model.tokenizer",
    "iter_texts": "base_model.data",
    "prepare_memmaps": "base_model.data",
    "ModelConfig": "base_model.model",
    "PRESETS": "base_model.model",
    "build_model": "base_model.model",
    "num_params": "base_model.model",
    "PretrainConfig": "base_model.config",
    "Trainer": "base_model.trainer",
    "pretrain": "base_model.trainer",
    "soup": "base_model.soup",
    "list_checkpoints": "rlvr.train.checkpoint",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'base_model' has no attribute '{name}'")
    return getattr(importlib.import_module(_API[name]), name)
