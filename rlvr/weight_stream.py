"""The trainer's weights streamed into vLLM engines over a torch process group, one tensor at a time.

The trainer is rank 0 of a *stateless* process group (`ProcessGroupGloo` on CPU, `ProcessGroupNCCL`
on GPUs) whose other ranks are the engines' worker processes: engine e's tensor-parallel worker w
is rank 1 + e × workers_per_engine + w, so one broadcast reaches every engine. The group is built
straight from a `TCPStore`, so neither side's `torch.distributed` default group is touched (the
trainer's own FSDP/DDP group stays its own).

The worker side plugs into vLLM's weight-transfer API: `GroupReceiver` is a `WeightTransferEngine`
registered under the name `rlvr_group`, driven by the stock worker methods
(`init_weight_transfer_engine`, `start_weight_update`, `update_weights`, `finish_weight_update`).
vLLM spawns its workers, so a registration made in the trainer process never reaches them: the
engine names `WorkerHook` as its `worker_extension_cls`, and each worker importing it registers the
receiver before the model loads. The receiver loads inside vLLM's layerwise reload
(start/finish), which CPU builds need: they repack each linear weight after loading.

vLLM's shipped NCCL engine needs an accelerator and CUDA streams, so it cannot run on CPU; this one
runs on both, which is what lets the tests exercise the route a GPU cluster takes.
"""

from __future__ import annotations

import datetime
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.distributed import BroadcastOptions, PrefixStore, TCPStore
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

BACKEND = "rlvr_group"
GROUP_PREFIX = "rlvr-weight-stream"


class StreamError(RuntimeError):
    """A streamed weight update did not reach an engine (timeout, broken group)."""


def stateless_group(transport: str, store: TCPStore, rank: int, world_size: int, timeout_s: float) -> Any:
    """A process-group backend over `store`, used through its own methods (not registered with
    torch.distributed). Every rank blocks here until all `world_size` ranks have joined."""
    timeout = datetime.timedelta(seconds=timeout_s)
    prefixed = PrefixStore(GROUP_PREFIX, store)
    if transport == "gloo":
        return torch.distributed.ProcessGroupGloo(prefixed, rank, world_size, timeout)
    if transport == "nccl":
        options = torch.distributed.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return torch.distributed.ProcessGroupNCCL(prefixed, rank, world_size, options)
    raise ValueError(f"unknown transport {transport!r} (gloo or nccl)")


def progress_key(rank: int) -> str:
    """The store key where worker `rank` counts the tensors of the current update it has loaded."""
    return f"{GROUP_PREFIX}/loaded/{rank}"


def _broadcast_from_trainer(group: Any, tensor: torch.Tensor) -> Any:
    options = BroadcastOptions()
    options.rootRank, options.rootTensor = 0, 0
    return group.broadcast([tensor], options)


# ----------------------------------------------------------------------------- engine worker side


@dataclass
class GroupInitInfo(WeightTransferInitInfo):
    master_address: str
    master_port: int
    world_size: int
    rank_offset: int
    """The group rank of this engine's first worker."""
    transport: str = "gloo"
    timeout_s: float = 300.0


@dataclass
class GroupUpdateInfo(WeightTransferUpdateInfo):
    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]


class GroupReceiver(WeightTransferEngine[GroupInitInfo, GroupUpdateInfo]):
    """Worker side: receive each tensor from rank 0 and load it into the served model."""

    init_info_cls = GroupInitInfo
    update_info_cls = GroupUpdateInfo

    def __init__(self, config: Any, vllm_config: Any, device: torch.device, model: torch.nn.Module) -> None:
        super().__init__(config, vllm_config, device, model)
        self.group: Any = None
        self.store: TCPStore | None = None
        self.transport = "gloo"
        self.rank = 0

    def init_transfer_engine(self, init_info: GroupInitInfo) -> None:
        self.rank = rank = init_info.rank_offset + self.parallel_config.rank
        self.transport = init_info.transport
        self.store = TCPStore(
            init_info.master_address,
            init_info.master_port,
            is_master=False,
            timeout=datetime.timedelta(seconds=init_info.timeout_s),
        )
        self.group = stateless_group(
            init_info.transport, self.store, rank, init_info.world_size, init_info.timeout_s
        )

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)

    def update_weights(self, update_info: dict[str, Any]) -> None:
        # the base class ends with torch.accelerator.synchronize(), which raises on CPU-only builds
        self.receive_weights(self.parse_update_info(update_info))
        if torch.accelerator.is_available():
            torch.accelerator.synchronize()

    def receive_weights(self, update_info: GroupUpdateInfo) -> None:
        if self.group is None or self.store is None:
            raise RuntimeError("update_weights before init_weight_transfer_engine")
        device = torch.device("cpu") if self.transport == "gloo" else self.device
        specs = list(zip(update_info.names, update_info.dtype_names, update_info.shapes, strict=True))
        pending: deque[tuple[str, torch.Tensor, Any]] = deque()

        def post(i: int) -> None:
            if i < len(specs):
                name, dtype, shape = specs[i]
                tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=device)
                pending.append((name, tensor, _broadcast_from_trainer(self.group, tensor)))

        store, key = self.store, progress_key(self.rank)

        def arrivals() -> Iterator[tuple[str, torch.Tensor]]:
            post(0)
            for i in range(len(specs)):  # i tensors loaded so far
                name, tensor, work = pending.popleft()
                if (
                    not work.is_completed()
                ):  # about to block: say how far it got, for a trainer whose sync stalls
                    store.set(key, str(i))
                work.wait()
                post(i + 1)  # the next tensor arrives while this one loads
                yield name, tensor

        # one call over all tensors, as a checkpoint load is: vLLM's loader walks the model once
        self.model.load_weights(arrivals())
        store.set(key, str(len(specs)))

    def shutdown(self) -> None:
        self.group = self.store = None


