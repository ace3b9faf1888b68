"""The OLMo 2 architecture, built as transformers' `Olmo2ForCausalLM` with OLMo 2's values set explicitly.

One copy of the architecture: training, checkpoints, `AutoModelForCausalLM` and vLLM all use the
same module, so nothing needs converting. What this file adds is the configuration (the
`Olmo2Config` defaults are *not* OLMo 2's: eps 1e-5, rope theta 10,000, vocab 50,304), the
initialisation OLMo 2 used, named size presets and the FLOP count that MFU is measured against.

Presets follow OLMo-core's style: a function per size returning a `ModelConfig`. Print them with
`rlvr pretrain presets`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers import Olmo2Config, Olmo2ForCausalLM

# vLLM's CPU attention kernels only take these head sizes (0.32.0); GPUs accept more.
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


@dataclass
class ModelConfig:
    """Shape and numerics of an OLMo 2 decoder; defaults are the `tiny` preset."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    """None: as many as `n_heads` (OLMo 2 7B/13B use full multi-head attention)."""
    mlp_hidden: int = 768
    """SwiGLU inner width (transformers' `intermediate_size`)."""
    vocab_size: int = 1024
    """Embedding rows; at least the tokenizer's size, usually rounded up to a multiple of 64 or 128."""
    max_seq_len: int = 256
    rope_theta: float = 500_000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02
    init_cutoff: float = 3.0
    """Truncate the normal init at ±cutoff·std."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % (self.n_kv_heads or self.n_heads):
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def tiny() -> ModelConfig:
    """≈3.9M parameters: the 5-minute CPU demo model."""
    return ModelConfig()


def tiny_14m() -> ModelConfig:
    """≈13.8M parameters: the CPU benchmark model (big enough matmuls to approach the bf16 peak)."""
    return ModelConfig(d_model=384, n_layers=8, n_heads=6, mlp_hidden=896, vocab_size=1024, max_seq_len=256)


def olmo2_1b() -> ModelConfig:
    """OLMo 2 1B (allenai/OLMo-2-0425-1B): ≈1.48B parameters."""
    return ModelConfig(
        d_model=2048, n_layers=16, n_heads=16, mlp_hidden=8192, vocab_size=100_352, max_seq_len=4096
    )


def olmo2_7b() -> ModelConfig:
    """OLMo 2 7B (allenai/OLMo-2-1124-7B): ≈7.30B parameters."""
    return ModelConfig(
        d_model=4096, n_layers=32, n_heads=32, mlp_hidden=11_008, vocab_size=100_352, max_seq_len=4096
    )


def olmo2_13b() -> ModelConfig:
    """OLMo 2 13B (allenai/OLMo-2-1124-13B): ≈13.7B parameters."""
    return ModelConfig(
        d_model=5120, n_layers=40, n_heads=40, mlp_hidden=13_824, vocab_size=100_352, max_seq_len=4096
    )


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "tiny": tiny,
    "tiny_14m": tiny_14m,
    "olmo2_1b": olmo2_1b,
    "olmo2_7b": olmo2_7b,
    "olmo2_13b": olmo2_13b,
}


def hf_config(cfg: ModelConfig, eos_token_id: int = 0, pad_token_id: int = 1) -> Olmo2Config:
    """The `Olmo2Config` for `cfg`, with every OLMo 2 value written out rather than left to defaults."""
    return Olmo2Config(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads or cfg.n_heads,
        hidden_act="silu",
        max_position_embeddings=cfg.max_seq_len,
        initializer_range=cfg.init_std,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        attention_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        # The chat template opens with <|endoftext|>, so it doubles as BOS.
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


@torch.no_grad()
def init_weights(model: nn.Module, std: float = 0.02, cutoff: float = 3.0) -> None:
    """OLMo 2 init: every Linear and Embedding ~ N(0, std²) truncated at ±cutoff·std, no depth scaling.

    RMSNorm weights stay at 1. The padding row of the embedding is initialised like the rest:
    pretraining never feeds it, and a zero row would be a special case for nothing.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-cutoff * std, b=cutoff * std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def build_model(
    cfg: ModelConfig, eos_token_id: int = 0, pad_token_id: int = 1, seed: int = 0, attention: str = "sdpa"
) -> Olmo2ForCausalLM:
    """A freshly initialised fp32 model (bf16 enters through autocast, keeping fp32 master weights).

    `attention` is transformers' kernel choice, not part of the architecture (it is not saved):
    "sdpa" (fused, memory-lean, needed for long context) or "eager" (plain matmuls; faster on CPU
    for short sequences).
    """
    config = hf_config(cfg, eos_token_id, pad_token_id)
    config._attn_implementation = attention
    model = Olmo2ForCausalLM(config)
    torch.manual_seed(seed)
    init_weights(model, cfg.init_std, cfg.init_cutoff)
    return model


def num_params(cfg: ModelConfig) -> int:
    """Exact parameter count of the real module, built on the meta device (no memory, any size)."""
    with torch.device("meta"):
        model = Olmo2ForCausalLM(hf_config(cfg))
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token, PaLM appendix B: 6·N (N without the input embedding, which is a
    lookup) plus 12·layers·d_model·seq_len for the attention scores and mixing (no causal discount)."""
    n_matmul = num_params(cfg) - cfg.vocab_size * cfg.d_model
    return 6.0 * n_matmul + 12.0 * cfg.n_layers * cfg.d_model * seq_len


def describe(cfg: ModelConfig) -> str:
    """`d_model 256, n_layers 4, ... — 3.9M parameters` for logs and `rlvr pretrain presets`."""
    shape = ", ".join(
        f"{k} {v}"
        for k, v in asdict(cfg).items()
        if k in ("d_model", "n_layers", "n_heads", "mlp_hidden", "vocab_size", "max_seq_len")
    )
    return f"{shape} — {format_count(num_params(cfg))} parameters"


def format_count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))
