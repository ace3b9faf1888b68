"""The transformers generation backend: batching must not change what greedy decoding says."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from base_model.tokenizer import load_tokenizer
from rlvr.chat import EOS_TOKEN
from rlvr.generation import Completion, _completion, chat_prompt, generate

PROMPTS = [
    chat_prompt(
        [{"role": "user", "content": "Tom has 3 pens. He gets 4 more. How many pens does Tom have now?"}]
    ),
    chat_prompt([{"role": "user", "content": "Hi"}]),
    chat_prompt([{"role": "user", "content": "Write a short note about the fox. Do not use any commas."}]),
]


def test_batched_greedy_equals_one_by_one(base_checkpoint: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(base_checkpoint))
    tokenizer = load_tokenizer(base_checkpoint)
    batched = generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=3)
    single = [generate(model, tokenizer, [p], max_new_tokens=12)[0] for p in PROMPTS]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    assert all(len(c.token_ids) <= 12 for c in batched)


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(base_checkpoint: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(base_checkpoint))
    tokenizer = load_tokenizer(base_checkpoint)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = generate(model, tokenizer, PROMPTS, max_new_tokens=8, temperature=1.0, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert [
        c.token_ids for c in generate(model, tokenizer, PROMPTS, max_new_tokens=8, temperature=1.0, seed=3)
    ] == [c.token_ids for c in first]


def test_completion_stops_at_eos(base_checkpoint: Path) -> None:
    tokenizer = load_tokenizer(base_checkpoint)
    ids = tokenizer("7 + 1 = 8", add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert _completion([*ids, eos, pad, pad], eos, tokenizer) == Completion("7 + 1 = 8", [*ids, eos], True)
    assert _completion(ids, eos, tokenizer) == Completion("7 + 1 = 8", ids, False)
    assert EOS_TOKEN not in _completion([*ids, eos], eos, tokenizer).text
