"""Seconds per weight sync into a running vLLM engine, file route vs collective (streamed) route.

    .venv/bin/python scripts/bench_sync.py [--sizes 1m 11m 50m] [--repeats 3] [--out runs/bench_sync.json]

For each size a random OLMo 2 (built locally, no download) is served by one `VLLMEngine` per route
(`vllm.sync: file`, then `collective`); the trainer's copy is perturbed and synced `--repeats` times,
each sync verified on a probe (`verify_sync`, fp32 both sides). Printed: the median seconds of
`load_weights` per route and their ratio (file / collective: above 1 means streaming is faster), and
the largest probe gap. The engines run one after the other, so the ratio compares like with like on
a shared machine only as far as its load stays steady: repeat the run and compare the spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from base_model.model import ModelConfig, build_model
from base_model.tokenizer import load_tokenizer, train_tokenizer
from rlvr.rollout import Weights, trainer_logprobs, verify_sync
from rlvr.train.checkpoint import save_model
from rlvr.vllm_engine import VLLMConfig, VLLMEngine

SIZES = {  # head_dim 64 (a size vLLM's CPU attention supports)
    "1m": ModelConfig(d_model=128, n_layers=2, n_heads=2, mlp_hidden=384, vocab_size=2048, max_seq_len=256),
    "11m": ModelConfig(d_model=256, n_layers=8, n_heads=4, mlp_hidden=1024, vocab_size=4096, max_seq_len=256),
    "50m": ModelConfig(
        d_model=512, n_layers=10, n_heads=8, mlp_hidden=2048, vocab_size=8192, max_seq_len=256
    ),
}
TEXT = "The quick brown fox jumps over the lazy dog. Sam has 12 cards; he sells 3 and buys 30 more."


def build_checkpoint(config: ModelConfig, root: Path) -> Path:
    tokenizer_dir = root / "tokenizer"
    train_tokenizer(iter([TEXT] * 50), tokenizer_dir, vocab_size=300)
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model(config, tokenizer.eos_token_id, tokenizer.pad_token_id, seed=0, attention="eager")
    save_model(model, tokenizer, root / "model")
    return root / "model"


def perturb(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.01)


def time_route(checkpoint: Path, route: str, repeats: int) -> dict[str, Any]:
    from rlvr.algos.common import load_causal_lm

    model = load_causal_lm(str(checkpoint), "eager").eval()
    probe = load_tokenizer(checkpoint).encode(TEXT)
    engine = VLLMEngine(checkpoint, VLLMConfig(max_model_len=256, gpu_memory_utilization=0.1, sync=route))
    seconds, gaps = [], []
    try:
        for i in range(repeats + 1):  # the first collective sync also joins the weight group: not timed
            perturb(model, seed=i)
            start = time.perf_counter()
            engine.load_weights(Weights.of(model))
            if i:
                seconds.append(time.perf_counter() - start)
            gaps += verify_sync(engine, probe, trainer_logprobs(model, probe), tolerance=1e-3)
    finally:
        engine.close()
    return {"seconds": seconds, "median_seconds": statistics.median(seconds), "max_probe_gap": max(gaps)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sync.json"))
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-sync-{size}-") as tmp:
            checkpoint = build_checkpoint(SIZES[size], Path(tmp))
            params = sum(p.numel() for p in build_model(SIZES[size], 0, 1, seed=0).parameters())
            file, collective = (
                time_route(checkpoint, route, args.repeats) for route in ("file", "collective")
            )
        ratio = file["median_seconds"] / collective["median_seconds"]
        gap = max(file["max_probe_gap"], collective["max_probe_gap"])
        results.append({"size": size, "parameters": params, "file": file, "collective": collective,
                        "file_over_collective": ratio})  # fmt: skip
        print(
            f"{size:>4} ({params / 1e6:.1f}M params): file {file['median_seconds']:.3f} s, collective "
            f"{collective['median_seconds']:.3f} s per sync, file/collective {ratio:.2f}x; max probe gap {gap:.2g}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
