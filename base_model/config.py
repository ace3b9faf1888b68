"""The pretraining config: one dataclass tree, read from `configs/pretrain/*.yaml` + `--key=value`.

The defaults are the OLMo 2 recipe where it has a value (AdamW betas, eps, weight decay, clip,
z-loss, schedule shape); sizes, steps and learning rates come from the YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from base_model.model import ModelConfig
from rlvr.tracking import RunConfig
from rlvr.train.config import CoreConfig
from rlvr.train.optim import ScheduleConfig


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
class TrainConfig(CoreConfig):
    max_steps: int = 100
    """Optimizer steps. Runs are bounded by steps, never by time, so they reproduce."""
    global_batch_size: int = 32
    """Sequences per optimizer step, summed over all processes."""
    micro_batch_size: int = 16
    """Sequences per forward pass per process; accumulation = global / (micro · processes)."""
    compile: bool = False
    """torch.compile the forward pass and loss (≈25 % faster on CPU after ≈30 s of compiling;
    `train.sharding` none or ddp only)."""
    eval_every: int = 100
    save_every: int = 100
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
