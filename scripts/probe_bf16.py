"""What the sync probe sees with a bf16 vLLM engine: the numerics gap, synced gaps, stale gaps.

One vLLM engine in bfloat16 serves CHECKPOINT (default: the demo's DPO model) and an fp32 trainer
copy is compared with it on the PPO probe (`rollout.probe`'s default) and `--probes` chat prompts
from PROMPTS, each gap the largest over a probe's tokens:

- at start (the engine loaded the checkpoint itself): the gap against the trainer's side computed
  three ways — fp32, under bf16 autocast, with its weights cast to bf16 — and the tolerance a run
  would take from the largest (`rlvr.rollout.measured_tolerance`);
- after each of `--syncs` syncs of a slightly moved trainer (every weight moved by 0.03 % of its
  tensor's mean size): the largest synced gap, for the fp32 and the bf16-weights trainer side;
- with the engine left stale while the trainer moves by 0.1 %, 1 % and 3 %: the largest stale gap,
  and whether that side's tolerance would stop the run.

    .venv/bin/python scripts/probe_bf16.py [--checkpoint runs/tiny/dpo] [--probes 8] [--syncs 8]

Prints the figures as JSON; writes them, with every probe's start gaps, to --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from rlvr.algos.common import load_causal_lm
from rlvr.algos.ppo.config import RolloutConfig
from rlvr.checkpoints import resolve_model
from rlvr.rollout import Weights, max_abs_gap, measured_tolerance, trainer_logprobs
from rlvr.vllm_engine import VLLMConfig, VLLMEngine


def move(model: torch.nn.Module, scale: float, seed: int) -> None:
    """Every weight moved by Gaussian noise of `scale` × its tensor's mean absolute value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.abs().mean())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="runs/tiny/dpo")
    parser.add_argument(
        "--prompts", default="runs/tiny/data/rlvr_test.jsonl", help="more probes: chat prompts"
    )
    parser.add_argument("--probes", type=int, default=8, help="probes: the default one + this many prompts")
    parser.add_argument("--syncs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/probe_bf16.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from rlvr.data import load_rows
    from rlvr.generation import chat_prompt

    checkpoint = str(resolve_model(args.checkpoint, "causal_lm", "checkpoint"))
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    texts = [RolloutConfig().probe] + [
        chat_prompt(row["messages"]) for row in load_rows(args.prompts, "rlvr", limit=args.probes)
    ]
    probes = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    model = load_causal_lm(checkpoint, "eager").eval()
    engine = VLLMEngine(
        checkpoint, VLLMConfig(max_model_len=256, gpu_memory_utilization=0.05, dtype="bfloat16")
    )
    sides: dict[str, Callable[[list[int]], list[float]]] = {
        "fp32": lambda ids: trainer_logprobs(model, ids),
        "bf16_autocast": lambda ids: autocast_logprobs(model, ids),
        "bf16_weights": lambda ids: trainer_logprobs(copy.deepcopy(model).to(torch.bfloat16), ids),
    }

    def gaps(side: str) -> list[float]:
        """Per probe: the largest gap over the engine's probe tokens."""
        served = [engine.probe_logprobs(ids)[0] for ids in probes]
        return [max_abs_gap(s, sides[side](ids)) for s, ids in zip(served, probes, strict=True)]

    try:
        start = {side: gaps(side) for side in sides}
        synced: dict[str, list[float]] = {"fp32": [], "bf16_weights": []}
        for i in range(args.syncs):
            move(model, 3e-4, seed=i)
            engine.load_weights(Weights.of(model))
            for side in synced:
                synced[side].append(max(gaps(side)))
        stale: dict[str, dict[str, float]] = {"fp32": {}, "bf16_weights": {}}
        for scale in (1e-3, 1e-2, 3e-2):
            move(model, scale, seed=1000)
            for side in stale:
                stale[side][f"{scale:g}"] = max(gaps(side))
            engine.load_weights(Weights.of(model))
    finally:
        engine.close()
    tolerance = {side: measured_tolerance(start[side]) for side in synced}
    result = {
        "checkpoint": args.checkpoint,
        "params": sum(p.numel() for p in model.parameters()),
        "probes": len(probes),
        "probe_tokens": [len(p) for p in probes],
        "start_gap_per_probe": start,
        "start_gap_max": {side: max(v) for side, v in start.items()},
        "start_gap_median": {side: statistics.median(v) for side, v in start.items()},
        "tolerance": tolerance,
        "synced_gap_max": synced,
        "stale_gap_max": stale,
        "stale_caught": {side: {k: v > tolerance[side] for k, v in stale[side].items()} for side in stale},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "start_gap_per_probe"}, indent=2))
    return 0


def autocast_logprobs(model: torch.nn.Module, ids: list[int]) -> list[float]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return trainer_logprobs(model, ids)


if __name__ == "__main__":
    raise SystemExit(main())
