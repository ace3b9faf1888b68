"""A trained tiny checkpoint served by vLLM: same tokens in, same greedy tokens out as transformers.

vLLM starts a worker process, so the engine runs in a child script with a `__main__` guard; one
engine start (~20 s on 2 cores) covers both the tokenizer and the generation checks.
"""

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_pretrain_tokenizer import HARD_STRINGS
from transformers import AutoModelForCausalLM, AutoTokenizer

from base_model.config import PretrainConfig
from base_model.trainer import pretrain

PROMPTS = ["Tom has 12 apples and gets", "Mia has 7 coins", "Raj has 40 cards and gets 2 more. How", "Lee"]
NEW_TOKENS = 24

ENGINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        checkpoint, prompts, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
        llm = LLM(checkpoint, dtype="float32", enforce_eager=True, max_model_len=64, seed=0)
        outs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=int(sys.argv[4])))
        tokenizer = llm.get_tokenizer()
        print("RESULT " + json.dumps({
            "prompt_ids": [o.prompt_token_ids for o in outs],
            "output_ids": [list(o.outputs[0].token_ids) for o in outs],
            "encoded": [tokenizer.encode(t, add_special_tokens=False) for t in texts],
            "default_encoded": [tokenizer.encode(t) for t in texts],
        }))
    """
)


def until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def test_vllm_greedy_equals_transformers_greedy(
    make_cfg: Callable[..., PretrainConfig], tmp_path: Path
) -> None:
    pytest.importorskip("vllm")
    cfg = make_cfg(
        {"train": {"max_steps": 80, "global_batch_size": 16, "micro_batch_size": 16, "save_every": 80}}
    )
    checkpoint = pretrain(cfg)

    script = tmp_path / "engine.py"
    script.write_text(ENGINE_SCRIPT)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    args = [str(checkpoint), json.dumps(PROMPTS), json.dumps(HARD_STRINGS), str(NEW_TOKENS)]
    run = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    engine = json.loads(lines[0].removeprefix("RESULT "))

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    assert engine["encoded"] == [tok.encode(t) for t in HARD_STRINGS]
    assert engine["default_encoded"] == engine["encoded"]  # vLLM's defaults add nothing either

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    for prompt, prompt_ids, vllm_ids in zip(PROMPTS, engine["prompt_ids"], engine["output_ids"], strict=True):
        ids = tok(prompt, return_tensors="pt").input_ids
        assert prompt_ids == ids[0].tolist()
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=tok.pad_token_id
            )
        hf_ids = out[0, ids.shape[1] :].tolist()
        assert until_eos(vllm_ids, tok.eos_token_id) == until_eos(hf_ids, tok.eos_token_id), prompt
    assert any(
        len(until_eos(ids, tok.eos_token_id)) > 8 for ids in engine["output_ids"]
    )  # not trivially short
