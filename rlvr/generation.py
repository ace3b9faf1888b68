"""What every sampler shares: the chat prompt a response continues, and transformers' `generate` inputs.

All sampling goes through the rollout `Engine` protocol (`rlvr.rollout`: the transformers engine
and the vLLM fleet); these helpers render and pad what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rlvr.chat import render_chat


def chat_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """The prompt text for a chat: the template up to and including `<|assistant|>\\n`."""
    return render_chat(messages, add_generation_prompt=True)


def sampling_kwargs(temperature: float) -> dict[str, Any]:
    """`model.generate` arguments: pure sampling at `temperature` (no top-k/top-p), greedy at 0."""
    if temperature > 0:
        return {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    return {"do_sample": False}


def left_padded(prompts: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ids, attention_mask)` with every prompt ending in the last column, where generation starts."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask
