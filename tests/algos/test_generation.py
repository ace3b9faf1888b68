"""The transformers engine: batching must not change what greedy decoding says, sampling is seeded."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM

from base_model.tokenizer import load_tokenizer
from rlvr.generation import chat_prompt
from rlvr.logprobs import token_logprobs
from rlvr.rollout import HFEngine

CHATS = [
    [{"role": "user", "content": "Tom has 3 pens. He gets 4 more. How many pens does Tom have now?"}],
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Write a short note about the fox. Do not use any commas."}],
]


def engine_and_prompts(
    base_checkpoint: Path, batch_size: int | None = None
) -> tuple[HFEngine, list[list[int]]]:
    model = AutoModelForCausalLM.from_pretrained(str(base_checkpoint))
    tokenizer = load_tokenizer(base_checkpoint)
    prompts = [tokenizer(chat_prompt(c), add_special_tokens=False)["input_ids"] for c in CHATS]
    return HFEngine(model, tokenizer, batch_size=batch_size), prompts


def test_batched_greedy_equals_one_by_one(base_checkpoint: Path) -> None:
    engine, prompts = engine_and_prompts(base_checkpoint, batch_size=2)  # longest first: batches of 2 and 1
    batched = [g[0] for g in engine.sample(prompts, 1, max_tokens=12, temperature=0.0, seed=0)]
    single = [engine.sample([p], 1, max_tokens=12, temperature=0.0, seed=0)[0][0] for p in prompts]
    assert [s.token_ids for s in batched] == [s.token_ids for s in single]
    assert all(len(s.token_ids) <= 12 for s in batched)
    # greedy log-probs are the argmax's, as a forward over prompt + response gives them
    model = engine.model
    for prompt, sample in zip(prompts, batched, strict=True):
        ids = torch.tensor([prompt + sample.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
        expected = token_logprobs(logits, torch.tensor(sample.token_ids))
        assert torch.allclose(torch.tensor(sample.logprobs), expected, atol=1e-4)


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(base_checkpoint: Path) -> None:
    engine, prompts = engine_and_prompts(base_checkpoint)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = engine.sample(prompts, 2, max_tokens=8, temperature=1.0, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    again = engine.sample(prompts, 2, max_tokens=8, temperature=1.0, seed=3)
    assert [[s.token_ids for s in g] for g in again] == [[s.token_ids for s in g] for g in first]


class ScriptedModel(torch.nn.Module):
    """`generate` returns a fixed continuation per row, with the scores of a uniform distribution."""

    def __init__(self, continuations: list[list[int]], vocab: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.continuations, self.vocab = continuations, vocab

    def generate(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        new = torch.tensor(self.continuations)
        scores = tuple(torch.zeros(len(new), self.vocab) for _ in range(new.shape[1]))
        return SimpleNamespace(sequences=torch.cat([input_ids, new], dim=1), scores=scores)


def test_a_response_is_cut_after_its_first_eos(base_checkpoint: Path) -> None:
    tokenizer = load_tokenizer(base_checkpoint)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    model = ScriptedModel([[7, 8, eos, pad, pad], [7, eos, 9, eos, pad], [7, 8, 9, 10, 11]], vocab=32)
    engine = HFEngine(model, tokenizer)
    samples = [
        g[0] for g in engine.sample([[1, 2], [3], [4, 5, 6]], 1, max_tokens=5, temperature=1.0, seed=0)
    ]
    assert [(s.token_ids, s.finished) for s in samples] == [
        ([7, 8, eos], True),
        ([7, eos], True),
        ([7, 8, 9, 10, 11], False),
    ]
    assert samples[0].logprobs == pytest.approx([-math.log(32)] * 3)
