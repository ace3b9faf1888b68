"""`rlvr plan --config FILE --gpus N --gpu-memory GB [--nodes M] [--key=value ...]`: the per-device
memory of a config's layout, a verdict, and the smallest layout that fits when it does not."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rlvr.config import ConfigError
from rlvr.plan.devices import Plan, build_plan
from rlvr.plan.memory import GB
from rlvr.plan.search import RESERVE, describe_change, smallest_fitting, verdict
from rlvr.plan.workload import STAGES, Workload, load_stage_config, read_layout, read_workload

LABEL = 50
COLUMN = 24


def _gb(value: int) -> str:
    return f"{value / GB:.2f}"


def _row(label: str, cells: Sequence[str]) -> str:
    return f"{label:<{LABEL}}" + "".join(f"{c:>{COLUMN}}" for c in cells)


def describe_models(w: Workload) -> list[str]:
    lines = []
    for m in (*w.trained, *(x for x in (w.scorer,) if x is not None)):
        lora = f", LoRA adapters {m.lora / 1e6:.1f}M trained" if m.lora else ""
        lines.append(f"  {m.role:<12} {m.name}: {m.params / 1e9:.3f}B parameters{lora} ({m.shape.source})")
    if w.reference is not None:
        lines.append(f"  {'reference':<12} the policy's weights, frozen")
    return lines


def describe_layout(plan: Plan) -> str:
    w, lay = plan.workload, plan.layout
    on = {True: "on", False: "off"}
    parts = [f"sharding {lay.sharding}", f"activation checkpointing {on[lay.activation_checkpointing]}",
             f"optimizer offload {on[lay.offload_optimizer]}", f"micro-batch {lay.micro_batch_size}",
             "bf16 autocast" if w.bf16 else "fp32", f"{w.attention} attention"]  # fmt: skip
    if w.engine is not None:
        where = " on GPUs of their own (ray, not counted)" if w.engine.separate else ""
        parts.append(f"{w.engine.count} vLLM engine(s){where}, tensor_parallel_size {lay.engine_tp}, "
                     f"gpu_memory_utilization {lay.engine_utilization:.2f}, {w.engine.dtype}, "
                     f"max_model_len {w.engine.max_model_len}")  # fmt: skip
    if w.dpo_reference_pass:
        parts.append(f"reference_batch_size {lay.reference_batch_size}")
    return ", ".join(parts)


def format_table(plan: Plan) -> list[str]:
    """Rows of figures (GB) by device group: what is held, each phase's transient and parts, the peak."""
    groups = plan.groups
    lines = [_row("GB per GPU", [g.label for g in groups])]
    held = list(dict.fromkeys(r.label for g in groups for r in g.held))
    lines.append("held throughout")
    for label in held:
        cells = [next((_gb(r.bytes) for r in g.held if r.label == label), "–") for g in groups]
        lines.append(_row(f"  {label}", cells))
    names = list(dict.fromkeys(p.name for g in groups for p in g.phases))
    for name in names:
        phases = [next((p for p in g.phases if p.name == name), None) for g in groups]
        cells = [
            "+" + _gb(p.transient) + ("*" if p is g.peak_phase else " ") if p else "– "
            for p, g in zip(phases, groups, strict=True)
        ]
        lines.append(_row(f"phase: {name}", cells))
        present = next(p for p in phases if p is not None)
        if present.absent:
            lines.append(f"    (before the first step: no {' and no '.join(present.absent)} yet)")
        for part in present.parts:
            if not any(r.bytes for p in phases if p for r in p.parts if r.label == part.label):
                continue
            cells = [
                next((_gb(r.bytes) for r in p.parts if r.label == part.label), "–") if p else "–"
                for p in phases
            ]
            lines.append(_row(f"    {part.label}", cells))
    lines.append(_row("peak (held + the starred phase)", [_gb(g.total) for g in groups]))
    lines.append(_row("GPU memory", [_gb(plan.gpu_memory)] * len(groups)))
    lines.append(_row("headroom", [_gb(plan.gpu_memory - g.total) for g in groups]))
    fits = ["fits" if g.total <= plan.gpu_memory and not g.problems else "DOES NOT FIT" for g in groups]
    lines.append(_row("verdict", fits))
    return lines


def format_plan(plan: Plan, title: str) -> str:
    w, lay = plan.workload, plan.layout
    lines = [f"{title}: {w.stage} on {lay.describe()}, {plan.gpu_memory / GB:g} GB each",
             *describe_models(w), f"layout: {describe_layout(plan)}", "", *format_table(plan), ""]  # fmt: skip
    tokens = f"{lay.micro_batch_size} × {w.seq_len} tokens" + (
        " × 2 sides" if w.sequences_per_example == 2 else ""
    )
    for role, (without, with_ckpt) in plan.activations.items():
        counted = "with" if lay.activation_checkpointing else "without"
        lines.append(f"activations of the {role} per micro-batch ({tokens}): {_gb(without)} GB without checkpointing, "
                     f"{_gb(with_ckpt)} GB with (counted: {counted})")  # fmt: skip
    if plan.host:
        lines.append(f"CPU memory for offloaded states: {_gb(plan.host)} GB per process, "
                     f"{_gb(plan.host * lay.gpus_per_node)} GB per node")  # fmt: skip
    lines.append(f"verdict: {verdict(plan)}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr plan",
        description=__doc__,
        epilog="Figures in GB of 10⁹ bytes; docs/plan.md explains every row. Overrides (--train.sharding=fsdp2, "
        "--policy=PATH, ...) change the config as they would for its trainer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config", type=Path, required=True, help="a stage's YAML (configs/<stage>/*.yaml)")
    parser.add_argument(
        "--gpus", type=int, required=True, help="GPUs in all: the number of training processes"
    )
    parser.add_argument("--gpu-memory", type=float, required=True, help="memory of one GPU, GB (10⁹ bytes)")
    parser.add_argument("--nodes", type=int, help="machines the GPUs are spread over (default: nodes of 8)")
    parser.add_argument(
        "--stage", choices=STAGES, help="the config's stage when its keys and folder do not say"
    )
    parser.add_argument("--reserve", type=float, default=RESERVE / GB,
                        help="GB set aside on every GPU for the CUDA context, NCCL and fragmentation (default %(default)g)")  # fmt: skip
    args, overrides = parser.parse_known_args(argv)
    if args.gpu_memory <= 0 or args.reserve < 0:
        raise ConfigError(
            f"--gpu-memory must be > 0 and --reserve ≥ 0, got {args.gpu_memory:g} and {args.reserve:g}"
        )
    stage, cfg = load_stage_config(args.config, overrides, args.stage)
    memory, reserve = int(args.gpu_memory * GB), int(args.reserve * GB)
    w = read_workload(cfg, stage)
    layout = read_layout(cfg, stage, args.gpus, args.nodes)
    plan = build_plan(w, layout, memory, reserve)
    print(format_plan(plan, f"rlvr plan {args.config}"))
    if plan.fits:
        return 0
    best = smallest_fitting(w, layout, memory, reserve)
    if best is None:
        print("\nno layout up to 512 GPUs fits")
        return 0
    print(f"\nsmallest layout that fits: {describe_change(best, layout)}\n")
    print(format_plan(best, "that layout"))
    return 0
