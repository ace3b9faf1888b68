"""`rlvr plan` against measurement: predicted and measured peak memory of short CPU trainings, side by side.

    .venv/bin/python scripts/plan_check.py [--steps 3] [--micro-batch 4] [--length 256] [--quick]
                                           [--only NAME_PART ...] [--json OUT]

What runs: `rlvr sft` for `--steps` optimizer steps of two micro-batches each (so gradients from the
first micro-batch are held while the second one's activations are, as in every multi-micro-batch step),
on randomly initialised OLMo 2 models of the `tiny` (3.9M parameters) and `tiny_14m` (13.8M) presets
(base_model.model.PRESETS), with a tokenizer of 1,024 tokens. Every chat of the synthetic data set this
script writes is longer than `--length`, so truncation makes every sequence exactly `--length`
tokens: the shape the plan assumes (its worst case). Cases: 1 and 2 processes (torchrun, gloo), ddp and
fsdp2 (and zero2, with a small reduce bucket), fp32 and bf16 autocast, activation checkpointing off and
on, sdpa and eager attention. zero3 is not among them: DeepSpeed hands its all-gather buffers to gloo,
whose threads free them where the profiler does not look, so the replay over-counts them by an amount
that changes from run to run.

What is measured, inside each training process: the most bytes of tensor storage alive during the
training steps. The CPU allocator keeps no peak counter (CUDA's `max_memory_allocated`), so the
script runs the trainer under `torch.profiler` with `profile_memory=True`, started before the trainer
builds anything: every allocation and free of a CPU tensor's storage is recorded with its address
and size; replaying them gives the bytes alive at each moment, and the peak is the largest inside the
training steps. It counts tensor storage — weights (also those mapped from the checkpoint file),
gradients, optimizer states, DDP/FSDP buffers, activations, temporaries — and not Python objects,
the buffers gloo allocates inside its collectives (`peak_allocated` says why), nor what malloc keeps
after a free (RSS). A run's figure is the largest over its processes; `mapped` is how much of it was
still mapped from the checkpoint file (the loaded weights, unless the engine copied them elsewhere).

What is predicted: `rlvr.plan` on the same config file and process count, the "forward + backward"
phase of its per-device plan (held weights, gradients, optimizer states and buffers, one micro-batch's
activations, the sharding engine's working buffers), with no reserve (that covers CUDA's context and
NCCL, which a CPU run has not). The parts the trainer logs (`memory/params`, `memory/grads`,
`memory/optimizer`, measured from the tensors) are compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARK = "plan_check/steps"
MB = 10**6
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


@dataclass(frozen=True)
class Case:
    preset: str
    processes: int
    sharding: str
    precision: str = "fp32"
    checkpointing: bool = False
    attention: str = "sdpa"

    @property
    def name(self) -> str:
        ckpt = "-ckpt" if self.checkpointing else ""
        return f"{self.preset}-{self.processes}p-{self.sharding}-{self.precision}{ckpt}-{self.attention}"


REDUCE_BUCKET = 10**6
"""DeepSpeed's reduce bucket in the zero2/zero3 cases (elements; its default 5·10⁸ would be 2 GB of fp32,
a constant that would swamp these models' figures), set through a `train.deepspeed` JSON."""


CASES = [
    Case("tiny", 1, "ddp"),
    Case("tiny", 2, "ddp"),
    Case("tiny", 2, "fsdp2"),
    Case("tiny_14m", 1, "ddp"),
    Case("tiny_14m", 1, "ddp", "bf16"),
    Case("tiny_14m", 1, "ddp", "bf16", checkpointing=True),
    Case("tiny_14m", 1, "ddp", checkpointing=True),
    Case("tiny_14m", 1, "ddp", attention="eager"),
    Case("tiny_14m", 2, "ddp"),
    Case("tiny_14m", 2, "fsdp2"),
    Case("tiny_14m", 2, "fsdp2", "bf16"),
    Case("tiny_14m", 2, "fsdp2", checkpointing=True),
    Case("tiny_14m", 2, "zero2"),
]
QUICK = [CASES[0], CASES[2], CASES[3], CASES[9]]


# ----------------------------------------------------------------------------- inside a training process


