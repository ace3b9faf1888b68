"""Rollout engines for RL: sample from the policy, take its new weights, prove they arrived.

Two engines share one interface (`Engine`):

- `rlvr.vllm_engine.VLLMEngine` (default for PPO): one or more in-process vLLM engines. After each
  optimisation step `load_weights(weights)` hands them the trainer's weights, with a hard deadline,
  streamed over a process group (`rlvr.weight_stream`) or through a safetensors file.
- `HFEngine`: transformers `generate` on the trainer's own model object — nothing to sync; for
  tests and machines without vLLM.

A sync reads the trainer's weights as `Weights`: every name and whole shape first, then the whole
tensors one at a time — under zero3/fsdp2 each is gathered from the shards as the sync reads it
(`rlvr.train.engines`), so no process holds the whole model for a sync.

`verify_sync` is what makes a sync trustworthy: it scores a fixed probe sequence with every engine
replica, compares with the trainer's log-probs of it (`trainer_logprobs`), and fails when the per-token log-probs differ by more than a
tolerance — a stale or half-loaded engine shows up at once instead of silently training on
samples from old weights. `logprob_gap` measures the same disagreement on real rollouts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from rlvr.generation import left_padded, sampling_kwargs
from rlvr.logprobs import token_logprobs
from rlvr.train.precision import autocast as autocast_context

FP32_TOLERANCE = 1e-3
"""The probe gap a sync may leave between fp32 engines and an fp32 trainer: their kernels differ by
about 1e-5 (the order of sums), a one-step-stale engine by far more."""
REDUCED_PRECISION_START_LIMIT = 1.0
"""The largest probe gap a bf16/fp16 engine may show on the checkpoint it loaded itself: rounding
moves a token's log-prob by hundredths of a nat, a misread checkpoint by whole nats."""
SYNC_MARGIN = 2.0
"""A measured tolerance is this many times the engines' gap on the checkpoint they loaded."""


def start_limit(engine_dtype: torch.dtype) -> float:
    """The largest probe gap engines computing in `engine_dtype` may show on their own checkpoint."""
    return FP32_TOLERANCE if engine_dtype == torch.float32 else REDUCED_PRECISION_START_LIMIT


def measured_tolerance(start_gaps: Sequence[float]) -> float:
    """A sync's tolerance from the engines' gaps on the checkpoint they loaded themselves (their
    rounding against the trainer's, with nothing stale to blame): `SYNC_MARGIN` × the largest, at
    least `FP32_TOLERANCE`."""
    return max(FP32_TOLERANCE, SYNC_MARGIN * max(start_gaps))


class RolloutError(RuntimeError):
    """The rollout engines cannot go on: the run stops (its last checkpoint resumes it)."""


class SyncError(RolloutError):
    """The engine's weights do not match the trainer's after a sync (or the sync timed out)."""


class EngineError(RolloutError):
    """An engine stopped serving (its process died or it failed a request)."""


@dataclass
class Sample:
    """One sampled response: `token_ids` up to and including EOS when `finished`."""

    token_ids: list[int]
    finished: bool
    logprobs: list[float]
    """The engine's log-prob of each sampled token under the temperature-scaled distribution."""


@dataclass
class Weights:
    """A model's weights as a sync reads them: every name and whole shape up front, then the whole
    tensors in that order, once (`tensors` may gather each one from shards as it is read)."""

    shapes: list[tuple[str, torch.Size]]
    tensors: Iterable[tuple[str, torch.Tensor]]

    @classmethod
    def of(cls, model: torch.nn.Module) -> Weights:
        """A whole model's weights (references to its live tensors: nothing is copied)."""
        state = model.state_dict()
        return cls([(name, t.shape) for name, t in state.items()], state.items())


class Engine(Protocol):
    dtype: torch.dtype
    """What the engine computes its probe log-probs in."""

    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        """`n` samples per prompt (token ids in, token ids out), in prompt order."""
        ...

    def load_weights(self, weights: Weights) -> None: ...

    def probe_logprobs(self, token_ids: list[int]) -> list[list[float]]:
        """log p(token_i | tokens_<i) for i ≥ 1 at temperature 1, from each engine replica: the sync probe."""
        ...

    def close(self) -> None: ...


