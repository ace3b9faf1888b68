"""`rlvr sft --config configs/sft/tiny.yaml`: supervised fine-tuning, loss on assistant tokens only.

Chats are rendered with the Tülu chat template and labelled on assistant tokens
(`rlvr.algos.encoding`); `sft.packing` concatenates whole chats into `max_length` sequences.

The loss reduction is an explicit choice (`sft.reduction`), because a learning rate tuned for one
does not transfer to the other:
- `sum` (Tülu 3): each sequence's token losses are summed, and the sums averaged over the
  sequences of the global batch. This is what open-instruct computed with one sequence per device
  micro-batch (its summed loss was divided by the micro-batch count); here it does not depend on
  how the batch is split. Long answers weigh more, and the gradient scale grows with the tokens per
  sequence — Tülu 3's lr 5e-6 is for this reduction.
- `mean`: the token losses averaged over every label token of the global batch (the usual
  `transformers` convention): every token weighs the same, whatever the sequence lengths.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from rlvr.algos.common import (
    StageConfig,
    load_causal_lm,
    load_training_rows,
    stage_main,
)
from rlvr.algos.encoding import IGNORE_INDEX, EncodedChat, EncodeReport, encode_sft, pack, pad_right
from rlvr.algos.evaluation import PolicyTrainer
from rlvr.logprobs import label_logprobs

Reduction = Literal["sum", "mean"]


@dataclass
class SFTSection:
    reduction: Reduction = "sum"
    """`sum`: per-sequence token sums averaged over sequences (Tülu 3); `mean`: average over all tokens."""
    packing: bool = False
    """Concatenate whole chats (in a seeded shuffled order) into sequences of up to `data.max_length`."""


@dataclass
class SFTConfig(StageConfig):
    name: str = "sft"
    sft: SFTSection = field(default_factory=SFTSection)


# ---------------------------------------------------------------------- losses


def summed_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the labels, summed over every label token of the batch."""
    logps, _ = label_logprobs(logits, labels)
    return -logps.sum()


def loss_units(labels: torch.Tensor, reduction: Reduction) -> float:
    """What the summed NLL is divided by: label tokens (`mean`) or sequences (`sum`)."""
    if reduction == "mean":
        return float((labels[:, 1:] != IGNORE_INDEX).sum())
    return float(labels.shape[0])


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """The SFT loss of one batch on its own (the trainer divides by the units of the whole global batch)."""
    return summed_nll(logits, labels) / max(loss_units(labels, reduction), 1.0)


# ---------------------------------------------------------------------- trainer


class SFTTrainer(PolicyTrainer[EncodedChat]):
    """Supervised fine-tuning on chats, loss on assistant tokens only."""

    stage = "sft"
    cfg: SFTConfig

    def load_examples(self) -> tuple[list[EncodedChat], EncodeReport]:
        data = self.cfg.data
        rows, invalid = load_training_rows(data, "sft")
        examples, report = encode_sft(
            self.tokenizer, rows, data.max_length, data.overlong, ", ".join(data.train)
        )
        report.invalid = invalid
        if self.cfg.sft.packing:
            # Pack a shuffled stream, so the chats sharing a sequence are unrelated.
            order = np.random.default_rng([self.cfg.seed, 1 << 20]).permutation(len(examples))
            packed = pack([examples[i] for i in order], data.max_length)
            print(f"sft: packed {len(examples):,} chats into {len(packed):,} sequences", file=sys.stderr)
            examples = packed
        return examples, report

    def load_model(self) -> torch.nn.Module:
        return load_causal_lm(self.cfg.init_from, self.cfg.train.attention)

    def loss_units(self, examples: Sequence[EncodedChat]) -> float:
        if self.cfg.sft.reduction == "mean":
            return float(sum(e.num_labels for e in examples))
        return float(len(examples))

    def micro_loss(self, examples: Sequence[EncodedChat]) -> tuple[torch.Tensor, dict[str, float]]:
        ids, labels = pad_right(examples, self.tokenizer.pad_token_id)
        device = self.dist.device
        nll = summed_nll(self.engine.forward(ids.to(device)), labels.to(device))
        tokens = float(sum(e.num_labels for e in examples))
        return nll, {"nll": float(nll.detach()), "label_tokens": tokens, "sequences": float(len(examples))}

    def step_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        units = sums["label_tokens"] if self.cfg.sft.reduction == "mean" else sums["sequences"]
        return {
            "loss": sums["nll"] / max(units, 1.0),
            "token_loss": sums["nll"] / max(sums["label_tokens"], 1.0),
            "label_tokens": sums["label_tokens"],
        }


def main(argv: Sequence[str]) -> int:
    return stage_main(argv, SFTConfig, SFTTrainer)
