"""AdamW parameter groups, the learning-rate schedules and the loss (cross-entropy + z-loss, held-out loss)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any, Protocol

import torch
from torch import nn

from base_model.config import ScheduleConfig
from base_model.data import IGNORE_INDEX


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


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(ce_sum, z_sum, n_labels)` for next-token prediction: logits at t are scored against label t+1.

    Sums rather than means, so micro-batches and processes combine exactly: the trainer divides
    by the label count of the whole global batch. The z-loss term is logsumexp(logits)² per label
    (OLMo 2's regulariser), computed from the same logsumexp as the cross-entropy, in fp32.
    """
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    lse = torch.logsumexp(logits, dim=-1)
    target_logit = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    ce_sum = ((lse - target_logit) * valid).sum()
    z_sum = (lse.square() * valid).sum()
    return ce_sum, z_sum, valid.sum()


@torch.no_grad()
def heldout_sums(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    autocast: torch.dtype | None,
) -> torch.Tensor:
    """`[ce_sum, n_labels]` (float64) of `model` over `batches`: sums, so processes can add theirs."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64)
    for input_ids, labels in batches:
        context = torch.autocast(device.type, dtype=autocast) if autocast is not None else nullcontext()
        with context:
            logits = model(input_ids=input_ids.to(device), use_cache=False).logits
        ce_sum, _, n = lm_loss(logits, labels.to(device))
        sums += torch.stack([ce_sum.double(), n.double()]).cpu()
    model.train(was_training)
    return sums
