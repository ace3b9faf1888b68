"""Bytes per process of one model under one layout: pure functions of shapes, modes and sizes.

Every figure counts tensors the way rlvr's engines (`rlvr.train.engines`) and transformers' OLMo 2
modules allocate them; docs/plan.md derives each one.

Weights, gradients, optimizer states (fp32 master weights, AdamW's two fp32 moments):

| sharding | weights | gradients | optimizer | buffers |
|---|---|---|---|---|
| none, ddp | 4P | 4P | 8P | ddp on N>1: DDP's gradient buckets, 4P |
| zero2 | 4P | 4P/N | 12P/N (moments + DeepSpeed's fp32 master partition) | reduce bucket, 4·reduce_bucket_size |
| zero3 | 4P/N | 4P/N | 12P/N | reduce bucket; gathered fp32 parameters up to max_live + prefetch |
| fsdp2 | 4P/N | 4P/N | 8P/N | root group gathered (+ the head's unsharded gradient), two layers gathered, one layer's gradients and their reduce-scatter input |

`offload_optimizer` moves the optimizer states (zero2/zero3: and the gradient partition; fsdp2:
parameters and gradients too) to CPU memory.

Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models" (per layer 34·s·b·h + 5·a·s²·b bytes in half precision), recounted for an OLMo 2 layer as it
runs here: no dropout, SwiGLU of width i instead of a 4h GeLU MLP, QK-norm, norms after each
sub-layer, RMSNorm computed in fp32 (it keeps its fp32 input and normalised output: 8 bytes an
element), bf16 autocast over fp32 weights (every projection keeps its own bf16 copy of a fp32
input), and SDPA / flash attention, which keeps its output and a fp32 log-sum-exp per head instead
of the s² scores (eager attention keeps the fp32 probabilities and their compute-dtype copy). Under
bf16 autocast over fp32 weights, the bf16 copies autocast makes of the matrix weights count too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlvr.config import ConfigError
from rlvr.plan.shapes import Head, ModelShape
from rlvr.train.config import Sharding

GB = 10**9
"""Figures are printed and `--gpu-memory` is read in GB of 10⁹ bytes."""
FP32 = 4
Attention = Literal["sdpa", "eager"]


@dataclass(frozen=True)
class Numerics:
    """Element sizes of one layout."""

    compute: int
    """Bytes of an activation: 2 under bf16 autocast, 4 in fp32."""
    gathered: int
    """Bytes of a parameter as the forward uses it: FSDP2 gathers in bf16 under bf16 (2), every other
    layout computes from fp32 weights (4). It is also the residual stream's, which starts as the
    embedding's output."""


def numerics(sharding: Sharding, bf16: bool) -> Numerics:
    return Numerics(compute=2 if bf16 else FP32, gathered=2 if bf16 and sharding == "fsdp2" else FP32)


@dataclass(frozen=True)
class DeepSpeedSizes:
    """The DeepSpeed settings that size its buffers (elements): its defaults, or the values of the
    `train.deepspeed` JSON."""

    reduce_bucket: int = 500_000_000
    max_live: int = 1_000_000_000
    prefetch: int = 50_000_000

    @classmethod
    def from_json(cls, path: str | None) -> DeepSpeedSizes:
        if path is None:
            return cls()
        try:
            zero = json.loads(Path(path).read_text()).get("zero_optimization", {})
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"train.deepspeed: cannot read {path}: {err}") from None
        keys = {"reduce_bucket": ("reduce_bucket_size",), "max_live": ("stage3_max_live_parameters",),
                "prefetch": ("stage3_prefetch_bucket_size", "prefetch_bucket_size")}  # fmt: skip
        found = {}
        for field_name, names in keys.items():
            for name in names:
                if isinstance(zero.get(name), int | float):
                    found[field_name] = int(zero[name])
        return cls(**found)


# ----------------------------------------------------------------------------- activations


