"""Test-wide settings: nothing reaches a network, wandb stays local, threads match the 2-core CI."""

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCHMARK_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def benchmark_data() -> Path:
    """Real GSM8K, MATH-500 and IFEval test rows, a small slice of each file (tests/data/README.md)."""
    return BENCHMARK_DATA


TINY_MODEL = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 2,
    "mlp_hidden": 128,
    "vocab_size": 300,
    "max_seq_len": 128,
}
"""Head size 32 (vLLM's CPU minimum), 2 layers, a 128-token context."""


@pytest.fixture(scope="session")
def make_tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Sequence[str]], Path]:
    """`make_tiny_checkpoint(texts)`: a random tiny OLMo 2 with a tokenizer trained on `texts`, saved as
    a Hugging Face checkpoint that transformers and vLLM load."""
    from base_model.model import ModelConfig, build_model
    from base_model.tokenizer import load_tokenizer, train_tokenizer
    from rlvr.train.checkpoint import save_model

    def make(texts: Sequence[str]) -> Path:
        config = ModelConfig(**TINY_MODEL)
        tokenizer_dir = tmp_path_factory.mktemp("tokenizer")
        train_tokenizer(iter(texts), tokenizer_dir, vocab_size=config.vocab_size)
        tokenizer = load_tokenizer(tokenizer_dir)
        model = build_model(config, tokenizer.eos_token_id, tokenizer.pad_token_id, seed=0, attention="eager")
        out = tmp_path_factory.mktemp("policy")
        save_model(model, tokenizer, out)
        return out

    return make
