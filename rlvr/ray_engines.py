"""vLLM engines as Ray actors, placed by a placement group (`rollout.vllm.placement: ray`).

Each engine is one Ray actor (`EngineActor`) holding a `vllm.LLM`; a placement group reserves one
bundle per engine — its `tensor_parallel_size` GPUs (and a CPU) on one node, or its share of the
cores on CPU builds — so the engines land on whichever nodes of the Ray cluster have the room,
beside or apart from the training processes. The trainer's main process drives them through
`RemoteLLM`, which has the few `vllm.LLM` methods `rlvr.vllm_engine.VLLMEngine` calls, blocking, so
the fleet code is the same for local and Ray engines. Weights still stream over the trainer's own
process group (`rlvr.weight_stream`): its store listens on the trainer node's address, which every
engine's workers reach.

Ray is what open-instruct, OpenRLHF, verl and NeMo-RL place their engines with; rlvr uses it for
placement only (the trainer processes start with `torchrun` as everywhere else).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from rlvr.config import ConfigError

PLACEMENT_WAIT_S = 120.0
"""Seconds to wait for the cluster to grant the engines' bundles before saying which are missing."""


class EngineActor:
    """One vLLM engine in its own Ray worker process (created through `ray.remote`)."""

    def __init__(
        self, checkpoint: str, kwargs: dict[str, Any], env: dict[str, str], bind_scheduler: bool
    ) -> None:
        os.environ.update(env)  # before vLLM starts its worker processes, which inherit it
        from vllm import LLM

        from rlvr.vllm_engine import scheduler_on_worker_cores

        self.llm = LLM(checkpoint, **kwargs)
        if bind_scheduler:
            scheduler_on_worker_cores()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.llm, method)(*args, **kwargs)

    def dtype(self) -> torch.dtype:
        return self.llm.llm_engine.model_config.dtype


class RemoteLLM:
    """The trainer's blocking handle on an `EngineActor`: the `vllm.LLM` methods the fleet uses."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import ray

        return ray.get(self.actor.call.remote(method, *args, **kwargs))

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("generate", *args, **kwargs)

    def collective_rpc(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("collective_rpc", *args, **kwargs)

    def reset_prefix_cache(self) -> bool:
        return self._call("reset_prefix_cache")

    def sleep(self, level: int) -> None:
        self._call("sleep", level=level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        self._call("wake_up", tags=tags)

    @property
    def dtype(self) -> torch.dtype:
        import ray

        return ray.get(self.actor.dtype.remote())


class RayFleet:
    """The engines' actors and their placement group; `close` releases both (and the Ray runtime
    when this process started it)."""

    def __init__(
        self,
        checkpoint: str,
        address: str | None,
        kwargs: Sequence[dict[str, Any]],
        envs: Sequence[dict[str, str]],
        bundle: dict[str, float],
        bind_scheduler: bool,
    ) -> None:
        """`kwargs[e]`, `envs[e]`: engine e's `vllm.LLM` arguments and environment; `bundle`: the
        resources of one engine; `address`: the Ray cluster to join (None: start one on this machine)."""
        try:
            import ray
            from ray.util.placement_group import placement_group, remove_placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        except ImportError as err:
            raise ConfigError(
                "rollout.vllm.placement ray needs Ray: pip install ray (or placement: local)"
            ) from err
        self._remove_group = remove_placement_group
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.node_ip: str = ray.util.get_node_ip_address()
        self.group = placement_group([dict(bundle) for _ in kwargs], strategy="PACK")
        if not self.group.wait(PLACEMENT_WAIT_S):
            have = ray.cluster_resources()
            self.close()
            raise ConfigError(
                f"the Ray cluster cannot place {len(kwargs)} engine(s) of {bundle} each within "
                f"{PLACEMENT_WAIT_S:g} s (it has {have}): lower rollout.vllm.engines or add nodes"
            )
        remote = ray.remote(EngineActor)
        self.actors = [
            remote.options(
                num_cpus=bundle.get("CPU", 0),
                num_gpus=bundle.get("GPU", 0),
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.group, placement_group_bundle_index=e
                ),
            ).remote(checkpoint, kwargs[e], envs[e], bind_scheduler)
            for e in range(len(kwargs))
        ]
        self.llms = [RemoteLLM(actor) for actor in self.actors]
        try:  # every engine is up (a failed start raises here, naming the engine's error)
            ray.get([actor.dtype.remote() for actor in self.actors])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        import ray

        for actor in getattr(self, "actors", []):
            ray.kill(actor)
        self.actors = []
        if hasattr(self, "group"):
            self._remove_group(self.group)
            del self.group
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False
