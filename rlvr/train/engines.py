"""The ways of running the optimizer over processes; every trainer talks to them through the same calls.

`build_engine` picks one by `train.sharding`:

- `none` / `ddp` (`TorchEngine`): whole fp32 weights and AdamW on every process; DDP all-reduces the
  gradients on a step's last micro-batch.
- `fsdp2` (`FSDP2Engine`): PyTorch's `fully_shard` on every decoder layer and the root. Parameters,
  gradients and AdamW states live as 1/N shards (DTensors); a layer's parameters are all-gathered
  for its forward and again for its backward, and its gradients reduce-scattered. With bf16 the
  gathers run in bf16 (`MixedPrecisionPolicy`) while the shards — the master weights — stay fp32.
- `zero2` / `zero3` (`DeepSpeedEngine`): DeepSpeed ZeRO stage 2 (optimizer states and gradients
  split) or 3 (parameters split too).

Gradient scaling contract: the trainer's micro-batch loss is `sum over its tokens / tokens in the
whole global batch · world`. DDP, FSDP2 and DeepSpeed all *average* gradients over processes, so the
`· world` turns that average back into the exact global-batch mean, however the batch is split.

Every engine gives the trainer: `module` (the model, wrapped or sharded in place), `micro_context`,
`forward`, `backward`, `step`, `save_state` / `load_state` (its optimizer state in a checkpoint) and
`full_state_dict` — a collective every process calls, after which the main process holds the whole
fp32 state dict (for a Hugging Face checkpoint) — and `weights`, what a rollout engine's weight sync
reads (`rlvr.rollout.Weights`): the whole shapes up front, then one whole tensor at a time, each
gathered from the shards as it is read (every process iterates it in step, a collective per tensor),
so a sync never holds more than a parameter or two of the whole model.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rlvr.config import ConfigError
from rlvr.rollout import Weights
from rlvr.train.config import CoreConfig
from rlvr.train.distributed import Dist

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
"""Builds the optimizer over a model's parameters, after the engine has sharded them."""


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute every decoder layer in the backward pass (transformers' non-reentrant checkpointing)."""
    found = False
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing_enable") and getattr(
            module, "supports_gradient_checkpointing", False
        ):
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            found = True
            break
    if not found:
        raise ValueError(
            f"train.activation_checkpointing: {type(model).__name__} has no transformers model to checkpoint"
        )


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a transformers model (the classes its `_no_split_modules` names)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"found no decoder layers to shard in {type(model).__name__}")
    return layers


def fully_shard_layers(model: nn.Module, param_dtype: torch.dtype | None, offload: bool = False) -> None:
    """FSDP2 in place: `fully_shard` on every decoder layer, then on the root (embeddings, final norm,
    head). `param_dtype`: the dtype parameters are gathered in (bf16 compute over fp32 shards);
    gradients reduce in fp32. `offload`: shards, gradients and optimizer states in CPU memory."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    kwargs: dict[str, Any] = {}
    if param_dtype is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    if offload:
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a tensor: a DTensor's local shard, a ZeRO-3 parameter's partition."""
    if hasattr(tensor, "to_local"):
        return tensor.to_local()
    if hasattr(tensor, "ds_tensor"):
        return tensor.ds_tensor
    return tensor


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(_local(t).numel() * _local(t).element_size() for t in tensors)


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state tensors this process holds (AdamW: two moments, a step count)."""
    return sum(
        tensor_bytes(v for v in state.values() if isinstance(v, torch.Tensor))
        for state in optimizer.state.values()
    )


def _clip_and_step(
    optimizer: torch.optim.Optimizer, params: list[nn.Parameter], grad_clip: float, lr: float
) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    max_norm = grad_clip if grad_clip > 0 else math.inf
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2: the norm over every shard
        norm = norm.full_tensor()
    return float(norm)


class _PyTorchEngine:
    """What the PyTorch engines share: AdamW over this process's parameters (whole or shards), the
    forward through `wrapped`, clipping over the global gradient norm."""

    module: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    grad_clip: float
    grad_bytes: int = 0

    def forward(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The model's `logits` (`inputs`: e.g. attention_mask, position_ids)."""
        return self.wrapped(input_ids=input_ids, use_cache=False, **inputs).logits

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, lr: float) -> float:
        """Clip, update, zero the gradients; returns the global gradient norm before clipping."""
        self.grad_bytes = tensor_bytes(p.grad for p in self.module.parameters() if p.grad is not None)
        return _clip_and_step(self.optimizer, list(self.module.parameters()), self.grad_clip, lr)

    def memory(self) -> dict[str, int]:
        """This process's bytes of parameters, gradients (as of the last step) and optimizer state."""
        return {"params": tensor_bytes(self.module.parameters()), "grads": self.grad_bytes,
                "optimizer": optimizer_bytes(self.optimizer)}  # fmt: skip


