"""`rlvr dpo --config configs/dpo/tiny.yaml`: preference tuning from an SFT checkpoint.

Loss types (`dpo.loss_type`), with π the policy, π_ref the starting model and y_c / y_r the chosen and
rejected answers (log-probs over the final assistant turn):
- `dpo_norm` (default; OLMo 2 / Tülu 3): DPO on the *average* per-token log-prob,
  `-logsigmoid(β · [(ā_c(π) - ā_c(ref)) - (ā_r(π) - ā_r(ref))])`, β 5.
- `dpo`: the same on summed log-probs (Rafailov et al.).
- `ipo`: `(h - 1/(2β))²` with h the summed log-ratio difference, as open-instruct computes it (TRL
  divides h by the answer lengths instead).
- `simpo`: reference-free, `-logsigmoid(β · (ā_c(π) - ā_r(π)) - β · γ/β)` with `γ/β` =
  `simpo_gamma_beta_ratio` (SimPO, Meng et al.).

The reference log-probs are computed once, on the starting weights, before the first step, and
cached in the run directory (`reference_logps.pt`, keyed by a fingerprint of the starting checkpoint
and the encoded data): no second model is held in memory, and a resumed run reads the cache instead
of recomputing it from weights that have already moved. Rewards logged are β × the log-ratio (on
the average log-probs for `dpo_norm` and `simpo`); accuracy is the share of pairs whose chosen
reward beats the rejected one.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from rlvr.algos.common import StageConfig, load_causal_lm, load_pairs, stage_main
from rlvr.algos.encoding import EncodedPair, EncodeReport
from rlvr.algos.evaluation import PolicyTrainer, pair_batch, pair_logps
from rlvr.logprobs import sequence_logps
from rlvr.tracking import progress
from rlvr.train.distributed import all_reduce

LossType = Literal["dpo_norm", "dpo", "ipo", "simpo"]
REFERENCE_FILE = "reference_logps.pt"


@dataclass
class DPOSection:
    loss_type: LossType = "dpo_norm"
    beta: float = 5.0
    simpo_gamma_beta_ratio: float = 0.3
    """SimPO's target margin γ divided by β (open-instruct's default)."""
    reference_batch_size: int = 16
    """Pairs per forward pass when computing the reference log-probs."""
    nll_weight: float = 0.0
    """Adds `nll_weight` × the chosen answer's mean per-token negative log-likelihood to each pair's
    loss (RPO, Pang et al. 2024; TRL's `rpo_alpha`). Pure DPO can lower the chosen answer's likelihood
    along with the rejected one's; on correct-vs-incorrect pairs of the policy's own samples this term
    keeps the correct answers likely. 0 (off) is the recipe."""

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.nll_weight < 0 or self.reference_batch_size < 1:
            raise ValueError("dpo.beta must be > 0, dpo.nll_weight ≥ 0 and dpo.reference_batch_size ≥ 1")


@dataclass
class DPOConfig(StageConfig):
    name: str = "dpo"
    dpo: DPOSection = field(default_factory=DPOSection)


# ---------------------------------------------------------------------- losses


@dataclass
class PreferenceLoss:
    losses: torch.Tensor
    """Per pair."""
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> PreferenceLoss:
    """Sigmoid DPO on the log-probs given (sums for `dpo`, per-token averages for `dpo_norm`)."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return PreferenceLoss(-F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach())


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> PreferenceLoss:
    """IPO: the log-ratio difference regressed onto 1/(2β)."""
    chosen, rejected = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    losses = (chosen - rejected - 1.0 / (2.0 * beta)) ** 2
    return PreferenceLoss(losses, beta * chosen.detach(), beta * rejected.detach())


def simpo_loss(
    policy_chosen_avg: torch.Tensor, policy_rejected_avg: torch.Tensor, beta: float, gamma_beta_ratio: float
) -> PreferenceLoss:
    """SimPO: reference-free, on average per-token log-probs, with a target margin γ = β · ratio."""
    chosen, rejected = beta * policy_chosen_avg, beta * policy_rejected_avg
    losses = -F.logsigmoid(chosen - rejected - beta * gamma_beta_ratio)
    return PreferenceLoss(losses, chosen.detach(), rejected.detach())


def chosen_nll(policy: torch.Tensor) -> torch.Tensor:
    """Per pair, the chosen answer's mean per-token negative log-likelihood (`policy` as in
    `preference_loss`): the term `dpo.nll_weight` adds to the loss."""
    return -policy[:, 0] / policy[:, 2].clamp(min=1)


def preference_loss(
    loss_type: LossType,
    policy: torch.Tensor,
    reference: torch.Tensor | None,
    beta: float,
    gamma_beta_ratio: float = 0.3,
) -> PreferenceLoss:
    """Dispatch on `loss_type`. `policy` and `reference` are `(pairs, 4)`: chosen and rejected summed
    log-probs, then chosen and rejected token counts (`evaluation.pair_logps` rows)."""

    def average(logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logps[:, 0] / logps[:, 2].clamp(min=1), logps[:, 1] / logps[:, 3].clamp(min=1)

    if loss_type == "simpo":
        return simpo_loss(*average(policy), beta, gamma_beta_ratio)
    if reference is None:
        raise ValueError(f"loss_type {loss_type} needs reference log-probs")
    if loss_type == "dpo_norm":
        return dpo_loss(*average(policy), *average(reference), beta)
    sums = (policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1])
    if loss_type == "dpo":
        return dpo_loss(*sums, beta)
    if loss_type == "ipo":
        return ipo_loss(*sums, beta)
    raise ValueError(f"unknown loss_type {loss_type!r}; expected dpo_norm, dpo, ipo or simpo")


# ---------------------------------------------------------------------- trainer


class DPOTrainer(PolicyTrainer[EncodedPair]):
    """Preference tuning: dpo_norm (default), dpo, ipo, simpo; cached reference log-probs."""

    stage = "dpo"
    cfg: DPOConfig
    reference: torch.Tensor | None = None

    def load_examples(self) -> tuple[list[EncodedPair], EncodeReport]:
        return load_pairs(self.cfg.data, self.tokenizer)

    def load_model(self) -> torch.nn.Module:
        return load_causal_lm(self.cfg.init_from, self.cfg.train.attention)

    def prepare(self) -> None:
        if self.cfg.dpo.loss_type != "simpo":
            self.reference = self._reference_logps()

    def _fingerprint(self) -> str:
        """The starting checkpoint's weights (file names, sizes, times) and every encoded token."""
        digest = hashlib.sha256()
        for file in sorted(Path(self.cfg.init_from).glob("*.safetensors")):
            stat = file.stat()
            digest.update(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        for pair in self.examples:
            digest.update(repr((pair.chosen.input_ids, pair.chosen.labels, pair.rejected.labels)).encode())
        return digest.hexdigest()[:24]

    @torch.no_grad()
    def _reference_logps(self) -> torch.Tensor:
        """Load the cache if it belongs to this run's start and data; else compute it with the engine
        (on the starting weights: this runs before a resumed checkpoint's weights are loaded) and save it.
        Each process scores every world-th pair; all run the same number of forwards (a sharded
        engine's forward is a collective), the last one padded where a process has fewer pairs."""
        path = self.cfg.run_dir / REFERENCE_FILE
        fingerprint = self._fingerprint()
        if path.is_file():
            cached = torch.load(path, weights_only=True)
            if cached["fingerprint"] == fingerprint:
                return cached["logps"]
        d = self.dist
        mine = self.examples[d.rank :: d.world]
        batch = self.cfg.dpo.reference_batch_size
        forwards = -(-math.ceil(len(self.examples) / d.world) // batch)
        module = self.engine.module
        module.eval()
        chunks = progress(range(forwards), total=forwards, desc="reference log-probs",
                          enabled=self.cfg.log.progress and d.is_main)  # fmt: skip
        rows = []
        for k in chunks:
            pairs = mine[k * batch : (k + 1) * batch]
            logps = pair_logps(self.engine.forward, pairs or self.examples[:1], self.tokenizer.pad_token_id,
                               batch, d.device, self.core.autocast_dtype)  # fmt: skip
            rows.append(logps[: len(pairs)])
        module.train()
        logps = torch.zeros(len(self.examples), 4, dtype=torch.float64)
        logps[d.rank :: d.world] = torch.cat(rows)
        logps = all_reduce(logps, d)
        if d.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"fingerprint": fingerprint, "logps": logps}, path)
            print(
                f"dpo: reference log-probs of {len(self.examples):,} pairs cached in {path}", file=sys.stderr
            )
        return logps

    def micro_loss(self, examples: Sequence[EncodedPair]) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.dist.device
        ids, labels = pair_batch(examples, self.tokenizer.pad_token_id)
        sums, counts = sequence_logps(self.engine.forward(ids.to(device)), labels.to(device))
        n = len(examples)
        policy = torch.stack([sums[:n], sums[n:], counts[:n], counts[n:]], dim=1)
        reference = None
        if self.reference is not None:
            reference = self.reference[[e.index for e in examples]].to(device=device, dtype=policy.dtype)
        d = self.cfg.dpo
        out = preference_loss(d.loss_type, policy, reference, d.beta, d.simpo_gamma_beta_ratio)
        nll = chosen_nll(policy)
        loss = (out.losses + d.nll_weight * nll).sum() if d.nll_weight else out.losses.sum()
        return loss, {
            "loss": float(loss.detach()),
            "chosen_nll": float(nll.detach().sum()),
            "pairs": float(n),
            "chosen_rewards": float(out.chosen_rewards.sum()),
            "rejected_rewards": float(out.rejected_rewards.sum()),
            "correct": float((out.chosen_rewards > out.rejected_rewards).sum()),
        }

    def step_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        pairs = max(sums["pairs"], 1.0)
        return {
            "loss": sums["loss"] / pairs,
            "rewards/chosen": sums["chosen_rewards"] / pairs,
            "rewards/rejected": sums["rejected_rewards"] / pairs,
            "rewards/margin": (sums["chosen_rewards"] - sums["rejected_rewards"]) / pairs,
            "rewards/accuracy": sums["correct"] / pairs,
            "chosen_nll": sums["chosen_nll"] / pairs,
        }


def main(argv: Sequence[str]) -> int:
    return stage_main(argv, DPOConfig, DPOTrainer)
