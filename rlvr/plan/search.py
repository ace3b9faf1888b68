"""The smallest layout that fits, and the start-up check every trainer runs on GPUs.

Smallest means: fewest GPUs first (the asked count, then whole nodes of 8, up to 512 GPUs); among
the layouts that fit on that count, the one that changes the fewest costly knobs, in this order of
cost: optimizer offload (the step runs on the CPU), a smaller micro-batch, activation checkpointing
(≈1 extra forward), another sharding mode (fsdp2 or zero3: more communication), DPO's reference
batch; then, for PPO, the vLLM engine whose KV cache holds the most tokens (its tensor parallelism
and memory share cost the training nothing); then the most headroom.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

from rlvr.config import ConfigError
from rlvr.plan.devices import Plan, build_plan
from rlvr.plan.memory import GB
from rlvr.plan.workload import NODE, Layout, Workload, read_layout, read_workload, stage_of

MAX_GPUS = 512
RESERVE = 2 * GB
"""Set aside on every GPU for what the planner does not compute: the CUDA context, NCCL's buffers and
the caching allocator's fragmentation. An allowance, not a measurement."""
UTILIZATION_STEP = 0.01


class DoesNotFit(ConfigError):
    """The plan says a config's layout does not fit its GPUs (`train.skip_plan_check` overrides)."""

    label = ""


def _unique(*values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def candidates(w: Workload, base: Layout) -> Iterator[list[Layout]]:
    """For each GPU count the search tries, every layout it may pick there."""
    counts = [base.gpus] + [k for k in range(NODE, MAX_GPUS + 1, NODE) if k > base.gpus]
    for gpus in counts:
        per_node = base.gpus_per_node if gpus == base.gpus else NODE
        engines = (
            _unique(base.engine_tp, *(t for t in (1, 2, 4, 8) if t <= per_node))
            if w.engine
            else [base.engine_tp]
        )
        layouts = []
        for sharding, ckpt, mb, offload, tp in itertools.product(
            _unique(base.sharding, "fsdp2", "zero3"), _unique(base.activation_checkpointing, True),
            _unique(base.micro_batch_size, 1), _unique(base.offload_optimizer, True), engines,
        ):  # fmt: skip
            for rbs in _unique(base.reference_batch_size, min(mb, base.reference_batch_size)):
                layouts.append(dataclasses.replace(
                    base, gpus=gpus, gpus_per_node=per_node, sharding=sharding, activation_checkpointing=ckpt,
                    micro_batch_size=mb, offload_optimizer=offload, engine_tp=tp, reference_batch_size=rbs))  # fmt: skip
        yield layouts


def _cost(plan: Plan, base: Layout) -> tuple[Any, ...]:
    lay = plan.layout
    changed = [getattr(lay, k) != getattr(base, k) for k in
               ("offload_optimizer", "micro_batch_size", "activation_checkpointing", "sharding", "reference_batch_size")]  # fmt: skip
    return (*changed, -plan.kv_tokens, plan.worst.total)


def with_engine_share(w: Workload, layout: Layout, gpu_memory: int, reserve: int) -> Plan:
    """The plan of `layout`, its vLLM share lowered (in steps of 0.01) to what the engine's GPUs have
    left beside training when the configured share does not fit."""
    plan = build_plan(w, layout, gpu_memory, reserve)
    if w.engine is None or plan.fits:
        return plan
    engine_groups = [g for g in plan.groups if g.engine]
    budget = int(layout.engine_utilization * gpu_memory)
    room = min(gpu_memory - (g.total - budget) for g in engine_groups)
    share = int(room / gpu_memory / UTILIZATION_STEP) * UTILIZATION_STEP
    if share <= 0 or share >= layout.engine_utilization:
        return plan
    return build_plan(w, dataclasses.replace(layout, engine_utilization=round(share, 2)), gpu_memory, reserve)


def smallest_fitting(w: Workload, base: Layout, gpu_memory: int, reserve: int = RESERVE) -> Plan | None:
    """The plan of the smallest layout that fits (module docstring), or None up to `MAX_GPUS`."""
    for layouts in candidates(w, base):
        fitting = [p for p in (with_engine_share(w, lay, gpu_memory, reserve) for lay in layouts) if p.fits]
        if fitting:
            return min(fitting, key=lambda p: _cost(p, base))
    return None


def check_fits(
    cfg: Any,
    world: int,
    gpu_memory_bytes: int,
    *,
    nodes: int | None = None,
    bf16: bool = True,
    reserve_bytes: int = RESERVE,
) -> None:
    """Raise `DoesNotFit` when the plan of `cfg` (a stage's loaded config: PretrainConfig, SFTConfig,
    DPOConfig, RewardModelConfig or PPOConfig) on `world` GPUs of `gpu_memory_bytes` each does not
    fit; the message gives the largest device's need and the smallest layout that fits. Returns at
    once when `cfg.train.skip_plan_check` is set. `nodes`: machines the GPUs are on (default: nodes
    of 8); `bf16`: what `precision: auto` resolves to on these GPUs."""
    if cfg.train.skip_plan_check:
        return
    stage = stage_of(cfg)
    w = read_workload(cfg, stage, bf16_auto=bf16)
    layout = read_layout(cfg, stage, world, nodes)
    plan = build_plan(w, layout, gpu_memory_bytes, reserve_bytes)
    if plan.fits:
        return
    raise DoesNotFit(f"{stage}: {verdict(plan)}; {suggestion(w, layout, gpu_memory_bytes, reserve_bytes)}. "
                     "`rlvr plan` prints the figures; --train.skip_plan_check=true starts anyway")  # fmt: skip


def verdict(plan: Plan) -> str:
    """One line: fits, with the headroom, or why not."""
    worst, memory = plan.worst, plan.gpu_memory
    if plan.problems:
        return "cannot run: " + "; ".join(plan.problems)
    problems = [p for g in plan.groups for p in g.problems]
    if problems:
        return "does not fit: " + "; ".join(dict.fromkeys(problems))
    need = f"{worst.label} needs {worst.total / GB:.1f} GB of {memory / GB:.1f} GB"
    if plan.fits:
        return f"fits: {need} ({(memory - worst.total) / GB:.1f} GB headroom)"
    phase = worst.peak_phase
    return f"does not fit: {need}" + (f" ({phase.name})" if phase is not None else "")


def suggestion(w: Workload, layout: Layout, gpu_memory: int, reserve: int) -> str:
    best = smallest_fitting(w, layout, gpu_memory, reserve)
    if best is None:
        return f"no layout up to {MAX_GPUS} GPUs fits"
    return f"smallest layout that fits: {describe_change(best, layout)}"


def describe_change(plan: Plan, base: Layout) -> str:
    lay = plan.layout
    overrides = " ".join(lay.overrides(base)) or "(no overrides)"
    return f"{lay.describe()}, {lay.launch()} ... {overrides}"
