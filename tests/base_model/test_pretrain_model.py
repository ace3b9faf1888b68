from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import Olmo2Config

from base_model.config import PretrainConfig
from base_model.model import (
    PRESETS,
    VLLM_CPU_HEAD_SIZES,
    ModelConfig,
    build_model,
    flops_per_token,
    hf_config,
    num_params,
)
from rlvr.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


def test_olmo2_values_are_explicit_not_transformers_defaults() -> None:
    defaults = Olmo2Config()
    config = hf_config(ModelConfig(vocab_size=777))
    assert config.rope_parameters["rope_theta"] == 500_000.0 != defaults.rope_parameters["rope_theta"]
    assert config.rms_norm_eps == 1e-6 != defaults.rms_norm_eps
    assert config.vocab_size == 777
    assert config.attention_bias is False and config.tie_word_embeddings is False
    assert config.attention_dropout == 0.0 and config.hidden_act == "silu"


def test_module_is_olmo2_shaped() -> None:
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=2, mlp_hidden=96, vocab_size=128)
    model = build_model(cfg)
    layer = model.model.layers[0]
    # QK-norm over the whole projection width, norms after attention and MLP ("reordered"), no biases.
    assert layer.self_attn.q_norm.weight.shape == (64,) and layer.self_attn.k_norm.weight.shape == (64,)
    assert hasattr(layer, "post_attention_layernorm") and hasattr(layer, "post_feedforward_layernorm")
    assert not hasattr(layer, "input_layernorm")
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert layer.self_attn.q_norm.variance_epsilon == 1e-6


def test_truncated_normal_init_on_every_linear_and_embedding() -> None:
    cfg = ModelConfig(d_model=128, n_layers=2, n_heads=4, mlp_hidden=256, vocab_size=512)
    model = build_model(cfg, seed=1)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear | nn.Embedding)]
    assert len(weights) == 1 + 2 * 7 + 1  # embedding, 7 per layer, LM head
    for w in weights:
        assert w.abs().max() <= 3 * 0.02 + 1e-7
        # The std of N(0, 0.02²) truncated at ±3σ is 0.02 · 0.9866.
        assert w.std().item() == pytest.approx(0.02 * 0.9866, rel=0.05)
    norms = [p for n, p in model.named_parameters() if "norm" in n]
    assert norms and all(torch.equal(p, torch.ones_like(p)) for p in norms)
    assert torch.equal(build_model(cfg, seed=1).lm_head.weight, model.lm_head.weight)  # seeded


@pytest.mark.parametrize(
    ("name", "expected"),
    [("olmo2_1b", 1.485e9), ("olmo2_7b", 7.299e9), ("olmo2_13b", 13.716e9), ("tiny_14m", 13.8e6)],
)
def test_preset_parameter_counts(name: str, expected: float) -> None:
    assert num_params(PRESETS[name]()) == pytest.approx(expected, rel=0.005)


def test_presets_fit_vllm_cpu_attention() -> None:
    for preset in PRESETS.values():
        assert preset().head_dim in VLLM_CPU_HEAD_SIZES


@pytest.mark.parametrize("name", ["olmo2_1b", "olmo2_7b", "olmo2_13b"])
def test_recipe_yaml_models_equal_their_presets(name: str) -> None:
    cfg = load_config(PretrainConfig, CONFIGS / f"{name}.yaml")
    assert cfg.model == PRESETS[name]()
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.eps == 1e-8 and cfg.optim.weight_decay == 0.1
    assert cfg.optim.z_loss == 1e-5 and cfg.optim.grad_clip == 1.0 and not cfg.optim.decay_embeddings
    assert cfg.schedule.kind == "cosine" and cfg.schedule.final_lr_ratio == 0.1


def test_tiny_yamls_load() -> None:
    stage1 = load_config(PretrainConfig, CONFIGS / "tiny.yaml")
    stage2 = load_config(PretrainConfig, CONFIGS / "tiny_stage2.yaml")
    assert stage1.model == PRESETS["tiny"]() == stage2.model
    assert stage2.stage == 2 and stage2.init_from and stage2.schedule.kind == "linear"
    assert stage2.schedule.final_lr_ratio == 0.0 and stage2.schedule.warmup_steps == 0


def test_flops_per_token_matches_6n_plus_attention() -> None:
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=2, mlp_hidden=128, vocab_size=100)
    n_without_embedding = num_params(cfg) - 100 * 64
    assert flops_per_token(cfg, 32) == 6 * n_without_embedding + 12 * 2 * 64 * 32


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=100, n_heads=3)
