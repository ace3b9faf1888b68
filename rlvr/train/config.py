"""What every trainer's `train` section shares: how it runs across processes, in which precision,
and how it checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlvr.config import ConfigError

Sharding = Literal["none", "ddp", "zero2", "zero3", "fsdp2"]
SHARDED: tuple[Sharding, ...] = ("zero3", "fsdp2")
"""The modes that split the parameters themselves (not only gradients and optimizer state)."""


@dataclass
class CoreConfig:
    """The fields of every trainer's `train` section that the training core reads."""

    sharding: Sharding = "ddp"
    """none: one process, no wrapper. ddp: every process holds the whole model, gradients
    all-reduced (PyTorch DDP). zero2: DeepSpeed ZeRO-2 — optimizer states and gradients split over
    the processes, parameters whole. zero3: DeepSpeed ZeRO-3 — parameters split too (the OLMo 2
    recipe's engine). fsdp2: PyTorch `fully_shard` per decoder layer — parameters, gradients and
    optimizer states split, each layer gathered for its forward and backward."""
    deepspeed: str | None = None
    """zero2/zero3 only: a DeepSpeed JSON whose keys override the ones rlvr writes (e.g. bucket
    sizes); batch sizes, clipping and accumulation always come from the trainer's config."""
    activation_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them:
    activation memory falls from every layer's to about one layer's, at ≈1 extra forward."""
    offload_optimizer: bool = False
    """Keep optimizer states (fsdp2: parameters and gradients too) in CPU memory (zero2, zero3,
    fsdp2); the step runs there. Frees ≈12 bytes per parameter of accelerator memory."""
    dist_backend: str | None = None
    """torch.distributed backend; None: nccl with CUDA, gloo on CPU."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto: bf16 compute where the hardware has bf16 (CUDA bf16, CPU avx512_bf16/AMX), else fp32.
    Master weights and optimizer state stay fp32 either way."""
    attention: Literal["sdpa", "eager"] = "sdpa"
    """transformers' attention kernel: sdpa (fused; long context needs it) or eager (plain matmuls,
    ≈10 % faster on CPU at sequence length 256)."""
    save_every: int = 500
    """Checkpoint interval in steps; the last step is always saved."""
    resume: bool = True
    """Continue from the newest checkpoint in the run directory if there is one."""
    skip_plan_check: bool = False
    """Start on GPUs even when `rlvr plan` says this layout does not fit their memory."""

    def validate(self) -> None:
        if self.deepspeed is not None and self.sharding not in ("zero2", "zero3"):
            raise ConfigError(
                f"train.deepspeed is set but train.sharding is {self.sharding}: the DeepSpeed JSON applies to "
                "zero2 or zero3; set --train.sharding=zero2 (or zero3), or unset train.deepspeed"
            )
        if self.offload_optimizer and self.sharding in ("none", "ddp"):
            raise ConfigError(
                f"train.offload_optimizer needs a sharded engine (zero2, zero3 or fsdp2), not {self.sharding}"
            )

    @property
    def uses_deepspeed(self) -> bool:
        return self.sharding in ("zero2", "zero3")
