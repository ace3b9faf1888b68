"""Per-process bytes of parameters, gradients and optimizer state in every `train.sharding` mode, on
1 and 2 processes: a few SFT steps of the tiny model, each mode launched with torchrun.

    .venv/bin/python scripts/sharding_memory.py [--run runs/tiny] [--out runs/sharding]
        [--modes ddp zero2 zero3 fsdp2] [--processes 1 2] [--steps 2]

`--run` is a finished `make demo` run (its base model and SFT data). Each launch is
`torchrun --nproc_per_node P -m rlvr.cli sft --config configs/sft/tiny.yaml --train.sharding=MODE`
for `--steps` steps without evaluation; the figures are the trainer's own `memory/*` metrics (what
each process holds as its step ends: the largest over the processes), written to
`<out>/sharding_memory.json` and printed with each 2-process figure as a share of the 1-process one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rlvr.tracking import read_metrics

PARTS = ("params", "grads", "optimizer")


def launch(run: Path, out: Path, mode: str, processes: int, steps: int) -> dict[str, float]:
    name = f"{mode}-{processes}"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        "-m", "rlvr.cli", "sft", "--config", "configs/sft/tiny.yaml",
        f"--runs_root={out}", f"--name={name}", f"--init_from={run / 'base'}",
        f"--data.train=[{run / 'data' / 'sft_train.jsonl'}]", "--eval.rlvr_test=null", "--eval.prefs_test=null",
        f"--train.sharding={mode}", f"--train.max_steps={steps}", "--train.batch_size=16",
        "--train.micro_batch_size=8", "--train.resume=false", "--log.wandb=false", "--log.progress=false",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {processes} process(es) failed:\n{done.stderr[-3000:]}")
    last = read_metrics(out / name / "metrics.jsonl")[-1]
    return {part: last[f"memory/{part}"] for part in PARTS} | {"loss": last["loss"]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--out", type=Path, default=Path("runs/sharding"))
    parser.add_argument("--modes", nargs="+", default=["ddp", "zero2", "zero3", "fsdp2"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    if not (args.run / "base").is_dir():
        print(f"sharding_memory: {args.run / 'base'} not found; run `make demo` first", file=sys.stderr)
        return 2
    figures = {
        mode: {str(p): launch(args.run, args.out, mode, p, args.steps) for p in args.processes}
        for mode in args.modes
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sharding_memory.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{'mode':<7}{'procs':>6}" + "".join(f"{part + ' (KB)':>18}" for part in PARTS) + f"{'loss':>10}")
    for mode, by_procs in figures.items():
        alone = by_procs.get("1")
        for procs, row in by_procs.items():
            cells = ""
            for part in PARTS:
                share = f" ({row[part] / alone[part]:.2f})" if alone and procs != "1" and alone[part] else ""
                cells += f"{row[part] / 1024:>11,.0f}{share:>7}"
            print(f"{mode:<7}{procs:>6}{cells}{row['loss']:>10.4f}")
    print("\n(x.xx): the share of the same mode's 1-process figure; the largest over processes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
