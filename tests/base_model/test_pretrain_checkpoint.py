from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from base_model.config import PretrainConfig
from base_model.model import ModelConfig, build_model
from base_model.soup import heldout_loss, soup
from base_model.tokenizer import load_tokenizer
from base_model.trainer import pretrain
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import (
    CheckpointError,
    checkpoint_name,
    checkpoint_step,
    read_state_dict,
    save_model,
)

SMALL = ModelConfig(d_model=32, n_layers=1, n_heads=1, mlp_hidden=32, vocab_size=384, max_seq_len=16)


def saved(path: Path, tokenizer_dir: Path, seed: int, cfg: ModelConfig = SMALL) -> Path:
    save_model(build_model(cfg, seed=seed), load_tokenizer(tokenizer_dir), path)
    return path


def test_names() -> None:
    assert checkpoint_name(1000, 4_000_000_000) == "step1000-tokens4B"
    assert checkpoint_name(928646, 3_895_000_000_000) == "step928646-tokens3895B"
    assert checkpoint_name(500, 2_100_000_000, stage=2, ingredient=3) == "stage2-ingredient3-step500-tokens2B"
    assert checkpoint_step(Path("stage2-ingredient3-step500-tokens2B")) == 500
    assert checkpoint_step(Path("step12-tokens0B.tmp")) is None


def test_soup_is_the_exact_mean(tmp_path: Path, tokenizer_dir: Path) -> None:
    inputs = [saved(tmp_path / f"ingredient{i}", tokenizer_dir, seed=i) for i in range(3)]
    states = [read_state_dict(p) for p in inputs]
    out = soup(inputs, tmp_path / "soup")
    averaged = read_state_dict(out)
    assert averaged.keys() == states[0].keys()
    for key, tensor in averaged.items():
        exact = (states[0][key].double() + states[1][key].double() + states[2][key].double()) / 3
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, exact.float()), key
    model = AutoModelForCausalLM.from_pretrained(str(out))  # a loadable checkpoint, tokenizer beside it
    assert torch.equal(model.lm_head.weight, averaged["lm_head.weight"])
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()


def test_soup_of_small_known_tensors(tmp_path: Path, tokenizer_dir: Path) -> None:
    inputs = []
    for i, value in enumerate((1.0, 2.0, 6.0)):
        model = build_model(SMALL)
        with torch.no_grad():
            for param in model.parameters():
                param.fill_(value)
        save_model(model, load_tokenizer(tokenizer_dir), tmp_path / f"c{i}")
        inputs.append(tmp_path / f"c{i}")
    for tensor in read_state_dict(soup(inputs, tmp_path / "soup")).values():
        assert torch.equal(tensor, torch.full_like(tensor, 3.0))


def test_soup_refuses_mismatched_or_too_few_inputs(tmp_path: Path, tokenizer_dir: Path) -> None:
    a = saved(tmp_path / "a", tokenizer_dir, seed=0)
    wider = ModelConfig(d_model=64, n_layers=1, n_heads=2, mlp_hidden=32, vocab_size=384, max_seq_len=16)
    b = saved(tmp_path / "b", tokenizer_dir, seed=1, cfg=wider)
    with pytest.raises(CheckpointError, match="hidden_size"):
        soup([a, b], tmp_path / "out")
    with pytest.raises(CheckpointError, match="at least two"):
        soup([a], tmp_path / "out")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        soup([a, tmp_path], tmp_path / "out")
    with pytest.raises(CheckpointError, match="one of the inputs"):
        soup([a, a], a)


def test_heldout_loss_of_a_checkpoint_equals_the_trainers_eval_loss(
    make_cfg: Callable[..., PretrainConfig], token_dir: Path
) -> None:
    cfg = make_cfg({"train": {"max_steps": 3, "save_every": 3, "eval_every": 3}})
    final = pretrain(cfg)
    logged = read_metrics(cfg.run_dir / "metrics.jsonl")[-1]["eval_loss"]
    loss = heldout_loss(
        final, [token_dir / "val" / "corpus.tokens.bin"], seq_len=64, max_chunks=8, precision="fp32"
    )
    assert loss == pytest.approx(logged, rel=1e-6)
