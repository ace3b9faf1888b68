"""Sampling completions from a policy: one interface, backends beside it.

`generate(model, tokenizer, prompts, max_new_tokens, temperature)` is the transformers backend
(`model.generate`, any device); the vLLM backend for PPO rollouts and `rlvr eval` will sit beside it
with the same signature. Prompts are rendered text (`chat_prompt` renders a chat with the generation
prompt); each `Completion` holds the decoded text, the generated ids and whether the model ended it
with EOS — PPO penalises responses that run out of tokens, so that flag is part of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.chat import render_chat
from rlvr.train.precision import autocast as autocast_context


@dataclass
class Completion:
    text: str
    """The response without the closing EOS (special tokens removed)."""
    token_ids: list[int]
    """Generated ids, up to and including the EOS when there is one."""
    finished: bool
    """True when the model emitted EOS within `max_new_tokens`."""


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


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 32,
    seed: int = 0,
    autocast: torch.dtype | None = None,
) -> list[Completion]:
    """Complete every prompt; results in input order. `temperature` 0 is greedy decoding.

    Prompts are batched by length (longest first, so the first batch shows any memory problem
    at once) and left-padded; nothing but the prompt text is tokenized (no special tokens added:
    the chat template already holds them).
    """
    if not prompts:
        return []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    sampling = sampling_kwargs(temperature)
    generator_state = torch.random.fork_rng(devices=[]) if temperature > 0 else nullcontext()
    results: list[Completion | None] = [None] * len(prompts)
    with generator_state:
        if temperature > 0:
            torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = left_padded([encoded[i] for i in chunk], pad)
            width = ids.shape[1]
            context = autocast_context(autocast, device)
            with context:
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    **sampling,
                )
            for row, i in enumerate(chunk):
                results[i] = _completion(out[row, width:].tolist(), eos, tokenizer)
    model.train(was_training)
    return [r for r in results if r is not None]


def _completion(generated: list[int], eos: int, tokenizer: Any) -> Completion:
    """Cut a generated row at its first EOS (what follows is padding)."""
    finished = eos in generated
    ids = generated[: generated.index(eos) + 1] if finished else generated
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return Completion(text=text, token_ids=ids, finished=finished)
