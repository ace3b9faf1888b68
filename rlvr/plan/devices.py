"""A workload on a layout, device by device: what each GPU holds throughout, what each phase of a step
adds on top, and whether the largest sum fits.

Devices that hold the same things form one group. Outside PPO every process holds the same. PPO's
rank 0 also owns the rollout: under zero3/fsdp2 with the transformers engine a whole fp32 copy of
the policy it samples from (vLLM engines take the weights streamed from the shards instead, a tensor
at a time: `PPOTrainer.sync_engine`), the reward model when the RM term needs it, and the vLLM
engine, which spreads over GPUs 0…TP−1 of rank 0's node (its own worker processes) and reserves
`gpu_memory_utilization` of each of them beside the training ranks already there
(`rlvr.algos.ppo.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlvr.plan.memory import (
    Activations,
    EngineBytes,
    Numerics,
    State,
    activations,
    forward_only,
    frozen_state,
    hf_generate,
    numerics,
    trained_state,
    vllm_engine,
)
from rlvr.plan.workload import Layout, Model, Workload
from rlvr.train.config import SHARDED


@dataclass(frozen=True)
class Row:
    label: str
    bytes: int


@dataclass(frozen=True)
class Phase:
    """A stretch of a step whose transient memory adds to what is held."""

    name: str
    parts: tuple[Row, ...]
    absent: tuple[str, ...] = ()
    """Labels of held rows that do not exist yet during this phase (DPO's reference pass runs before
    the first step: no gradients, no optimizer states)."""

    @property
    def transient(self) -> int:
        return sum(p.bytes for p in self.parts)


@dataclass
class DeviceGroup:
    label: str
    count: int
    held: list[Row]
    phases: list[Phase]
    problems: list[str] = field(default_factory=list)
    engine: bool = False
    """The vLLM engine reserves its share of these GPUs."""

    def phase_total(self, phase: Phase) -> int:
        return sum(r.bytes for r in self.held if r.label not in phase.absent) + phase.transient

    @property
    def peak_phase(self) -> Phase | None:
        return max(self.phases, key=self.phase_total, default=None)

    @property
    def total(self) -> int:
        phase = self.peak_phase
        return self.phase_total(phase) if phase is not None else sum(r.bytes for r in self.held)


@dataclass
class Plan:
    workload: Workload
    layout: Layout
    gpu_memory: int
    groups: list[DeviceGroup]
    problems: list[str]
    """What makes the layout impossible whatever the memory (a batch that does not split, ...)."""
    activations: dict[str, tuple[int, int]]
    """Per trained model: one micro-batch's activations `(without, with)` checkpointing."""
    host: int
    """Bytes each process keeps in CPU memory (offloaded states)."""
    engine: EngineBytes | None = None

    @property
    def kv_tokens(self) -> int:
        return self.engine.kv_tokens if self.engine is not None else 0

    @property
    def fits(self) -> bool:
        return not self.problems and all(g.total <= self.gpu_memory and not g.problems for g in self.groups)

    @property
    def worst(self) -> DeviceGroup:
        return max(self.groups, key=lambda g: g.total)


RESERVE_LABEL = "reserve (CUDA context, NCCL, allocator)"


