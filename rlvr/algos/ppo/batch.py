"""Prompts and rollout batches: what one PPO step samples from and trains on.

Sequences are laid out `[left-padded prompt | right-padded response]`, so response token t sits at
column `P + t` for every row and its log-prob comes from the logits at column `P + t − 1`; position
ids skip the left padding, so RoPE positions equal the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.algos.ppo.config import PPOConfig
from rlvr.data import load_rows
from rlvr.generation import chat_prompt
from rlvr.rewards import verifier_name_problems
from rlvr.rollout import Sample


@dataclass
class Prompt:
    row: dict[str, Any]
    ids: list[int]


@dataclass
class Batch:
    """One rollout batch as tensors, `[samples, ...]`; response columns start at `prompt_width`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    """`[samples, response_width]` float: 1 on response tokens (EOS included)."""
    prompt_width: int
    engine_logprobs: torch.Tensor
    scores: torch.Tensor
    """Scalar reward per sample (verifier reward or the no-EOS penalty)."""

    def response_tokens(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width :]

    def model_inputs(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids.to(device),
            "attention_mask": self.attention_mask.to(device),
            "position_ids": self.position_ids.to(device),
        }

    def select(self, index: torch.Tensor) -> Batch:
        return Batch(
            self.input_ids[index], self.attention_mask[index], self.position_ids[index],
            self.response_mask[index], self.prompt_width, self.engine_logprobs[index], self.scores[index],
        )  # fmt: skip


@dataclass
class Rollout:
    """What the main process drew for one step and hands to every process."""

    samples: list[Sample]
    """`samples_per_prompt` consecutive samples per prompt, in prompt order."""
    scores: torch.Tensor
    metrics: dict[str, float]
    """Scoring and weight-sync figures."""
    seconds: float
    """The engine's time for the samples."""


def load_prompts(
    sources: Sequence[str], cfg: PPOConfig, tokenizer: Any, limit: int | None
) -> tuple[list[Prompt], int]:
    """Valid prompt rows, tokenised; prompts over `max_prompt_tokens` are counted and left out.
    Unknown verifier names stop the run here, naming the rows."""
    prompts, too_long = [], 0
    for source in sources:
        rows = load_rows(
            source, "rlvr", on_bad_row=cfg.data.on_bad_row, limit=limit,
            check=lambda _line, row: verifier_name_problems(row),
        )  # fmt: skip
        for row in rows:
            ids = tokenizer(chat_prompt(row["messages"]), add_special_tokens=False)["input_ids"]
            if len(ids) > cfg.data.max_prompt_tokens:
                too_long += 1
                continue
            prompts.append(Prompt(row, ids))
    return prompts, too_long


def collate(prompts: Sequence[Prompt], rollout: Rollout, pad: int) -> Batch:
    """The rollout as one padded batch; each prompt is repeated for its consecutive samples."""
    samples = rollout.samples
    n = len(samples) // len(prompts)
    prompt_ids = [p.ids for p in prompts for _ in range(n)]
    width = max(len(p) for p in prompt_ids)
    response_width = max(len(s.token_ids) for s in samples)
    ids = torch.full((len(samples), width + response_width), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    response_mask = torch.zeros((len(samples), response_width))
    engine_logprobs = torch.zeros((len(samples), response_width))
    for row, (prompt, sample) in enumerate(zip(prompt_ids, samples, strict=True)):
        length = len(sample.token_ids)
        ids[row, width - len(prompt) : width] = torch.tensor(prompt)
        ids[row, width : width + length] = torch.tensor(sample.token_ids)
        attention[row, width - len(prompt) : width + length] = 1
        response_mask[row, :length] = 1
        engine_logprobs[row, :length] = torch.tensor(sample.logprobs)
    positions = (attention.cumsum(1) - 1).clamp(min=0)
    return Batch(ids, attention, positions, response_mask, width, engine_logprobs, rollout.scores)
