"""Slow end-to-end checks: the shipped tiny configs on the synthetic suite, and `train.compile`."""

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from base_model.config import PretrainConfig
from base_model.data import iter_texts, prepare_memmaps
from base_model.soup import heldout_loss, soup
from base_model.tokenizer import train_tokenizer
from base_model.trainer import pretrain
from rlvr.config import load_config
from rlvr.synth import SynthConfig, write_suite
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import list_checkpoints

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


def shipped(name: str, root: Path, train: list[str], *overrides: str) -> PretrainConfig:
    """A configs/pretrain YAML with its `runs/...` paths pointed into `root`."""
    tokens = root / "tokens"
    sources = ", ".join(f"{{name: {n}, paths: [{tokens / (n + '.tokens.bin')}]}}" for n in train)
    return load_config(
        PretrainConfig,
        CONFIGS / name,
        [
            f"--runs_root={root}",
            f"--tokenizer={root / 'tokenizer'}",
            f"--data.train=[{sources}]",
            f"--data.eval_paths=[{tokens / 'val' / 'pretrain.tokens.bin'}]",
            "--log.wandb=false",
            "--log.progress=false",
            *overrides,
        ],
    )


@pytest.mark.slow
def test_tiny_preset_learns_the_synthetic_corpus_then_anneals_and_soups(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_suite(SynthConfig(), data)
    corpus, chats = str(data / "pretrain.jsonl"), str(data / "sft_train.jsonl")
    start = time.time()
    train_tokenizer(iter_texts([corpus, chats]), tmp_path / "tokenizer", vocab_size=1024)
    prepare_memmaps([corpus], tmp_path / "tokenizer", tmp_path / "tokens", val_fraction=0.02)
    prepare_memmaps([chats], tmp_path / "tokenizer", tmp_path / "tokens")

    stage1 = shipped("tiny.yaml", tmp_path, ["pretrain"])
    stage1_final = pretrain(stage1)
    minutes = (time.time() - start) / 60
    evals = [r["eval_loss"] for r in read_metrics(stage1.run_dir / "metrics.jsonl") if "eval_loss" in r]
    print(
        f"tiny stage 1: {minutes:.1f} min with data prep, held-out loss {evals[0]:.3f} → {evals[-1]:.3f}",
        file=sys.stderr,
    )
    assert evals[-1] < 0.75 < evals[0]  # measured 1.158 → 0.612
    samples = (stage1.run_dir / "samples.txt").read_text()
    assert "Answer: 13 + 25 = 38. #### 38" in samples  # the corpus's worked-answer format, right here
    assert "The answer is $\\boxed{" in samples and "The rabbit is" in samples

    finals = []
    for ingredient in (1, 2):
        cfg = shipped(
            "tiny_stage2.yaml",
            tmp_path,
            ["pretrain", "sft_train"],
            f"--init_from={stage1_final}",
            f"--ingredient={ingredient}",
            f"--seed={ingredient}",
            f"--name=anneal-{ingredient}",
        )
        finals.append(pretrain(cfg))
        assert [p.name for p in list_checkpoints(cfg.run_dir / "checkpoints")] == [
            f"stage2-ingredient{ingredient}-step150-tokens0B"
        ]
    base = soup(finals, tmp_path / "base")
    loss = heldout_loss(
        base, [tmp_path / "tokens" / "val" / "pretrain.tokens.bin"], seq_len=256, max_chunks=64
    )
    print(f"soup of 2 anneals: held-out loss {loss:.3f}", file=sys.stderr)
    assert loss < evals[-1] * 1.05


@pytest.mark.slow
def test_compiled_training_matches_eager(make_cfg: Callable[..., PretrainConfig]) -> None:
    curves = []
    for name, compiled in (("eager", False), ("compiled", True)):
        cfg = make_cfg({"name": name, "train": {"max_steps": 3, "compile": compiled, "attention": "eager"}})
        pretrain(cfg)
        curves.append([r["loss"] for r in read_metrics(cfg.run_dir / "metrics.jsonl")])
    assert curves[1] == pytest.approx(curves[0], rel=1e-4)
