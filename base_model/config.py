"""The pretraining config: one dataclass tree, read from `configs/pretrain/*.yaml` + `--key=value`.

The defaults are the OLMo 2 recipe where it has a value (AdamW betas, eps, weight decay, clip,
z-loss, schedule shape); sizes, steps and learning rates come from the YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from base_model.model import ModelConfig
from rlvr.tracking import RunConfig


@dataclass
class DataSource:
    """One component of the training mixture."""

    paths: list[str] = field(default_factory=list)
    """Token files (`*.tokens.bin`) or globs; their `.mask.bin` siblings are used when present."""
    weight: float = 1.0
    """Relative share of training sequences drawn from this source."""
    name: str = ""


@dataclass
class DataConfig:
    train: list[DataSource] = field(default_factory=list)
    eval_paths: list[str] = field(default_factory=list)
    """Held-out token files (e.g. the `.val.tokens.bin` that `prepare --val_fraction` writes)."""
    seq_len: int = 256
    eval_sequences: int = 64
    """How many held-out chunks each evaluation scores (the same ones every time)."""


@dataclass
class OptimConfig:
    lr: float = 4e-4
    """Peak learning rate (stage 2: the rate the linear decay starts from)."""
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    decay_embeddings: bool = False
    """OLMo 2 dropped weight decay on the input embedding."""
    decay_norms: bool = True
    """OLMo 2 (OLMo-core) decays every other parameter, RMSNorm gains included; False exempts
    norm gains (and biases, though OLMo 2 has none), the GPT-2/nanoGPT convention."""
    grad_clip: float = 1.0
    """Max global gradient norm; 0 disables clipping."""
    z_loss: float = 1e-5
    """Weight of mean(logsumexp(logits)²), which keeps the softmax normaliser near 1."""


@dataclass
class ScheduleConfig:
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 0
    """Linear warmup from 0 to the peak (stage 1); stage 2 uses none."""
    final_lr_ratio: float = 0.1
    """End of the decay as a fraction of the peak: 0.1 for OLMo 2 stage 1, 0 for stage 2."""


@dataclass
class DistributedConfig:
    """How a trainer runs across the processes `torchrun` starts (every trainer's `train` section)."""

    deepspeed: str | None = None
    """A DeepSpeed JSON config (e.g. configs/deepspeed/zero2.json); None: plain PyTorch (DDP if several
    processes). Batch sizes, clipping and accumulation are filled in from the trainer's config."""
    dist_backend: str | None = None
    """torch.distributed backend; None: nccl with CUDA, gloo on CPU."""


@dataclass
class TrainConfig(DistributedConfig):
    max_steps: int = 100
    """Optimizer steps. Runs are bounded by steps, never by time, so they reproduce."""
    global_batch_size: int = 32
    """Sequences per optimizer step, summed over all processes."""
    micro_batch_size: int = 16
    """Sequences per forward pass per process; accumulation = global / (micro · processes)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto: bf16 autocast where the hardware has bf16 (CUDA bf16, CPU avx512_bf16/AMX), else fp32.
    Weights and optimizer state stay fp32 either way."""
    attention: Literal["sdpa", "eager"] = "sdpa"
    """transformers' attention kernel: sdpa (fused; long context needs it) or eager (plain matmuls,
    ≈10 % faster on CPU at sequence length 256)."""
    compile: bool = False
    """torch.compile the forward pass and loss (≈25 % faster on CPU after ≈30 s of compiling;
    plain PyTorch engine only)."""
    eval_every: int = 100
    save_every: int = 100
    """Checkpoint interval in steps; the last step is always saved."""
    resume: bool = True
    """Continue from the newest checkpoint in the run directory if there is one."""
    peak_tflops: float | None = None
    """Per-device bf16 (or fp32) dense peak for MFU; None: measure it with a matmul loop at start-up."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts greedily continued at the end of training (written to samples.txt and the log)."""
    sample_tokens: int = 48


@dataclass
class PretrainConfig(RunConfig):
    tokenizer: str = "runs/tokenizer"
    """Directory of the tokenizer trained by `rlvr pretrain tokenizer` (copied into every checkpoint)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage: Literal[1, 2] = 1
    ingredient: int = 1
    """Stage 2 only: which anneal ingredient this run is (checkpoint names carry it)."""
    init_from: str | None = None
    """A checkpoint whose weights start the run (stage 2 starts from stage 1); the optimizer starts fresh."""