def layer_activations(shape: ModelShape, tokens: int, seq: int, num: Numerics, attention: Attention) -> int:
    """Bytes one decoder layer keeps for its backward, for `tokens` = micro-batch × `seq` positions.

    Per position (h hidden, kv key/value width, i SwiGLU width, a heads, c compute bytes, r residual
    bytes): the projections' inputs (r once if already in the compute dtype, else a c copy each: 3 for
    q/k/v, 2 for gate/up), QK-norm on q and k (8h + 8kv), v (c·kv), q and k after RoPE (c·h + c·kv),
    the attention output (c·h; SDPA's flash and memory-efficient kernels write it in the layout
    o_proj reads, so it is one tensor) with a fp32 log-sum-exp per head (4a) — eager attention
    instead keeps the probabilities, fp32 and their compute-dtype copy (a·s·(4 + c)) —, the two
    sub-layer norms (16h) and SwiGLU's gate, up, silu and product (4c·i)."""
    h, kv, i, a = shape.hidden, shape.kv_dim, shape.intermediate, shape.heads
    c, r = num.compute, num.gathered
    attention_inputs = r if r == c else 3 * c
    mlp_inputs = r if r == c else 2 * c
    per_position = (
        attention_inputs * h
        + 8 * h + 8 * kv  # QK-norm: fp32 input and normalised output
        + c * kv  # v
        + c * h + c * kv  # q and k after RoPE
        + c * h  # the attention output, o_proj's input
        + 8 * h  # post-attention norm
        + mlp_inputs * h
        + 4 * c * i  # gate, up, silu(gate), their product
        + 8 * h  # post-feed-forward norm
    )  # fmt: skip
    if attention == "sdpa":
        per_position += FP32 * a
    else:
        per_position += a * seq * (FP32 + (c if c != FP32 else 0))
    return tokens * per_position


def head_activations(shape: ModelShape, tokens: int, num: Numerics) -> int:
    """The final norm (8h) and the head's input (c·h), per position."""
    return tokens * (8 + num.compute) * shape.hidden


def _logits_forward(shape: ModelShape, tokens: int, loss_tokens: int, num: Numerics) -> int:
    """The log-probabilities' forward: the head's logits (c, every position) while the positions the
    loss reads are copied to fp32 (under bf16; fp32 logits are read in place) and the log-sum-exp's
    fp32 temporary is live (4)."""
    c = num.compute
    return shape.vocab * (c * tokens + (2 * FP32 if c != FP32 else FP32) * loss_tokens)


def loss_peak(shape: ModelShape, tokens: int, loss_tokens: int, num: Numerics) -> int:
    """The largest moment of the loss over the logits (`loss_tokens` of the `tokens` positions feed
    it): its forward (`_logits_forward`), or its backward — the fp32 logits the log-sum-exp keeps and
    two fp32 temporaries of its gradient (12 bytes an element)."""
    return max(_logits_forward(shape, tokens, loss_tokens, num), 3 * FP32 * shape.vocab * loss_tokens)


def weight_casts(shape: ModelShape, head: Head, num: Numerics) -> tuple[int, int]:
    """Bytes of the bf16 copies autocast makes of fp32 matrix weights `(one layer, the head)`: it
    caches each cast until the autocast region ends, and a matmul keeps its weight's for the
    backward. None under fp32, nor when FSDP2 already gathers in bf16."""
    if num.compute == FP32 or num.gathered == num.compute:
        return 0, 0
    h, kv = shape.hidden, shape.kv_dim
    norms = 2 * h + h + kv
    out = shape.vocab * h if head == "lm" else h
    return num.compute * (shape.layer_params - norms), num.compute * out


@dataclass(frozen=True)
class Activations:
    """One micro-batch's activations in a forward and backward, at its two largest moments: the
    loss (every layer's saved tensors, the head's, the loss over the logits) and the backward of the
    last layers (the head's tensors and the logits gone; checkpointed, one layer recomputed whole)."""

    layers: int
    """Every layer's saved tensors (checkpointed: each layer's input, r bytes a position)."""
    head: int
    loss: int
    recompute: int
    casts_at_loss: int = 0
    """Autocast's bf16 weight copies alive at the loss (`weight_casts`)."""
    casts_in_backward: int = 0

    @property
    def at_loss(self) -> int:
        return self.layers + self.head + self.loss + self.casts_at_loss

    @property
    def in_backward(self) -> int:
        return self.layers + self.recompute + self.casts_in_backward

    @property
    def peak(self) -> int:
        return max(self.at_loss, self.in_backward)

    @property
    def peak_without_casts(self) -> int:
        """The micro-batch's own tensors at their largest moment."""
        return max(self.layers + self.head + self.loss, self.layers + self.recompute)


