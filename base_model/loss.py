"""The pretraining loss: next-token cross-entropy plus OLMo 2's z-loss, and the held-out loss."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from rlvr.logprobs import IGNORE_INDEX
from rlvr.train.precision import autocast as autocast_context


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
        context = autocast_context(autocast, device)
        with context:
            logits = model(input_ids=input_ids.to(device), use_cache=False).logits
        ce_sum, _, n = lm_loss(logits, labels.to(device))
        sums += torch.stack([ce_sum.double(), n.double()]).cpu()
    model.train(was_training)
    return sums