def build_plan(w: Workload, layout: Layout, gpu_memory: int, reserve: int) -> Plan:
    """Every device group's rows and phases for `w` on `layout` (`reserve`: bytes set aside on every
    GPU for what is not computed)."""
    num = numerics(layout.sharding, w.bf16)
    n, mb = layout.gpus, layout.micro_batch_size
    tokens = mb * w.sequences_per_example * w.seq_len
    states = {m.role: trained_state(m.shape, m.head, layout.sharding, n, layout.offload_optimizer, num,
                                    w.deepspeed, m.lora) for m in w.trained}  # fmt: skip
    ppo = w.stage == "ppo"
    held: list[Row] = []
    for m in w.trained:
        held += _state_rows(states[m.role], f"{m.role}: " if ppo else "", layout)
    reference = None
    if w.reference is not None:
        reference = frozen_state(w.reference.shape, "lm", layout.sharding, n, num, w.deepspeed)
        held.append(Row("reference: weights", reference.weights))

    loss_tokens = mb * w.sequences_per_example * (w.loss_len or w.seq_len)
    acts = {m.role: activations(m.shape, m.head, tokens, w.seq_len, num, w.attention, layout.activation_checkpointing,
                                loss_tokens, w.loss_in_autocast) for m in w.trained}  # fmt: skip
    shown = f"{mb} × {w.seq_len} tokens" + (" × 2 sides" if w.sequences_per_example == 2 else "")
    phases: list[Phase] = []
    if ppo:
        phases += _ppo_phases(w, states, reference, acts, tokens, loss_tokens, num, shown)
    else:
        (m,) = w.trained
        st = states[m.role]
        phases.append(update_phase("forward + backward", acts[m.role], st, shown))
        if w.dpo_reference_pass:
            rbs = layout.reference_batch_size
            forward = forward_only(m.shape, m.head, 2 * rbs * w.seq_len, num)
            phases.append(Phase(f"reference log-probs, {rbs} pairs a forward",
                                (Row("no-grad forward", forward), Row("sharding buffers", st.no_grad)),
                                absent=("gradients", "optimizer states")))  # fmt: skip
        if st.gather_all:
            phases.append(Phase("whole-model gather (checkpoint)", (Row("gathered weights", st.gather_all),)))

    engine = None
    if w.engine is not None:
        policy = w.trained[0].shape
        engine = vllm_engine(
            policy, w.engine.dtype_bytes, layout.engine_tp, layout.engine_utilization, gpu_memory
        )
    groups = _groups(w, layout, held, phases, engine, num)
    if reserve:
        for group in groups:
            group.held.append(Row(RESERVE_LABEL, reserve))
    both = {}
    for m in w.trained:
        without, with_ckpt = (
            activations(
                m.shape, m.head, tokens, w.seq_len, num, w.attention, ckpt, loss_tokens, w.loss_in_autocast
            ).peak_without_casts
            for ckpt in (False, True)
        )
        both[m.role] = (without, with_ckpt)
    return Plan(
        w,
        layout,
        gpu_memory,
        groups,
        layout_problems(w, layout),
        both,
        sum(s.host for s in states.values()),
        engine,
    )


def update_phase(name: str, acts: Activations, st: State, shown: str, *extra: Row) -> Phase:
    """A model's forward and backward at the larger of its two moments: the loss, or the last layers'
    backward (`Activations`), each with autocast's weight copies and the sharding buffers live then."""
    if acts.at_loss + st.at_loss >= acts.in_backward + st.in_backward:
        moment, total, casts, buffers = "at the loss", acts.at_loss, acts.casts_at_loss, st.at_loss
    else:
        moment, total, casts, buffers = (
            "last layers' backward",
            acts.in_backward,
            acts.casts_in_backward,
            st.in_backward,
        )
    parts = (Row(f"activations ({shown})", total - casts), Row("autocast's bf16 weight copies", casts),
             Row("sharding buffers", buffers), *extra)  # fmt: skip
    return Phase(f"{name}, {moment}", parts)


def _state_rows(st: State, prefix: str, layout: Layout) -> list[Row]:
    where = " (in CPU memory)" if st.host else ""
    rows = [Row(prefix + "weights" + (where if not st.weights else ""), st.weights),
            Row(prefix + "gradients" + (where if not st.grads else ""), st.grads),
            Row(prefix + "optimizer states" + (where if not st.optimizer else ""), st.optimizer)]  # fmt: skip
    if st.buckets:
        rows.append(
            Row(
                prefix + ("DDP gradient buckets" if layout.sharding == "ddp" else "ZeRO-3 reduce bucket"),
                st.buckets,
            )
        )
    return rows


def _ppo_phases(
    w: Workload, states: dict[str, State], reference: State | None, acts: dict[str, Activations], tokens: int,
    loss_tokens: int, num: Numerics, shown: str,
) -> list[Phase]:  # fmt: skip
    """Scoring forwards (policy, reference, value, one after another, no gradients), the policy's
    update, the value model's update (the policy's fp32 response logits still held for the entropy),
    the gathers."""
    models = {m.role: m for m in w.trained}
    policy = models["policy"]
    forwards = [(f"{m.role} forward", forward_only(m.shape, m.head, tokens, num, loss_tokens) + states[m.role].no_grad)
                for m in w.trained]  # fmt: skip
    if reference is not None:
        no_grad = forward_only(policy.shape, "lm", tokens, num, loss_tokens) + reference.no_grad
        forwards.append(("reference forward", no_grad))
    label, scoring = max(forwards, key=lambda f: f[1])
    phases = [
        Phase("scoring forwards (no grad)", (Row(f"{label} ({shown}, with gathers)", scoring),)),
        update_phase("policy update", acts["policy"], states["policy"], shown),
    ]
    if "value" in models:
        logits = Row("policy logits kept for the entropy", 4 * loss_tokens * policy.shape.vocab)
        phases.append(update_phase("value update", acts["value"], states["value"], shown, logits))
    gather = max(s.gather_all for s in states.values())
    if gather:
        phases.append(Phase("whole-model gather (checkpoint)", (Row("gathered weights", gather),)))
    return phases