def activations(
    shape: ModelShape,
    head: Head,
    tokens: int,
    seq: int,
    num: Numerics,
    attention: Attention,
    checkpointing: bool,
    loss_tokens: int | None = None,
    loss_in_autocast: bool = True,
) -> Activations:
    """One micro-batch's activations (`Activations`). `loss_tokens`: the positions whose logits the
    loss reads (default: all). Autocast's weight copies: without checkpointing every layer's is kept
    for the backward; with it, they live until the autocast region ends — through the loss when the
    trainer computes the loss inside it (`loss_in_autocast`: SFT, DPO, RM; pretraining and PPO leave
    it first) — and the backward recasts one layer at a time."""
    layer = layer_activations(shape, tokens, seq, num, attention)
    per_layer = tokens * num.gathered * shape.hidden if checkpointing else layer
    layer_cast, head_cast = weight_casts(shape, head, num)
    every_cast = shape.layers * layer_cast + head_cast
    if checkpointing:
        casts = (every_cast if loss_in_autocast else head_cast, layer_cast + head_cast)
    else:
        casts = (every_cast, every_cast)
    return Activations(
        layers=shape.layers * per_layer,
        head=head_activations(shape, tokens, num),
        loss=loss_peak(shape, tokens, tokens if loss_tokens is None else loss_tokens, num)
        if head == "lm"
        else 0,
        recompute=layer if checkpointing else 0,
        casts_at_loss=casts[0],
        casts_in_backward=casts[1],
    )


def forward_only(
    shape: ModelShape, head: Head, tokens: int, num: Numerics, loss_tokens: int | None = None
) -> int:
    """The transient of a forward without gradients: the logits and their log-probabilities
    (`_logits_forward`, and the log-sum-exp's temporary beside its fp32 input), or, for a score head,
    a layer's SwiGLU working set (3c·i a position)."""
    if head == "lm":
        read = tokens if loss_tokens is None else loss_tokens
        return max(_logits_forward(shape, tokens, read, num), 2 * FP32 * shape.vocab * read)
    return tokens * 3 * num.compute * shape.intermediate


# ----------------------------------------------------------------------------- model states


@dataclass(frozen=True)
class State:
    """One model's bytes on one device, by part."""

    weights: int
    grads: int = 0
    optimizer: int = 0
    buckets: int = 0
    """Held from start-up: DDP's gradient buckets, ZeRO-3's reduce bucket."""
    at_loss: int = 0
    """Working buffers at the end of the forward: parameters still gathered (FSDP2's root group,
    ZeRO-3's live parameters)."""
    in_backward: int = 0
    """Working buffers while the last layers' backward runs: gathered parameters and unsharded
    gradients (FSDP2, ZeRO-3), ZeRO-2's reduce bucket."""
    no_grad: int = 0
    """Working buffers of a forward without gradients: gathered parameters."""
    gather_all: int = 0
    """Extra while the whole model is gathered for a checkpoint: ZeRO-3 gathers every parameter on
    every device, FSDP2 one parameter at a time into CPU memory. (PPO's weight sync gathers one
    parameter at a time under both.)"""
    host: int = 0
    """Offloaded to CPU memory."""


def fsdp2_buffers(shape: ModelShape, head: Head, g: int) -> tuple[int, int, int]:
    """FSDP2's working bytes `(at the loss, in the backward, in a no-grad forward)`, g bytes a
    gathered parameter. The root group (embedding, final norm, head) stays gathered from the forward
    to the end of the backward; in the backward the head's unsharded gradient waits there too (the
    embedding's comes last, when the activations are gone), two layers are gathered at once (the
    running one and the prefetched next), and a layer's unsharded gradients (g) wait beside the fp32
    reduce-scatter input they are copied into (4). Layers reshard after their forward."""
    root, layer = shape.root_params(head), shape.layer_params
    head_grad = shape.hidden * (shape.vocab if head == "lm" and not shape.tied else 1)
    backward = g * root + g * head_grad + 2 * g * layer + (g + FP32) * layer
    return g * root, backward, g * root + 2 * g * layer


