"""`rlvr rm --config configs/rm/tiny.yaml`: a Bradley–Terry reward model from the SFT checkpoint.

The model is `Olmo2ForSequenceClassification` with one output, built from the SFT checkpoint (its
transformer; the LM head is dropped) with a new `score` head initialised N(0, 1/sqrt(hidden + 1))
as open-instruct does — small enough that the first rewards are near 0. The reward of a chat is the
head's output at its last non-pad token (the EOS closing the answer): rows are right-padded, so
that is the position `transformers` pools, and the one the `reward_model` verifier
(`rlvr.rewards.reward_model`) reads from the same checkpoint. Loss: `-logsigmoid(r_chosen - r_rejected)`
averaged over pairs. The saved checkpoint is what the verifier scores with and what the PPO value
model starts from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rlvr.algos.common import PostTrainer, StageConfig, load_pairs, stage_main
from rlvr.algos.encoding import EncodedPair, EncodeReport, encode_pairs
from rlvr.algos.evaluation import Forward, pair_batch
from rlvr.data import load_rows


@dataclass
class RewardModelConfig(StageConfig):
    name: str = "rm"


# ---------------------------------------------------------------------- losses


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Per-pair negative log-likelihood that the chosen answer wins: `-logsigmoid(r_c - r_r)`."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards)


def pairwise_figures(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> dict[str, float]:
    """Share of pairs ranked right (ties count as wrong) and the mean reward margin."""
    return {
        "pairwise_accuracy": float((chosen_rewards > rejected_rewards).double().mean()),
        "margin": float((chosen_rewards - rejected_rewards).double().mean()),
    }


@torch.no_grad()
def init_score_head(model: torch.nn.Module, seed: int) -> None:
    """N(0, std = 1/sqrt(hidden + 1)) for the new head (open-instruct's reward-model init)."""
    generator = torch.Generator().manual_seed(seed)
    weight = model.score.weight
    std = 1.0 / math.sqrt(model.config.hidden_size + 1)
    weight.copy_(torch.randn(weight.shape, generator=generator) * std)


def load_score_model(source: str, attention: str, seed: int, new_head: bool | None = None) -> torch.nn.Module:
    """A checkpoint as an fp32 sequence-classification model with one output — the reward model, or
    PPO's value model. `new_head`: initialise the score head (`init_score_head`) — None: only when
    the checkpoint has none (a causal LM, whose LM head is dropped)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialised" is the point, not a warning
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, dtype=torch.float32, attn_implementation=attention, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = any(key.startswith("score.") for key in info["missing_keys"])
    if new_head or (new_head is None and missing):
        init_score_head(model, seed)
    return model


# ---------------------------------------------------------------------- trainer


class RewardModelTrainer(PostTrainer[EncodedPair]):
    """A Bradley–Terry reward model on preference pairs."""

    stage = "rm"
    init_expect = "any"  # the SFT model (a new score head) or a reward model to train further
    cfg: RewardModelConfig
    lora_modules_to_save = ("score",)

    def load_examples(self) -> tuple[list[EncodedPair], EncodeReport]:
        return load_pairs(self.cfg.data, self.tokenizer)

    def load_model(self) -> torch.nn.Module:
        model = load_score_model(self.cfg.init_from, self.cfg.train.attention, self.cfg.seed)
        model.config.pad_token_id = self.tokenizer.pad_token_id  # the pooled position is found by this id
        return model

    def micro_loss(self, examples: Sequence[EncodedPair]) -> tuple[torch.Tensor, dict[str, float]]:
        chosen, rejected = self._rewards(examples, self.engine.forward)
        losses = bradley_terry_loss(chosen, rejected)
        loss = losses.sum()
        return loss, {
            "loss": float(loss.detach()),
            "pairs": float(len(examples)),
            "correct": float((chosen > rejected).sum()),
            "margin": float((chosen - rejected).detach().sum()),
            "chosen": float(chosen.detach().sum()),
            "rejected": float(rejected.detach().sum()),
        }

    def _rewards(
        self, examples: Sequence[EncodedPair], forward: Forward
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen and rejected rewards: one forward over both sides, pooled at each last non-pad token."""
        ids, _ = pair_batch(examples, self.tokenizer.pad_token_id)
        rewards = forward(ids.to(self.dist.device)).squeeze(-1).float()
        return rewards[: len(examples)], rewards[len(examples) :]

    def step_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        pairs = max(sums["pairs"], 1.0)
        return {
            "loss": sums["loss"] / pairs,
            "accuracy": sums["correct"] / pairs,
            "margin": sums["margin"] / pairs,
            "rewards/chosen": sums["chosen"] / pairs,
            "rewards/rejected": sums["rejected"] / pairs,
        }

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, Any]:
        e = self.cfg.eval
        if not e.prefs_test:
            return {}
        pairs, report = encode_pairs(
            self.tokenizer,
            load_rows(e.prefs_test, "prefs", limit=e.max_prompts),
            self.cfg.data.max_length,
            "truncate",
            e.prefs_test,
        )

        def forward(ids: torch.Tensor) -> torch.Tensor:
            return model(input_ids=ids, use_cache=False).logits

        model.eval()
        rewards = []
        for start in range(0, len(pairs), e.batch_size):
            with self.core.autocast():
                rewards.append(torch.stack(self._rewards(pairs[start : start + e.batch_size], forward)).cpu())
        model.train()
        chosen, rejected = torch.cat(rewards, dim=1)
        return {
            **pairwise_figures(chosen, rejected),
            "pairs": len(pairs),
            "pairs_skipped": len(report.skipped),
        }


def main(argv: Sequence[str]) -> int:
    return stage_main(argv, RewardModelConfig, RewardModelTrainer)
