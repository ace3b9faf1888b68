"""AdamW parameter groups and the learning-rate schedules every trainer uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn


@dataclass
class ScheduleConfig:
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 0
    """Linear warmup from 0 to the peak (stage 1); stage 2 uses none."""
    final_lr_ratio: float = 0.1
    """End of the decay as a fraction of the peak: 0.1 for OLMo 2 stage 1, 0 for stage 2."""


class AdamWSettings(Protocol):
    """What the optimizer reads: the pretrainer's `OptimConfig` and the post-training stages' both fit."""

    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    decay_embeddings: bool
    decay_norms: bool


def param_groups(model: nn.Module, cfg: AdamWSettings) -> list[dict[str, Any]]:
    """Two groups: decayed and not. Embeddings are never decayed (OLMo 2); norm gains and biases
    follow `cfg.decay_norms`."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, nn.Embedding):
                exempt = not cfg.decay_embeddings
            elif param.ndim < 2 or name == "bias":  # RMSNorm gains (and biases, if any)
                exempt = not cfg.decay_norms
            else:
                exempt = False
            (no_decay if exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: AdamWSettings) -> torch.optim.AdamW:
    params = next(model.parameters())
    # The fused kernel is one pass over all parameters (CPU since torch 2.4, and CUDA).
    fused = params.device.type in ("cpu", "cuda")
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def lr_at(step: int, peak: float, max_steps: int, cfg: ScheduleConfig) -> float:
    """Learning rate for optimizer step `step` (0-based: the update that takes the model from step
    `step` to `step + 1`).

    Warmup rises linearly to the peak over `warmup_steps` updates (the first update already
    moves); then `cosine` falls to `final_lr_ratio · peak` by `max_steps` (OLMo 2 stage 1),
    `linear` falls in a straight line to it (stage 2, ratio 0), `constant` stays.
    """
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    final = peak * cfg.final_lr_ratio
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    if cfg.kind == "cosine":
        return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.kind == "linear":
        return peak + (final - peak) * progress
    return peak