def trainer_logprobs(
    model: torch.nn.Module, token_ids: list[int], device: torch.device | None = None
) -> list[float]:
    """The trainer side of the probe: the same quantity as `Engine.probe_logprobs`, in fp32 (in the
    gathered parameters' dtype under fsdp2 mixed precision). Under zero3/fsdp2 a forward every
    process runs. `device`: where the model computes (default: its first parameter's)."""
    device = device or next(model.parameters()).device
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


def verify_sync(engine: Engine, probe: list[int], expected: Sequence[float], tolerance: float) -> list[float]:
    """Each replica's largest per-token log-prob difference on `probe` from `expected` (the trainer's,
    `trainer_logprobs`); raises `SyncError` naming the first replica above `tolerance`."""
    gaps = [max_abs_gap(served, expected) for served in engine.probe_logprobs(probe)]
    for e, gap in enumerate(gaps):
        if not gap <= tolerance:  # also catches NaN
            raise SyncError(
                f"engine {e} and the trainer disagree after the weight sync: max log-prob gap {gap:.3g} on "
                f"the probe > tolerance {tolerance:g}. The engine is serving other weights than the trainer "
                "holds (a stale or partial load); stopping rather than training on its samples."
            )
    return gaps


# ----------------------------------------------------------------------------- transformers


class _GreedyLogprobs:
    """A `logits_processor` for greedy decoding: the chosen token is each step's argmax, so its
    log-prob is the step's largest — kept per step instead of every step's whole distribution."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(scores.float().log_softmax(-1).max(-1).values)
        return scores


class HFEngine:
    """Sampling with transformers `generate` on a model in this process — the trainer's own (no
    weights to sync) or a copy — in batches of `batch_size` sequences (None: a call's all at once),
    longest prompts first, so the first batch shows a memory problem at once."""

    dtype = torch.float32  # the probe runs without autocast

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        autocast: torch.dtype | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.model, self.tokenizer, self.autocast, self.batch_size = model, tokenizer, autocast, batch_size

    def sample(
        self, prompts: Sequence[list[int]], n: int, max_tokens: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        flat = [p for p in prompts for _ in range(n)]
        size = self.batch_size or len(flat)
        order = sorted(range(len(flat)), key=lambda i: -len(flat[i])) if self.batch_size else range(len(flat))
        samples: list[Sample] = [Sample([], False, [])] * len(flat)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                generated = self._generate([flat[i] for i in chunk], max_tokens, temperature)
                for i, sample in zip(chunk, generated, strict=True):
                    samples[i] = sample
        self.model.train(was_training)
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _generate(self, prompts: Sequence[list[int]], max_tokens: int, temperature: float) -> list[Sample]:
        model, eos = self.model, self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        device = next(model.parameters()).device
        ids, mask = left_padded(prompts, pad)
        greedy = _GreedyLogprobs() if temperature == 0 else None
        with autocast_context(self.autocast, device):
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
                output_scores=greedy is None,
                return_dict_in_generate=True,
                logits_processor=[greedy] if greedy is not None else None,
                **sampling_kwargs(temperature),
            )
        generated = out.sequences[:, ids.shape[1] :]
        if greedy is not None:
            token_logp = torch.stack(greedy.steps, dim=1)
        else:  # `scores` are the processed (temperature-scaled) logits of each step
            token_logp = token_logprobs(torch.stack(out.scores, dim=1), generated)
        samples = []
        for row in range(len(prompts)):
            tokens = generated[row].tolist()
            finished = eos in tokens
            length = tokens.index(eos) + 1 if finished else len(tokens)
            samples.append(Sample(tokens[:length], finished, token_logp[row, :length].tolist()))
        return samples

    def load_weights(self, weights: Weights) -> None:
        self.model.load_state_dict(dict(weights.tensors))

    def probe_logprobs(self, token_ids: list[int]) -> list[list[float]]:
        return [trainer_logprobs(self.model, token_ids)]

    def close(self) -> None:
        pass


def timed_sync(
    engine: Engine, weights: Weights, probe: list[int], expected: Sequence[float], tolerance: float
) -> dict[str, float]:
    """`load_weights` then `verify_sync`; the metrics PPO logs every step (each engine's probe gap
    when there are several)."""
    start = time.perf_counter()
    engine.load_weights(weights)
    seconds = time.perf_counter() - start
    gaps = verify_sync(engine, probe, expected, tolerance)
    metrics = {"sync_seconds": seconds, "sync_probe_gap": max(gaps)}
    if len(gaps) > 1:
        metrics.update({f"sync_probe_gap/engine{e}": gap for e, gap in enumerate(gaps)})
    return metrics
