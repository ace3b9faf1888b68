"""The process group every trainer joins (`torchrun` describes it in the environment) and the
collectives the trainers share."""

from __future__ import annotations

import gc
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar

import torch
import torch.distributed as dist

R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(
    backend: str | None = None, deepspeed: bool = False, timeout: float | None = None, group: bool = False
) -> Dist:
    """Join the process group `torchrun` describes in the environment (or run alone without one).
    `timeout`: seconds a collective may wait for the slowest process (None: torch's default).
    `group`: make a one-process group when run alone (FSDP2 and DeepSpeed need one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized() and (world > 1 or group or deepspeed):
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        wait = {} if timeout is None else {"timeout": timedelta(seconds=timeout)}
        if world == 1:  # alone: an in-memory store, no rendezvous address needed
            for key in ("LOCAL_RANK", "RANK"):  # what DeepSpeed reads, as torchrun would set them
                os.environ.setdefault(key, "0")
            os.environ.setdefault("WORLD_SIZE", "1")
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, **wait)
        elif deepspeed:
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
    try:
        return trainer.fit()
    except BaseException as err:
        traceback.clear_frames(err.__traceback__)  # the failed frames' locals hold the trainer too
        raise
    finally:
        del trainer
        gc.collect()  # a trainer in a reference cycle (e.g. a bound method kept as an attribute)
        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast_from_main(obj: T | None, d: Dist) -> T:
    """The main process's `obj` on every process (`None` elsewhere: what they receive replaces it)."""
    if d.world > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        obj = box[0]
    assert obj is not None
    return obj


def rank_rows(index: torch.Tensor, d: Dist) -> torch.Tensor:
    """This process's contiguous share of `index` (equal shares when it splits evenly)."""
    return index.tensor_split(d.world)[d.rank]


def gather_rows(tensor: torch.Tensor, d: Dist) -> torch.Tensor:
    """Every process's rows of equal-sized `tensor`s, concatenated in rank order (the inverse of
    `rank_rows` on an even split)."""
    if d.world == 1:
        return tensor
    local = tensor.to(d.device).contiguous()
    parts = [torch.empty_like(local) for _ in range(d.world)]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(tensor.device)


def all_reduce_metrics(
    sums: dict[str, float], d: Dist, extremes: Mapping[str, Callable[[float, float], float]]
) -> dict[str, float]:
    """Each process's weighted sums added up over the processes; the `extremes` (key → max or min)
    reduced by their own operation. Every process must hold the same keys."""
    if d.world == 1:
        return sums
    keys = sorted(sums)  # the same order everywhere: the collectives pair up by position
    groups = [(dist.ReduceOp.SUM, [k for k in keys if k not in extremes])]
    groups += [
        (dist.ReduceOp.MAX if extremes[k] is max else dist.ReduceOp.MIN, [k]) for k in keys if k in extremes
    ]
    reduced: dict[str, float] = {}
    for op, group in groups:
        values = all_reduce(torch.tensor([sums[k] for k in group], dtype=torch.float64), d, op)
        reduced.update(zip(group, values.tolist(), strict=True))
    return reduced
