"""Process group set-up and the two ways of running the optimizer: plain PyTorch (DDP when several
processes) or DeepSpeed ZeRO. The trainer talks to either through the same five calls.

Gradient scaling contract: the trainer's micro-batch loss is `sum over its tokens / tokens in the
whole global batch · world`. Both DDP and DeepSpeed *average* gradients over processes, so the
`· world` turns that average back into the exact global-batch mean, however the batch is split.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(
    backend: str | None = None, deepspeed: bool = False, timeout: float | None = None
) -> Dist:
    """Join the process group `torchrun` describes in the environment (or run alone without one).
    `timeout`: seconds a collective may wait for the slowest process (None: torch's default)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        wait = {} if timeout is None else {"timeout": timedelta(seconds=timeout)}
        if deepspeed:
            import deepspeed as ds

            ds.init_distributed(dist_backend=backend, **wait)
        else:
            dist.init_process_group(backend, **wait)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank=rank, world=world, device=device)


def all_reduce(
    tensor: torch.Tensor, d: Dist, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM
) -> torch.Tensor:
    """`tensor` reduced over the processes, in place. The collective runs on the process's device:
    NCCL reduces CUDA tensors only."""
    if d.world > 1:
        on_device = tensor.to(d.device)
        dist.all_reduce(on_device, op=op)
        tensor.copy_(on_device)
    return tensor


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


class Fittable(Protocol[R_co]):
    """A trainer: where it runs, and `fit`."""

    dist: Dist

    def fit(self) -> R_co: ...


def fit_then_leave(make: Callable[[], Fittable[R_co]]) -> R_co:
    """Build a trainer, fit it, and leave the process group (the end of a `torchrun` launch) once the
    trainer is gone. The order matters: a DDP reducer that outlives the group destroys it holding the
    GIL, which can deadlock with gloo's worker thread: a hang (or crash) at exit in a few percent of
    two-process runs here. So the trainer is built here, where nothing else holds it."""
    trainer = make()
    d = trainer.dist
    try:
        return trainer.fit()
    except BaseException as err:
        traceback.clear_frames(err.__traceback__)  # the failed frames' locals hold the trainer too
        raise
    finally:
        del trainer
        gc.collect()  # a trainer in a reference cycle (e.g. a bound method kept as an attribute)
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class TorchEngine:
    """AdamW on full fp32 weights; DDP all-reduces gradients on the last micro-batch only."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float, d: Dist) -> None:
        self.module = model
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.world = d.world
        self.wrapped: nn.Module = DistributedDataParallel(model) if d.world > 1 else model

    def micro_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip DDP's gradient all-reduce on all but the last micro-batch of a step."""
        if self.world > 1 and not last:
            return self.wrapped.no_sync()
        return contextlib.nullcontext()

    def forward(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The model's `logits` (`inputs`: e.g. attention_mask, position_ids)."""
        return self.wrapped(input_ids=input_ids, use_cache=False, **inputs).logits

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, lr: float) -> float:
        """Clip, update, zero the gradients; returns the global gradient norm before clipping."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        max_norm = self.grad_clip if self.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def save_state(self, path: Path, d: Dist) -> None:
        if d.is_main:  # replicated on every process
            torch.save(self.optimizer.state_dict(), path / "optim.pt")

    def load_state(self, path: Path) -> None:
        self.optimizer.load_state_dict(torch.load(path / "optim.pt", map_location="cpu", weights_only=True))


class DeepSpeedEngine:
    """The same calls on a DeepSpeed engine (ZeRO partitions optimizer state and gradients).

    The trainer owns accumulation (DeepSpeed's `managed_gradient_accumulation: false`: every
    `step()` is a boundary) and loss scaling (`scale_wrt_gas=False`), so the numbers match the
    plain engine. Autocast stays the trainer's too: enabling DeepSpeed's own `bf16` section would
    switch to bf16 weights, a different recipe.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        config_path: str | Path,
        micro_batch_size: int,
        accumulation: int,
        grad_clip: float,
        d: Dist,
    ) -> None:
        import deepspeed

        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"DeepSpeed config {path} not found (e.g. configs/deepspeed/zero2.json)")
        config = json.loads(path.read_text())
        for key in ("bf16", "fp16"):
            if config.get(key, {}).get("enabled"):
                raise ValueError(
                    f"{path}: '{key}' is enabled; rlvr autocasts itself (train.precision), remove it"
                )
        config.update(
            train_micro_batch_size_per_gpu=micro_batch_size,
            gradient_accumulation_steps=accumulation,
            train_batch_size=micro_batch_size * accumulation * d.world,
            gradient_clipping=grad_clip,
            managed_gradient_accumulation=False,
        )
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        self.module = self.engine.module

    def micro_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # ZeRO-2 reduces each backward into its partitions

    def forward(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        return self.engine(input_ids=input_ids, use_cache=False, **inputs).logits

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self, lr: float) -> float:
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        self.engine.step()
        return float(self.engine.get_global_grad_norm() or 0.0)

    def save_state(self, path: Path, d: Dist) -> None:
        # Every process writes its optimizer partition. (DeepSpeed also stores a copy of the module
        # weights there; the safetensors beside it are what everything else reads.)
        self.engine.save_checkpoint(str(path), tag="deepspeed", save_latest=False)

    def load_state(self, path: Path) -> None:
        # Restores the module *and* ZeRO's fp32 master partitions, which loading weights alone would miss.
        self.engine.load_checkpoint(
            str(path), tag="deepspeed", load_optimizer_states=True, load_lr_scheduler_states=False
        )


Engine = TorchEngine | DeepSpeedEngine


def build_engine(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    deepspeed: str | None,
    micro_batch_size: int,
    accumulation: int,
    grad_clip: float,
    d: Dist,
) -> Engine:
    """The plain PyTorch engine, or DeepSpeed's when `deepspeed` names its JSON config."""
    if deepspeed is None:
        return TorchEngine(model, optimizer, grad_clip, d)
    return DeepSpeedEngine(model, optimizer, deepspeed, micro_batch_size, accumulation, grad_clip, d)