def _groups(
    w: Workload,
    layout: Layout,
    held: list[Row],
    phases: list[Phase],
    engine: EngineBytes | None,
    num: Numerics,
) -> list[DeviceGroup]:
    n = layout.gpus
    if w.stage != "ppo":
        return [DeviceGroup("every GPU" if n > 1 else "GPU 0", n, held, phases)]
    policy: Model = w.trained[0]
    rank0 = list(held)
    if layout.sharding in SHARDED and w.hf_rollout is not None:  # vLLM engines need no copy
        rank0.append(Row("rollout copy of the policy (fp32, whole)", 4 * policy.params))
    if w.scorer is not None:
        rank0.append(Row("reward model for scoring (fp32, whole)", 4 * w.scorer.params))
    rank0_phases = list(phases)
    if w.hf_rollout is not None:
        sequences, new = w.hf_rollout
        generate = hf_generate(policy.shape, sequences, w.seq_len - new, new, num)
        rank0_phases.append(
            Phase("sampling (transformers generate, whole batch)", (Row("KV cache and scores", generate),))
        )
    if w.engine is None or engine is None or w.engine.separate:  # Ray places engines on GPUs of their own
        groups = [DeviceGroup("GPU 0 (rank 0, rollout)", 1, rank0, rank0_phases)]
        if n > 1:
            groups.append(DeviceGroup(f"GPUs 1–{n - 1}" if n > 2 else "GPU 1", n - 1, held, phases))
        return groups
    tp = layout.engine_tp
    span = min(n, tp * w.engine.count)  # engine e on GPUs e×TP … of rank 0's node, beside training ranks
    rows = [Row(f"vLLM weights ({w.engine.dtype}, TP {tp})", engine.weights),
            Row(f"vLLM KV cache ({engine.kv_tokens:,} tokens)", engine.kv_cache)]  # fmt: skip
    problems = _engine_problems(engine, w.engine.max_model_len, layout.engine_utilization)
    groups = [DeviceGroup("GPU 0 (rank 0, vLLM)", 1, rank0 + rows, rank0_phases, list(problems), engine=True)]
    if span > 1:
        label = f"GPUs 1–{span - 1} (vLLM)" if span > 2 else "GPU 1 (vLLM)"
        groups.append(DeviceGroup(label, span - 1, held + rows, phases, list(problems), engine=True))
    if n > span:
        groups.append(
            DeviceGroup(f"GPUs {span}–{n - 1}" if n - span > 1 else f"GPU {span}", n - span, held, phases)
        )
    return groups


def _engine_problems(engine: EngineBytes, max_model_len: int, utilization: float) -> list[str]:
    if engine.budget < engine.weights:
        return [f"vLLM's share ({utilization:.2f} of the GPU) is smaller than its weights"]
    if engine.kv_tokens < max_model_len:
        return [
            f"vLLM's KV cache holds {engine.kv_tokens:,} tokens, fewer than max_model_len {max_model_len:,}"
        ]
    return []


def layout_problems(w: Workload, layout: Layout) -> list[str]:
    """Why `layout` cannot run `w` whatever the memory (the trainers' own checks)."""
    n, s = layout.gpus, layout.sharding
    problems = []
    if s == "none" and n > 1:
        problems.append("train.sharding none runs one process")
    if layout.offload_optimizer and s in ("none", "ddp"):
        problems.append(f"train.offload_optimizer needs zero2, zero3 or fsdp2, not {s}")
    if any(m.lora for m in w.trained) and s in SHARDED:
        problems.append(f"lora trains with sharding ddp or zero2, not {s}")
    if w.stage == "ppo":
        if n > 1 and w.batch % (w.batch_split * n):
            problems.append(
                f"{w.batch} episodes a step do not split into loss.minibatches {w.batch_split} × {n} processes"
            )
    elif w.batch % (layout.micro_batch_size * n):
        problems.append(
            f"a batch of {w.batch} is not a multiple of micro_batch_size {layout.micro_batch_size} × {n} processes"
        )
    if w.engine is not None:
        tp, count = layout.engine_tp, w.engine.count
        if not w.engine.separate and tp * count > min(n, layout.gpus_per_node):
            problems.append(
                f"{count} vLLM engine(s) × tensor_parallel_size {tp} need {tp * count} GPUs on rank 0's node, "
                "beside training ranks (or rollout.vllm.placement ray on GPUs of their own)"
            )
        if w.trained[0].shape.heads % tp:
            problems.append(
                f"vLLM tensor_parallel_size {tp} does not divide {w.trained[0].shape.heads} attention heads"
            )
    return problems