class TorchEngine(_PyTorchEngine):
    """AdamW on full fp32 weights; DDP all-reduces gradients on the last micro-batch only."""

    def __init__(self, model: nn.Module, make_optimizer: OptimizerFactory, grad_clip: float, d: Dist) -> None:
        self.module = model
        self.optimizer = make_optimizer(model)
        self.grad_clip = grad_clip
        self.world = d.world
        self.wrapped = DistributedDataParallel(model) if d.world > 1 else model

    def micro_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip DDP's gradient all-reduce on all but the last micro-batch of a step."""
        if self.world > 1 and not last:
            return self.wrapped.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        return self.module.state_dict()

    def weights(self) -> Weights:
        return Weights.of(self.module)

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)

    def save_state(self, path: Path, d: Dist) -> None:
        if d.is_main:  # replicated on every process
            torch.save(self.optimizer.state_dict(), path / "optim.pt")

    def load_state(self, path: Path) -> None:
        self.optimizer.load_state_dict(torch.load(path / "optim.pt", map_location="cpu", weights_only=True))


class FSDP2Engine(_PyTorchEngine):
    """`fully_shard` per decoder layer and on the root; AdamW over the local shards.

    Gradients reduce-scatter after every micro-batch's backward into the sharded `.grad`s, where
    they accumulate: no process ever holds a whole model's gradients. The optimizer state is saved
    and restored with torch.distributed.checkpoint, each process writing its own shards (it
    reloads into the same number of processes, or — DCP reshards — into another).
    """

    def __init__(
        self,
        model: nn.Module,
        make_optimizer: OptimizerFactory,
        grad_clip: float,
        d: Dist,
        param_dtype: torch.dtype | None,
        offload: bool,
    ) -> None:
        fully_shard_layers(model, param_dtype, offload)
        self.module = self.wrapped = model
        self.optimizer = make_optimizer(model)
        self.grad_clip = grad_clip
        self.d = d

    def micro_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # every backward reduce-scatters into the sharded gradients

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(self.module, options=options)
        return state if self.d.is_main else None

    def weights(self) -> Weights:
        from torch.distributed.tensor import DTensor

        state = self.module.state_dict()  # the local shards, as DTensors carrying the whole shapes

        def gathered() -> Iterator[tuple[str, torch.Tensor]]:
            for name, t in state.items():
                yield name, t.full_tensor() if isinstance(t, DTensor) else t

        return Weights([(name, t.shape) for name, t in state.items()], gathered())

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Whole weights (the same on every process) into the shards."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.module, state, options=StateDictOptions(full_state_dict=True, strict=True))

    def save_state(self, path: Path, d: Dist) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = get_optimizer_state_dict(self.module, self.optimizer)
        dcp.save({"optimizer": state}, checkpoint_id=str(path / "optim"))

    def load_state(self, path: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

        state = {"optimizer": get_optimizer_state_dict(self.module, self.optimizer)}
        dcp.load(state, checkpoint_id=str(path / "optim"))
        set_optimizer_state_dict(self.module, self.optimizer, state["optimizer"])


class DeepSpeedEngine:
    """The same calls on a DeepSpeed ZeRO engine (stage 2 or 3).

    The trainer marks each step's last micro-batch as the accumulation boundary
    (`set_gradient_accumulation_boundary`) and owns the loss scaling (`scale_wrt_gas=False`), so the
    numbers match the plain engine while ZeRO reduces every micro-batch's gradients into this
    process's partition. Autocast stays the trainer's too: DeepSpeed's own `bf16` section would switch to
    bf16 weights, a different recipe.
    """

    def __init__(
        self,
        model: nn.Module,
        make_optimizer: OptimizerFactory,
        train: CoreConfig,
        micro_batch_size: int,
        accumulation: int,
        grad_clip: float,
        d: Dist,
    ) -> None:
        import deepspeed

        stage = 3 if train.sharding == "zero3" else 2
        zero: dict[str, Any] = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
        if stage == 3:
            zero.update(stage3_gather_16bit_weights_on_model_save=False)
        if train.offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
        config: dict[str, Any] = {
            "zero_optimization": zero,
            "zero_allow_untested_optimizer": True,
            # torch's AdamW steps the offloaded states too (DeepSpeedCPUAdam would be faster): the
            # update stays the one every other mode computes
            "zero_force_ds_cpu_optimizer": False,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if train.deepspeed is not None:
            path = Path(train.deepspeed)
            if not path.is_file():
                raise ConfigError(f"train.deepspeed: {path} not found (a DeepSpeed JSON config)")
            extra = json.loads(path.read_text())
            for key in ("bf16", "fp16"):
                if extra.get(key, {}).get("enabled"):
                    raise ValueError(
                        f"{path}: '{key}' is enabled; rlvr autocasts itself (train.precision), remove it"
                    )
            config = _merge(config, extra)
            config["zero_optimization"]["stage"] = stage  # train.sharding decides the stage
        config.update(
            train_micro_batch_size_per_gpu=micro_batch_size,
            gradient_accumulation_steps=accumulation,
            train_batch_size=micro_batch_size * accumulation * d.world,
            gradient_clipping=grad_clip,
        )
        self.stage = stage
        self.d = d
        self.grad_bytes = 0
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=make_optimizer(model), config=config)
        self.module = self.engine.module

    def micro_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        self.engine.set_gradient_accumulation_boundary(last)
        return contextlib.nullcontext()

    def forward(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        return self.engine(input_ids=input_ids, use_cache=False, **inputs).logits

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self, lr: float) -> float:
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        self.grad_bytes = self._grad_bytes()
        self.engine.step()
        return float(self.engine.get_global_grad_norm() or 0.0)

    def _grad_bytes(self) -> int:
        """The gradient partition ZeRO keeps for this process at the step (its share of every
        parameter). ZeRO-2 reduce-scatters at the step's last micro-batch, into
        `averaged_gradients`; before that each process accumulates whole gradients locally."""
        optimizer = self.engine.optimizer
        if self.stage == 3:
            flat = optimizer.grad_partitions_flat_buffer
            return flat.numel() * flat.element_size()
        partitions = [grads for grads in optimizer.averaged_gradients.values() if grads is not None]
        if not partitions:  # offloaded: the gradient partitions live on the fp32 master copies
            masters = optimizer.single_partition_of_fp32_groups
            return tensor_bytes(m.grad for m in masters if m.grad is not None)
        return sum(tensor_bytes(g for g in grads if g is not None) for grads in partitions)

    def memory(self) -> dict[str, int]:
        """This process's bytes of parameters (its ZeRO-3 partition), gradients and optimizer state
        (ZeRO's fp32 master partition plus the AdamW moments)."""
        optimizer = self.engine.optimizer
        masters = (
            getattr(optimizer, "single_partition_of_fp32_groups", None)
            or getattr(optimizer, "fp32_partitioned_groups_flat", None)
            or []
        )
        inner = getattr(optimizer, "optimizer", optimizer)
        return {"params": tensor_bytes(self.module.parameters()), "grads": self.grad_bytes,
                "optimizer": optimizer_bytes(inner) + tensor_bytes(masters)}  # fmt: skip

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.stage < 3:
            return self.module.state_dict()
        import deepspeed

        params = list(self.module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            state = (
                {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
                if self.d.is_main
                else None
            )
        return state

    def weights(self) -> Weights:
        if self.stage < 3:
            return Weights.of(self.module)
        import deepspeed

        params = dict(self.module.named_parameters(remove_duplicate=False))  # tied names too
        state = self.module.state_dict()  # ZeRO-3 keeps empty placeholders for the parameters

        def gathered() -> Iterator[tuple[str, torch.Tensor]]:
            for name, t in state.items():
                if name not in params:
                    yield name, t
                    continue
                with deepspeed.zero.GatheredParameters([params[name]], modifier_rank=None):
                    whole = params[name].data.clone()  # the gathered storage is freed when the block ends
                yield name, whole

        shapes = [
            (name, torch.Size(params[name].ds_shape) if name in params else t.shape)
            for name, t in state.items()
        ]
        return Weights(shapes, gathered())

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.stage < 3:
            self.module.load_state_dict(state, strict=True)
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=0):
            if self.d.is_main:
                self.module.load_state_dict(state, strict=True)

    def save_state(self, path: Path, d: Dist) -> None:
        # Every process writes its optimizer partition (and, DeepSpeed's way, its module weights).
        self.engine.save_checkpoint(str(path), tag="deepspeed", save_latest=False)

    def load_state(self, path: Path) -> None:
        # Restores the module *and* ZeRO's fp32 master partitions, which loading weights alone would miss.
        self.engine.load_checkpoint(
            str(path), tag="deepspeed", load_optimizer_states=True, load_lr_scheduler_states=False
        )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


Engine = TorchEngine | FSDP2Engine | DeepSpeedEngine


def build_engine(
    model: nn.Module,
    make_optimizer: OptimizerFactory,
    train: CoreConfig,
    micro_batch_size: int,
    accumulation: int,
    grad_clip: float,
    d: Dist,
    param_dtype: torch.dtype | None = None,
) -> Engine:
    """The engine `train.sharding` names, around `model` (already on its device, weights loaded).
    `param_dtype`: FSDP2's compute dtype for gathered parameters (bf16 under bf16 precision)."""
    if train.sharding == "none" and d.world > 1:
        raise ConfigError(
            f"train.sharding none runs one process, this run has {d.world}: use ddp, zero2, zero3 or fsdp2"
        )
    if train.activation_checkpointing:
        enable_activation_checkpointing(model)
    if train.sharding == "fsdp2":
        return FSDP2Engine(model, make_optimizer, grad_clip, d, param_dtype, train.offload_optimizer)
    if train.uses_deepspeed:
        return DeepSpeedEngine(model, make_optimizer, train, micro_batch_size, accumulation, grad_clip, d)
    return TorchEngine(model, make_optimizer, grad_clip, d)


class ModelEngines(dict[str, Engine]):
    """The training engine of each trained model by name (policy, value); a checkpoint keeps each
    engine's state in its model's folder."""

    def save_state(self, path: Path, d: Dist) -> None:
        for name, engine in self.items():
            engine.save_state(path / name, d)

    def load_state(self, path: Path) -> None:
        for name, engine in self.items():
            engine.load_state(path / name)

    def micro_context(self, last: bool) -> contextlib.ExitStack:
        """Every engine's `micro_context`: the forwards and backwards of one micro-batch run inside."""
        stack = contextlib.ExitStack()
        for engine in self.values():
            stack.enter_context(engine.micro_context(last))
        return stack
