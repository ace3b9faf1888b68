"""The weight stream's trainer side against in-process stand-ins for engine workers (no vLLM engine)."""

import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch

pytest.importorskip("vllm")

from rlvr.weight_stream import GroupReceiver, StreamError, WeightStreamer


class StubModel:
    def __init__(self) -> None:
        self.loaded: dict[str, torch.Tensor] = {}

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        self.loaded.update(weights)


class FakeWorker:
    """One engine's only worker: the real `GroupReceiver` over a stub model, driven as vLLM's RPC
    drives it (vLLM's layerwise reload, which start/finish wrap, needs a real vLLM model: skipped)."""

    def __init__(self, hang_on_update: bool = False) -> None:
        receiver = GroupReceiver.__new__(GroupReceiver)
        receiver.parallel_config = SimpleNamespace(rank=0)
        receiver.model, receiver.device = StubModel(), torch.device("cpu")
        receiver.group = receiver.store = None
        self.receiver, self.calls, self.hang_on_update = receiver, [], hang_on_update

    @property
    def received(self) -> dict[str, torch.Tensor]:
        return self.receiver.model.loaded

    def __call__(self, method: str, **kwargs: Any) -> None:
        self.calls.append(method)
        if method == "init_weight_transfer_engine":
            self.receiver.init_transfer_engine(self.receiver.parse_init_info(kwargs["init_info"]))
        elif method == "update_weights":
            if self.hang_on_update:
                time.sleep(10)
            self.receiver.update_weights(kwargs["update_info"])


def weights() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(3 + i, 5, generator=generator) for i in range(4)}


def test_every_engine_receives_every_tensor_in_the_engines_dtype() -> None:
    workers = [FakeWorker(), FakeWorker()]
    streamer = WeightStreamer(workers, workers_per_engine=1, timeout_s=30)
    state = weights()
    streamer.send(iter(state.items()), [(k, v.shape) for k, v in state.items()], torch.bfloat16)
    for worker in workers:
        assert worker.calls == ["init_weight_transfer_engine", "start_weight_update", "update_weights",
                                "finish_weight_update"]  # fmt: skip
        assert worker.received.keys() == state.keys()
        for name, tensor in state.items():
            assert worker.received[name].dtype == torch.bfloat16
            torch.testing.assert_close(worker.received[name], tensor.to(torch.bfloat16), rtol=0, atol=0)
    streamer.close()


def test_a_tensor_out_of_the_announced_order_is_refused() -> None:
    streamer = WeightStreamer([FakeWorker()], workers_per_engine=1, timeout_s=5)
    state = weights()
    announced = [(k, v.shape) for k, v in reversed(state.items())]
    with pytest.raises(StreamError, match="arrived where"):
        streamer.send(iter(state.items()), announced, torch.float32)


def test_an_engine_that_stops_receiving_fails_the_sync_at_its_deadline() -> None:
    workers = [FakeWorker(), FakeWorker(hang_on_update=True)]
    streamer = WeightStreamer(workers, workers_per_engine=1, timeout_s=3)
    state = weights()
    start = time.monotonic()
    with pytest.raises(StreamError, match=r"within 3 s; engine 1 stopped receiving \(tensors loaded of \d sent: "
                       r"engine 0 [1-4], engine 1 0\)"):  # fmt: skip
        streamer.send(iter(state.items()), [(k, v.shape) for k, v in state.items()], torch.float32)
    assert time.monotonic() - start < 20
