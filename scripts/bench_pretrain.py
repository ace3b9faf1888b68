"""Pretraining throughput and MFU of the tiny presets, against this machine's measured matmul peak.

    .venv/bin/python scripts/bench_pretrain.py [--presets tiny tiny_14m] [--compile off on] [--attention eager]

The peak is measured in the same run (a bf16 — or fp32 without native bf16 — square-matmul loop),
then each preset runs the real `Trainer.train_step` (bf16 autocast, z-loss, clipping, fused AdamW)
on a generated corpus, without and with `torch.compile`. Warm-up (and compile) steps are excluded. The machine's load average is printed with the
numbers: on a shared CPU, contention lowers both the peak and the training rate.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from base_model.config import PretrainConfig
from base_model.data import iter_texts, prepare_memmaps
from base_model.model import PRESETS, num_params
from base_model.tokenizer import train_tokenizer
from base_model.trainer import Trainer
from rlvr.config import from_dict
from rlvr.data import write_jsonl
from rlvr.train.precision import autocast_dtype, measure_matmul_peak


def make_corpus(work: Path, vocab_size: int) -> None:
    rng = random.Random(0)
    rows = []
    for _ in range(6000):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        rows.append(
            {
                "text": f"Ana has {a} pens and gets {b} more. How many pens now?\n{a} + {b} = {a + b}. #### {a + b}"
            }
        )
    write_jsonl(rows, work / "bench.jsonl")
    train_tokenizer(iter_texts([str(work / "bench.jsonl")]), work / "tok", vocab_size=vocab_size)
    prepare_memmaps([str(work / "bench.jsonl")], work / "tok", work / "tokens")


def bench(preset: str, compiled: bool, work: Path, args: argparse.Namespace, peak: float) -> dict[str, float]:
    model = PRESETS[preset]()
    if not (work / preset).is_dir():
        make_corpus(work / preset, model.vocab_size)
    tokenizer_dir, tokens = work / preset / "tok", work / preset / "tokens" / "bench.tokens.bin"
    cfg = from_dict(
        PretrainConfig,
        {
            "name": f"{preset}-{compiled}",
            "runs_root": str(work / "runs"),
            "tokenizer": str(tokenizer_dir),
            "log": {"wandb": False, "progress": False},
            "model": {**vars(model), "max_seq_len": max(model.max_seq_len, args.seq_len)},
            "data": {"train": [{"paths": [str(tokens)]}], "seq_len": args.seq_len},
            "train": {
                "max_steps": args.steps,
                "global_batch_size": args.batch,
                "micro_batch_size": args.batch,
                "peak_tflops": peak / 1e12,
                "attention": args.attention,
                "compile": compiled,
            },
        },
    )
    trainer = Trainer(cfg)
    rates = []
    for step in range(args.steps):
        metrics = trainer.train_step()
        trainer.step += 1
        if step >= args.warmup:
            rates.append(metrics["tokens_per_s"])
    trainer.logger.close()
    tokens_per_s = statistics.median(rates)
    return {
        "params": num_params(model),
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * trainer.flops_per_token / peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets", nargs="+", default=["tiny", "tiny_14m"], choices=[p for p in PRESETS if "tiny" in p]
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the median")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step (one micro-batch)")
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--peak_seconds", type=float, default=6.0)
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--attention", default="eager", choices=["eager", "sdpa"])
    args = parser.parse_args()

    device = torch.device("cpu")
    dtype = autocast_dtype("auto", device) or torch.float32
    load_before = os.getloadavg()
    peak = measure_matmul_peak(device, dtype, seconds=args.peak_seconds)
    print(f"{dtype} matmul peak: {peak / 1e12:.3f} TFLOP/s ({torch.get_num_threads()} threads)")
    print(f"{'preset':10s} {'compile':>7s} {'params':>8s} {'tokens/s':>10s} {'TFLOP/s':>8s} {'MFU':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for mode in args.compile:
                start = time.time()
                r = bench(preset, mode == "on", Path(tmp), args, peak)
                achieved = r["mfu"] * peak / 1e12
                print(
                    f"{preset:10s} {mode:>7s} {r['params'] / 1e6:7.2f}M {r['tokens_per_s']:10,.0f} {achieved:8.3f} "
                    f"{r['mfu']:6.1%}   (seq {args.seq_len}, batch {args.batch}, {args.attention} attention, "
                    f"{time.time() - start:.0f} s)",
                    flush=True,
                )
    load_after = os.getloadavg()
    print(
        f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cpus"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