def trained_state(
    shape: ModelShape,
    head: Head,
    sharding: Sharding,
    world: int,
    offload: bool,
    num: Numerics,
    ds: DeepSpeedSizes,
    lora: int = 0,
) -> State:
    """A trained model's bytes per process (the table in the module docstring). `lora`: the adapter
    parameters when only they train (the base weights then stay whole and frozen; lora runs with
    none, ddp or zero2). ZeRO-2 allocates its reduce bucket when a backward starts."""
    whole = shape.params(head)
    trained = lora or whole
    n = world
    if sharding in ("none", "ddp"):
        frozen = 4 * whole if lora else 0
        buckets = 4 * trained if sharding == "ddp" and n > 1 else 0
        return State(frozen + 4 * trained, 4 * trained, 8 * trained, buckets=buckets)
    if sharding == "zero2":
        grads, optimizer = 4 * trained // n, 12 * trained // n
        weights = 4 * whole + (4 * trained if lora else 0)
        if offload:
            return State(weights, in_backward=4 * ds.reduce_bucket, host=grads + optimizer)
        return State(weights, grads, optimizer, in_backward=4 * ds.reduce_bucket)
    if sharding == "zero3":
        gathered = 4 * min(whole, ds.max_live + ds.prefetch)
        grads, optimizer = 4 * whole // n, 12 * whole // n
        device = (0, 0) if offload else (grads, optimizer)
        return State(4 * whole // n, *device, buckets=4 * ds.reduce_bucket, at_loss=gathered, in_backward=gathered,
                     no_grad=gathered, gather_all=4 * whole, host=grads + optimizer if offload else 0)  # fmt: skip
    at_loss, in_backward, no_grad = fsdp2_buffers(shape, head, num.gathered)
    shards = (4 * whole // n, 4 * whole // n, 8 * whole // n)
    buffers = {
        "at_loss": at_loss,
        "in_backward": in_backward,
        "no_grad": no_grad,
        "gather_all": 4 * shape.largest_param,
    }
    if offload:
        return State(0, host=sum(shards), **buffers)
    return State(*shards, **buffers)


def frozen_state(
    shape: ModelShape, head: Head, sharding: Sharding, world: int, num: Numerics, ds: DeepSpeedSizes
) -> State:
    """A model that only runs forwards (PPO's reference), laid out like the trained ones
    (`rlvr.algos.ppo.distributed.frozen_model`): fp32, sharded under zero3 and fsdp2."""
    whole = shape.params(head)
    if sharding == "zero3":
        return State(4 * whole // world, no_grad=4 * min(whole, ds.max_live + ds.prefetch))
    if sharding == "fsdp2":
        return State(4 * whole // world, no_grad=fsdp2_buffers(shape, head, num.gathered)[2])
    return State(4 * whole)


def lora_params(shape: ModelShape, rank: int, targets: list[str]) -> int:
    """Adapter parameters: r·(in + out) for each targeted projection of every layer."""
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    sizes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
             "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # fmt: skip
    return shape.layers * sum(rank * sum(sizes[t]) for t in targets if t in sizes)


# ----------------------------------------------------------------------------- rollout engines


@dataclass(frozen=True)
class EngineBytes:
    """A vLLM engine's share of each of its GPUs."""

    budget: int
    """`gpu_memory_utilization` × the GPU's memory: what vLLM reserves, weights and KV cache."""
    weights: int
    kv_cache: int
    kv_tokens: int
    """Tokens whose keys and values fit the KV cache (vLLM needs at least `max_model_len`)."""


def vllm_engine(
    shape: ModelShape, dtype_bytes: int, tp: int, utilization: float, gpu_memory: int
) -> EngineBytes:
    """The engine's weights split over `tp` GPUs (tensor parallel: every matrix, the vocabulary too)
    and the KV cache vLLM sizes to fill the rest of its budget. vLLM's own activations and CUDA
    graphs come out of the same budget, so the KV figure is an upper bound."""
    budget = int(utilization * gpu_memory)
    weights = math.ceil(shape.params("lm") * dtype_bytes / tp)
    kv = max(0, budget - weights)
    per_token = 2 * shape.layers * max(1, shape.kv_heads // tp) * shape.head_dim * dtype_bytes
    return EngineBytes(budget, weights, kv, kv // per_token)


def hf_generate(shape: ModelShape, sequences: int, prompt: int, response: int, num: Numerics) -> int:
    """transformers `generate` over a whole rollout batch (`rollout.backend: hf`): the KV cache in the
    compute dtype, and the fp32 scores of every step kept and then stacked (twice V a token)."""
    kv = 2 * shape.layers * shape.kv_dim * num.compute * sequences * (prompt + response)
    return kv + 2 * FP32 * sequences * response * shape.vocab
