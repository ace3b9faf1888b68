"""The pure pieces of PPO / GRPO with verifiable rewards: rewards, KL, advantages, losses.

Every function works on padded `[batch, response_len]` tensors with a float `mask` (1 on real
response tokens, 0 on padding after the end), so a batch of different-length responses needs no
loops. Each one is unit-tested against hand-computed values (tests/algos/test_ppo_losses.py). The
conventions follow the reference implementation of the OLMo 2 RLVR runs (docs/recipe.md, "PPO with
verifiable rewards"):

- reward per response = `verification_reward` × verifier score + `rm_multiplier` × RM score, or the
  no-EOS penalty (−10) instead when the response never stopped;
- PPO: KL enters the reward per token (`r_t = −beta · kl_t`), the scalar reward is added at the
  last response token, GAE over response tokens, advantages whitened over the batch;
- GRPO: the scalar rewards are normalised within each prompt's group of samples, every token of a
  response gets its response's advantage, and the KL (k3 by default) is a loss term instead.
"""

from __future__ import annotations

from typing import Literal

import torch

KLEstimator = Literal["k1", "k2", "k3"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """(values − mean) / std over the masked entries (unbiased variance, as the reference does);
    padding comes back as 0. `shift_mean=False` keeps the mean (only rescales)."""
    mean = masked_mean(values, mask)
    centred = values - mean
    count = mask.sum()
    variance = (centred.pow(2) * mask).sum() / (count - 1).clamp(min=1)
    whitened = centred * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator) -> torch.Tensor:
    """Per-token estimate of KL(policy ‖ reference) from samples of the policy.

    k1 = log p − log q (unbiased, can be negative); k2 = ½ (log p − log q)²; k3 = q/p − 1 − log(q/p)
    (unbiased, always ≥ 0; Schulman's low-variance estimator, what GRPO puts in its loss).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.pow(2)
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use k1, k2 or k3")


def sequence_rewards(
    verifier_scores: torch.Tensor,
    stopped: torch.Tensor,
    verification_reward: float,
    no_eos_penalty: float,
    rm_scores: torch.Tensor | None = None,
    rm_multiplier: float = 0.0,
) -> torch.Tensor:
    """One scalar reward per response: verifier (and optional RM) reward, or the penalty when the
    response hit the length limit without an EOS (`stopped` False)."""
    rewards = verification_reward * verifier_scores
    if rm_scores is not None and rm_multiplier:
        rewards = rewards + rm_multiplier * rm_scores
    return torch.where(stopped, rewards, torch.full_like(rewards, no_eos_penalty))


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """PPO's per-token rewards: `−beta · kl_t` everywhere, plus the scalar score at the last real token."""
    rewards = -beta * kl * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    return rewards.scatter_add(1, last.unsqueeze(1), scores.unsqueeze(1).to(rewards.dtype))


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens; returns (advantages, returns).

    `delta_t = r_t + gamma · V_{t+1} − V_t` with V = 0 after the last real token (the episode ends
    there); `A_t = delta_t + gamma · lam · A_{t+1}`; returns = A + V. Padding comes back as 0.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def group_advantages(
    scores: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO: each response's score minus its prompt group's mean (÷ the group's std with `scale`).

    `scores` holds `group_size` consecutive samples per prompt. A group whose samples all scored
    the same gets advantage 0: it carries no signal about which answer is better.
    """
    if scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} scores are not whole groups of {group_size}")
    groups = scores.view(-1, group_size)
    centred = groups - groups.mean(1, keepdim=True)
    if scale:
        centred = centred / (groups.std(1, keepdim=True) + eps)
    return centred.reshape(-1)


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, `mean(max(−A·ρ, −A·clip(ρ, 1±ε)))` over real tokens, and its
    diagnostics: clip fraction, approx-KL (½ mean (log ρ)²) and ratio statistics."""
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        real = mask.bool()
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_mean(0.5 * log_ratio.pow(2), mask),
            "ratio_mean": masked_mean(ratio, mask),
            "ratio_max": ratio[real].max() if real.any() else ratio.new_tensor(1.0),
            "ratio_min": ratio[real].min() if real.any() else ratio.new_tensor(1.0),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss `½ · mean(max((V − R)², (clip(V, V_old ± ε) − R)²))` and its clip fraction."""
    clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    unclipped_error = (values - returns).pow(2)
    clipped_error = (clipped_values - returns).pow(2)
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((clipped_error > unclipped_error).float(), mask)}
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of the softmax over the last dimension."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)