def peak_allocated(prof: Any, mark: str) -> tuple[int, int]:
    """`(bytes, of which mapped)`: the most bytes of CPU tensor storage alive inside the `mark` range,
    replayed from the profiler's allocation and free events (by address: an allocation at an address
    still held replaces it), and how many of them were mapped from a checkpoint file then.

    Left out: what gloo allocates inside its collectives (`c10d::` operators, e.g. the copy its
    reduce-scatter makes of the input) — it frees those on its own threads, where the profiler records
    nothing, so they would look alive for ever; they are the CPU backend's, as NCCL's buffers are on
    GPUs. Replayed rather than read from the events' `total_allocated`, which is the CPU allocator's
    own count: it misses the checkpoint weights safetensors maps from their file (transformers loads
    checkpoints so; another allocator reports them), and it drifts with gloo's unseen frees."""
    from torch._C._profiler import _EventType

    events: list[tuple[int, int, int, bool]] = []

    def walk(nodes: list[Any], in_collective: bool) -> None:
        for node in nodes:
            inside = in_collective or node.name.startswith("c10d::")
            f = node.extra_fields
            if node.tag == _EventType.Allocation and f.device.type == "cpu" and not inside:
                mapped = (
                    f.alloc_size > 0 and f.total_allocated == 0
                )  # not the CPU allocator's: a file mapping
                events.append((node.start_time_ns, f.ptr, f.alloc_size, mapped))
            walk(node.children, inside)

    tree = prof.profiler.kineto_results.experimental_event_tree()
    walk(tree, False)
    marks = [n for n in _nodes(tree) if n.name == mark]
    if not marks:
        raise RuntimeError(f"the profile has no '{mark}' range")
    start, end = marks[0].start_time_ns, marks[0].end_time_ns
    held: dict[int, tuple[int, bool]] = {}
    alive = mapped_alive = 0
    peak = (0, 0)
    for time, ptr, size, mapped in sorted(events):
        old, was_mapped = held.pop(ptr, (0, False))
        alive -= old
        mapped_alive -= old if was_mapped else 0
        if size > 0:
            held[ptr] = (size, mapped)
            alive += size
            mapped_alive += size if mapped else 0
        if start <= time <= end and alive > peak[0]:
            peak = (alive, mapped_alive)
    return peak


def _nodes(nodes: list[Any]) -> Any:
    for node in nodes:
        yield node
        yield from _nodes(node.children)


def worker(config: Path, steps: int, result: Path) -> None:
    """Build the SFT trainer and run `steps` steps under the memory profiler; write this process's peak."""
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile, record_function

    from rlvr.algos.sft import SFTConfig, SFTTrainer
    from rlvr.config import load_config

    cfg = load_config(SFTConfig, config)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer = SFTTrainer(cfg)
        with record_function(MARK):
            for _ in range(steps):
                metrics = trainer.train_step()
                trainer.step += 1
    rank = trainer.dist.rank
    parts = {k.split("/")[-1]: v for k, v in metrics.items() if k.startswith("memory/")}
    peak, mapped = peak_allocated(prof, MARK)
    out = {"rank": rank, "peak": peak, "mapped": mapped, **parts}
    result.with_name(f"{result.name}.rank{rank}.json").write_text(json.dumps(out))
    trainer.core.close()
    if dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- the driver


def long_chats(path: Path, count: int, words: int) -> None:
    """SFT rows whose answers run longer than any `--length` the checks use: truncation cuts each to it."""
    import random

    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(count):
            answer = " ".join(rng.choice(WORDS) for _ in range(words))
            row = {
                "messages": [
                    {"role": "user", "content": f"Recite list {i}."},
                    {"role": "assistant", "content": answer},
                ]
            }
            f.write(json.dumps(row) + "\n")


def base_checkpoints(root: Path) -> tuple[Path, dict[str, Path]]:
    """The data file, and a freshly initialised checkpoint of each preset with a tokenizer trained on it."""
    from base_model.data import iter_texts
    from base_model.model import PRESETS, build_model
    from base_model.tokenizer import load_tokenizer, train_tokenizer
    from rlvr.train.checkpoint import save_model

    data = root / "sft.jsonl"
    long_chats(data, 64, 600)
    train_tokenizer(iter_texts([str(data)]), root / "tokenizer", vocab_size=1024)
    tokenizer = load_tokenizer(root / "tokenizer")
    folders = {}
    for preset in ("tiny", "tiny_14m"):
        model = build_model(PRESETS[preset](), tokenizer.eos_token_id, tokenizer.pad_token_id, seed=0)
        folders[preset] = root / preset
        save_model(model, tokenizer, folders[preset])
    return data, folders


