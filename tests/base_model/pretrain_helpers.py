"""Helpers shared by the pretraining tests (conftest.py holds the fixtures)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

NAMES = ["Tom", "Ana", "Lee", "Sam", "Mia", "Raj"]
ITEMS = ["apples", "pens", "books", "coins", "cards"]


def word_problems(n: int, seed: int = 0) -> list[str]:
    """Templated two-number sums, the shape of the synthetic pretraining corpus."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        who, what = rng.choice(NAMES), rng.choice(ITEMS)
        docs.append(
            f"{who} has {a} {what} and gets {b} more. How many {what} does {who} have now?\n"
            f"{a} + {b} = {a + b}. #### {a + b}"
        )
    return docs


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# Head size 32: the smallest vLLM's CPU attention takes.
TINY_MODEL = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 2,
    "mlp_hidden": 128,
    "vocab_size": 384,
    "max_seq_len": 64,
}
