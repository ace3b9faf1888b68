"""What the sync probe sees with a bf16 vLLM engine: the numerics gap, synced gaps, stale gaps.

One vLLM engine in bfloat16 serves CHECKPOINT (default: the demo's DPO model) and an fp32 trainer
copy is compared with it on the PPO probe (`rollout.probe`'s default):

- at start (the engine loaded the checkpoint itself): the gap against the trainer computed three
  ways — fp32, under bf16 autocast, and with its weights cast to bf16 — and the tolerance a run
  would take from it (`rlvr.rollout.measured_tolerance`);
- after each of `--syncs` verified syncs of a slightly moved trainer (every weight moved by 0.03 %
  of its tensor's mean size): the synced gap;
- with the engine left stale while the trainer moves by 0.1 %, 1 % and 3 %: the stale gap, and
  whether the tolerance would stop the run.

    .venv/bin/python scripts/probe_bf16.py [--checkpoint runs/tiny/dpo] [--syncs 8]

Prints one JSON object; writes it to --out.
"""

from __future__ import annotations

import argparse
import copy
import json
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
    parser.add_argument("--syncs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/probe_bf16.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer

    checkpoint = str(resolve_model(args.checkpoint, "causal_lm", "checkpoint"))
    probe = AutoTokenizer.from_pretrained(checkpoint)(RolloutConfig().probe, add_special_tokens=False)[
        "input_ids"
    ]
    model = load_causal_lm(checkpoint, "eager").eval()
    engine = VLLMEngine(
        checkpoint, VLLMConfig(max_model_len=256, gpu_memory_utilization=0.05, dtype="bfloat16")
    )

    def gap(expected: list[float]) -> float:
        return max(max_abs_gap(served, expected) for served in engine.probe_logprobs(probe))

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = trainer_logprobs(model, probe)
        start = {
            "fp32": gap(trainer_logprobs(model, probe)),
            "bf16_autocast": gap(autocast),
            "bf16_weights": gap(trainer_logprobs(copy.deepcopy(model).to(torch.bfloat16), probe)),
        }
        tolerance = measured_tolerance([start["fp32"]])
        synced = []
        for i in range(args.syncs):
            move(model, 3e-4, seed=i)
            engine.load_weights(Weights.of(model))
            synced.append(gap(trainer_logprobs(model, probe)))
        stale = {}
        for scale in (1e-3, 1e-2, 3e-2):
            move(model, scale, seed=1000)
            stale[f"{scale:g}"] = gap(trainer_logprobs(model, probe))
            engine.load_weights(Weights.of(model))
    finally:
        engine.close()
    result = {
        "checkpoint": args.checkpoint,
        "params": sum(p.numel() for p in model.parameters()),
        "probe_tokens": len(probe),
        "start_gap": start,
        "tolerance": tolerance,
        "synced_gaps": synced,
        "stale_gaps": stale,
        "stale_caught": {k: v > tolerance for k, v in stale.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