def write_config(case: Case, root: Path, data: Path, model: Path, micro_batch: int, length: int) -> Path:
    from rlvr.config import dump_yaml

    config = {
        "name": case.name, "runs_root": str(root / "runs"), "init_from": str(model),
        "log": {"wandb": False, "progress": False, "every": 10**6},
        "data": {"train": [str(data)], "max_length": length, "overlong": "truncate"},
        "optim": {"lr": 1e-4, "warmup_ratio": 0.0, "schedule": "constant"},
        "train": {"batch_size": 2 * micro_batch * case.processes, "micro_batch_size": micro_batch, "epochs": 100,
                  "sharding": case.sharding, "precision": case.precision, "attention": case.attention,
                  "activation_checkpointing": case.checkpointing, "save_every": 10**6, "resume": False},
        "sft": {"packing": False, "reduction": "mean"},
    }  # fmt: skip
    if case.sharding in ("zero2", "zero3"):
        deepspeed = root / "deepspeed.json"
        deepspeed.write_text(json.dumps({"zero_optimization": {"reduce_bucket_size": REDUCE_BUCKET}}))
        config["train"]["deepspeed"] = str(deepspeed)
    path = root / f"{case.name}.yaml"
    path.write_text(dump_yaml(config))
    return path


def measure(case: Case, config: Path, steps: int, root: Path) -> dict[str, Any]:
    result = root / f"{case.name}.result"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(case.processes),
               __file__, "--worker", str(config), "--steps", str(steps), "--result", str(result)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    if run.returncode:
        raise RuntimeError(f"{case.name} failed:\n{run.stderr[-3000:]}")
    ranks = [json.loads(p.read_text()) for p in sorted(root.glob(f"{case.name}.result.rank*.json"))]
    top = max(ranks, key=lambda r: r["peak"])
    return {
        "mapped": top["mapped"],
        **{key: max(r[key] for r in ranks) for key in ("peak", "params", "grads", "optimizer")},
    }


def predict(case: Case, config: Path) -> dict[str, int]:
    from rlvr.algos.sft import SFTConfig
    from rlvr.config import load_config
    from rlvr.plan.devices import build_plan
    from rlvr.plan.workload import read_layout, read_workload

    cfg = load_config(SFTConfig, config)
    plan = build_plan(
        read_workload(cfg, "sft"), read_layout(cfg, "sft", case.processes, 1), gpu_memory=1 << 60, reserve=0
    )
    (group,) = plan.groups
    phase = next(p for p in group.phases if p.name.startswith("forward + backward"))
    held = {r.label.split(" (")[0]: r.bytes for r in group.held}
    return {"peak": group.phase_total(phase), "params": held["weights"], "grads": held["gradients"],
            "optimizer": held["optimizer states"]}  # fmt: skip


def error(predicted: float, measured: float) -> str:
    return f"{100 * (predicted - measured) / measured:+.1f} %" if measured else "–"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(c.name for c in QUICK)}")
    parser.add_argument(
        "--only", nargs="+", default=[], help="only the cases whose name contains one of these"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.steps, args.result)
        return 0

    rows = []
    header = (f"{'case':<38}{'predicted MB':>14}{'measured MB':>13}{'error':>10}{'mapped MB':>11}   "
              f"{'params pred/meas':>18}{'grads pred/meas':>18}{'optimizer pred/meas':>21}")  # fmt: skip
    print(f"SFT, {args.steps} steps of 2 micro-batches × {args.micro_batch} sequences × {args.length} tokens; "
          "peak tensor bytes on CPU, largest process", flush=True)  # fmt: skip
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="plan_check-") as tmp:
        root = Path(tmp)
        data, models = base_checkpoints(root)
        cases = QUICK if args.quick else CASES
        for case in [c for c in cases if not args.only or any(part in c.name for part in args.only)]:
            config = write_config(case, root, data, models[case.preset], args.micro_batch, args.length)
            got, want = measure(case, config, args.steps, root), predict(case, config)
            rows.append({"case": case.name, "predicted": want, "measured": got})
            parts = "".join(f"{f'{want[k] / MB:.1f}/{got[k] / MB:.1f}':>{w}}" for k, w in
                            (("params", 18), ("grads", 18), ("optimizer", 21)))  # fmt: skip
            print(f"{case.name:<38}{want['peak'] / MB:>14.1f}{got['peak'] / MB:>13.1f}"
                  f"{error(want['peak'], got['peak']):>10}{got['mapped'] / MB:>11.1f}   {parts}", flush=True)  # fmt: skip
    worst = max(abs(r["predicted"]["peak"] - r["measured"]["peak"]) / r["measured"]["peak"] for r in rows)
    print(f"largest peak error: {100 * worst:.1f} % ({'within' if worst <= 0.15 else 'outside'} 15 %)")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