if BACKEND not in WeightTransferEngineFactory._registry:
    WeightTransferEngineFactory.register_engine(BACKEND, GroupReceiver)


class WorkerHook:
    """The engine's `worker_extension_cls`: importing this module in each worker registers `GroupReceiver`."""


WORKER_HOOK = f"{WorkerHook.__module__}.{WorkerHook.__qualname__}"


# ----------------------------------------------------------------------------- trainer side

Rpc = Callable[..., Any]
"""`rpc(method, **kwargs)`: one engine's stock worker method, blocking, raising TimeoutError at its deadline."""


class WeightStreamer:
    """Rank 0 of the weight group: sends every tensor once, to all engines at the same time."""

    def __init__(
        self,
        engines: Sequence[Rpc],
        workers_per_engine: int,
        transport: str = "gloo",
        timeout_s: float = 300.0,
        address: str = "127.0.0.1",
    ) -> None:
        self.engines, self.transport, self.timeout_s = list(engines), transport, timeout_s
        self.workers_per_engine = workers_per_engine
        self.store = TCPStore(
            address, 0, is_master=True, wait_for_workers=False, timeout=datetime.timedelta(seconds=timeout_s)
        )
        world = 1 + len(self.engines) * workers_per_engine
        infos = [
            GroupInitInfo(address, self.store.port, world, 1 + e * workers_per_engine, transport, timeout_s)
            for e in range(len(self.engines))
        ]
        # each worker blocks in the group's rendezvous inside its RPC, as rank 0 does here
        with ThreadPoolExecutor(len(self.engines), thread_name_prefix="weight-stream") as pool:
            futures = [
                pool.submit(rpc, "init_weight_transfer_engine", init_info=asdict(info))
                for rpc, info in zip(self.engines, infos, strict=True)
            ]
            self.group = stateless_group(transport, self.store, 0, world, timeout_s)
            self._results(futures, "join the weight group")

    def send(self, tensors: Iterable[tuple[str, torch.Tensor]], shapes: Sequence[tuple[str, Sequence[int]]],
             dtype: torch.dtype) -> None:  # fmt: skip
        """Stream `tensors` (in the order of `shapes`, each cast to `dtype`) into every engine.

        `shapes` is known before any tensor is gathered, so a sharded trainer can pass a generator
        that gathers one parameter at a time."""
        names = [name for name, _ in shapes]
        info = GroupUpdateInfo(
            names=names,
            dtype_names=[str(dtype).removeprefix("torch.")] * len(names),
            shapes=[list(shape) for _, shape in shapes],
        )
        device = "cpu" if self.transport == "gloo" else torch.device("cuda", torch.cuda.current_device())
        for rank in range(1, 1 + len(self.engines) * self.workers_per_engine):
            self.store.set(progress_key(rank), "0")
        self._on_all("start_weight_update")
        pool = ThreadPoolExecutor(len(self.engines), thread_name_prefix="weight-stream")
        try:
            futures = [pool.submit(rpc, "update_weights", update_info=asdict(info)) for rpc in self.engines]
            in_flight: deque[tuple[torch.Tensor, Any]] = deque()
            sent = 0
            with torch.no_grad():
                for (name, tensor), expected in zip(tensors, names, strict=True):
                    if name != expected:
                        raise StreamError(f"weight {name!r} arrived where {expected!r} was announced")
                    wire = tensor.detach().to(device=device, dtype=dtype).contiguous()
                    in_flight.append((wire, _broadcast_from_trainer(self.group, wire)))
                    sent += 1
                    if len(in_flight) > 1:  # one broadcast stays in flight while the next tensor is gathered
                        self._wait(in_flight.popleft()[1], sent)
                while in_flight:
                    self._wait(in_flight.popleft()[1], sent)
            self._results(futures, "load the streamed weights")
        finally:
            pool.shutdown(wait=False)  # a broken broadcast leaves RPC threads blocked: do not join them
        self._on_all("finish_weight_update")

    def _wait(self, work: Any, sent: int) -> None:
        try:
            work.wait(datetime.timedelta(seconds=self.timeout_s))
        except RuntimeError as err:
            raise StreamError(
                f"a weight broadcast did not complete within {self.timeout_s:g} s; {self._laggards(sent)}"
            ) from err

    def _laggards(self, sent: int) -> str:
        """The tensors each engine has loaded of the `sent` broadcast, naming those behind the rest."""
        loaded = []
        for e in range(len(self.engines)):
            ranks = range(1 + e * self.workers_per_engine, 1 + (e + 1) * self.workers_per_engine)
            loaded.append(min(int(self.store.get(progress_key(rank))) for rank in ranks))
        counts = ", ".join(f"engine {e} {n}" for e, n in enumerate(loaded))
        behind = [f"engine {e}" for e, n in enumerate(loaded) if n < max(loaded)]
        lead = f"{' and '.join(behind)} stopped receiving" if behind else "every engine stopped receiving"
        return f"{lead} (tensors loaded of {sent} sent: {counts})"

    def _on_all(self, method: str) -> None:
        with ThreadPoolExecutor(len(self.engines), thread_name_prefix="weight-stream") as pool:
            self._results([pool.submit(rpc, method) for rpc in self.engines], method)

    def _results(self, futures: list[Future[Any]], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        for e, future in enumerate(futures):
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError as err:
                raise StreamError(f"engine {e} did not {what} within {self.timeout_s:g} s") from err
            except Exception as err:
                raise StreamError(f"engine {e} failed to {what}: {err}") from err

    def close(self) -> None:
        self.group = None
        self.store = None
