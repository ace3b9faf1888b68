"""Log-probabilities of tokens under a model's logits: the one helper every trainer, the rollout
engines' checks and the evaluations use.

`token_logprobs(logits, tokens)` is the core: `logits[..., i, :]` scores `tokens[..., i]` (already
aligned), in fp32, at a sampling temperature. `label_logprobs` aligns a causal LM's logits with its
labels (logits at t score label t+1) and masks the positions without a label; `sequence_logps`
sums those per row.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
"""The label value of positions that carry no loss (prompt tokens, padding); torch's convention."""


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) under `softmax(logits / temperature)` — the distribution the tokens were sampled
    from — computed as `logit[token] − logsumexp(logits)` in fp32, which never materialises the full
    log-probability tensor. `tokens` must be valid ids (mask elsewhere)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def label_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of a causal LM's labels, `(logps, mask)`, both `(batch, seq − 1)`:
    logits at position t score label t+1; `logps` is 0 wherever `mask` (a label there) is False."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logps = token_logprobs(logits[:, :-1], targets.clamp(min=0)) * mask
    return logps, mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labels and how many labels it has: `(sums, counts)`."""
    logps, mask = label_logprobs(logits, labels)
    return logps.sum(dim=1), mask.sum(dim=1)
