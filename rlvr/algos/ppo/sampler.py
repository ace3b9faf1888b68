"""The main process's part of a PPO step: the rollout engine, the verifiers and the weight sync.

`Sampler.draw` turns a step's prompts into scored samples: it samples `samples_per_prompt`
responses per prompt and scores them with the verifiers (the no-EOS penalty replaces the reward of
a response that never stopped). `Sampler.load` takes the policy's new weights into the engine,
verified on the probe (`rlvr.rollout`); the trainer calls it before the engine samples with them,
as a step every process joins (under zero3/fsdp2 the weights are gathered from all of them). Under
`torchrun` only the main process has a sampler; the other processes receive its `Rollout`.

The reward model. When `reward.rm_multiplier` is not 0, or a row's verifier is `reward_model`, the
sampler loads `cfg.reward_model` once (a frozen copy on the main process's device, separate from
the value model it may also seed) and scores every response — the row's chat plus the response,
rendered with the reward model's chat template — in batches (`RewardModelScorer.rewards`). The reward
per response is then `verification_reward × verifier score + rm_multiplier × RM score`, or the no-EOS
penalty instead for a response that never stopped, as in open-instruct's PPO (the OLMo 2 / Tülu 3
RLVR runs). The RM score is the raw head output (the Bradley–Terry logit), untransformed, as
open-instruct adds it: it keeps the scale the reward model was trained on, stays comparable across
steps (a per-batch standardisation would move with the batch's make-up and hand the value model a
moving target), and `rm_multiplier` alone sets its weight against `verification_reward`. Its mean over
the batch is logged as `rm_score`. A `reward_model` row's verifier score is `sigmoid(raw score)` of the
same loaded model (the verifier's [0, 1] contract), handed to the verifier as the label
`{"reward": r}`, so no verifier worker loads a model: in PPO the `reward_model` verifier always uses
`cfg.reward_model`, and a checkpoint named in a row's label is ignored. Nothing is loaded when
neither needs it.

With `rollout.async_steps: 1` a background thread drives the engine: right after the sync at the
start of step k (which waits for any sampling in flight) it starts sampling step k+1's batch, which overlaps step k's scoring, forwards and
updates (vLLM computes in its own worker process, so the two really run side by side). A checkpoint
stores that look-ahead batch (`write_lookahead` / `read_lookahead`), so a resumed run trains on the
very samples the killed one had drawn.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlvr.algos.evaluation import mean_by_verifier
from rlvr.algos.ppo.batch import Prompt, Rollout
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.losses import sequence_rewards
from rlvr.rewards import BatchScorer, UnknownVerifierError, VerifierResult, resolve
from rlvr.rewards.reward_model import RewardModelScorer
from rlvr.rollout import Engine, HFEngine, Sample, Weights, timed_sync
from rlvr.vllm_engine import VLLMEngine

LOOKAHEAD_FILE = "lookahead.pt"
"""In a checkpoint (async_steps 1): the batch the engine had sampled for the next step, and its seconds."""

Drawn = tuple[list[Sample], float]
"""Samples in prompt order and the engine's seconds for them."""

REWARD_MODEL_VERIFIER = "reward_model"
"""The verifier scored with the sampler's loaded reward model (`rlvr.rewards.reward_model`)."""


def reward_model_routes(row: Mapping[str, Any]) -> list[int]:
    """Positions in the row's `dataset` (a name, or a list of names) that name the `reward_model` verifier."""
    names = row.get("dataset")
    names = names if isinstance(names, list) else [names]
    found = []
    for i, name in enumerate(names):
        try:
            if isinstance(name, str) and resolve(name) == REWARD_MODEL_VERIFIER:
                found.append(i)
        except UnknownVerifierError:
            pass
    return found


def with_rm_reward(row: Mapping[str, Any], reward: float, model: str) -> Any:
    """The row's `ground_truth` with each `reward_model` label replaced by the computed reward."""
    label = {"reward": reward, "model": model}
    routes = reward_model_routes(row)
    if not isinstance(row.get("dataset"), list):
        return label if routes else row["ground_truth"]
    labels = row["ground_truth"]
    if not isinstance(labels, list):
        return labels  # malformed: routing reports it
    return [label if i in routes else old for i, old in enumerate(labels)]


def read_lookahead(checkpoint: Path) -> Drawn | None:
    path = checkpoint / LOOKAHEAD_FILE
    if not path.is_file():
        return None
    samples, seconds = torch.load(path, weights_only=False)
    return [Sample(**s) for s in samples], seconds


class Sampler:
    """The main process's rollout engine, verifiers and weight sync (see the module docstring)."""

    def __init__(
        self,
        cfg: PPOConfig,
        tokenizer: Any,
        policy: nn.Module,
        autocast: torch.dtype | None,
        lookahead: Drawn | None = None,
        rows: Sequence[Mapping[str, Any]] = (),
        device: torch.device | None = None,
    ) -> None:
        """`policy`: the model the transformers engine samples from (unused by vLLM, which loads
        `cfg.policy`); `lookahead`: a resumed run's pending batch; `rows`:
        every row it will score (training and test), to know whether the reward model is needed;
        `device`: where the reward model scores (None: the policy's device)."""
        self.cfg = cfg
        self.tokenizer = tokenizer
        r = cfg.rollout
        self._lookahead = ThreadPoolExecutor(1, thread_name_prefix="rollout") if r.async_steps else None
        self._pending: Future[Drawn] | None = None
        """The next step's batch being sampled (async_steps 1)."""
        if lookahead is not None:
            self._pending = Future()
            self._pending.set_result(lookahead)
        self.engine: Engine
        if r.backend == "hf":
            # sampling alongside the update needs weights the update does not change under it
            self.engine = HFEngine(copy.deepcopy(policy) if self._lookahead else policy, tokenizer, autocast)
        else:
            self.engine = VLLMEngine(cfg.policy, r.vllm, seed=cfg.seed)
        self.scorer = BatchScorer(cfg.reward.workers, cfg.reward.verifier_options)
        self.reward_model = self._load_reward_model(rows, device or next(policy.parameters()).device)
        """The frozen reward model scoring responses; None when nothing needs it (the module docstring)."""

    def _load_reward_model(
        self, rows: Sequence[Mapping[str, Any]], device: torch.device
    ) -> RewardModelScorer | None:
        cfg = self.cfg
        verifier_rows = sum(bool(reward_model_routes(row)) for row in rows)
        if not cfg.reward.rm_multiplier and not verifier_rows:
            return None
        if not cfg.reward_model:
            raise ValueError(
                f"{verifier_rows} row(s) use the reward_model verifier, which PPO scores with the "
                "reward_model checkpoint; set reward_model"
            )
        scorer = RewardModelScorer(
            cfg.reward_model,
            device=str(device),
            batch_size=cfg.train.micro_batch_size,
            # prompt + response fit max_total_tokens; the margin absorbs re-tokenising the decoded text
            # (truncating would move the read-out off the EOS that closes the response)
            max_length=cfg.rollout.max_total_tokens + 64,
        )
        scorer.model.requires_grad_(False)
        return scorer

    def draw(self, prompts: Sequence[Prompt], step: int, upcoming: Sequence[Prompt] | None) -> Rollout:
        """Step `step`'s scored samples; `upcoming`: the next step's prompts (None after the last step)."""
        samples, seconds = self.rollout(prompts, step, upcoming)
        rows = [p.row for p in prompts for _ in range(self.cfg.rollout.samples_per_prompt)]
        scores, score_metrics = self.score(rows, samples)
        return Rollout(samples, scores, score_metrics, seconds)

    def rollout(self, prompts: Sequence[Prompt], step: int, upcoming: Sequence[Prompt] | None) -> Drawn:
        """This step's samples and the engine's seconds for them; the engine holds the weights of
        `step`. On-policy: sample now. async_steps 1: take the batch sampled during the last update
        and start sampling the next step's batch before returning."""
        if self._pending is None:
            samples, seconds = self._timed_sample(prompts, step)
        else:
            (samples, seconds), self._pending = self._pending.result(), None
        if self._lookahead is not None and upcoming is not None:
            self._pending = self._lookahead.submit(self._timed_sample, upcoming, step + 1)
        return samples, seconds

    def _timed_sample(self, prompts: Sequence[Prompt], step: int) -> Drawn:
        start = time.perf_counter()
        r = self.cfg.rollout
        samples = self.sample(
            prompts, r.temperature, r.samples_per_prompt, seed=self.cfg.seed * 1_000_003 + step
        )
        return samples, time.perf_counter() - start

    def sample(
        self, prompts: Sequence[Prompt], temperature: float, n: int, seed: int, max_tokens: int | None = None
    ) -> list[Sample]:
        """`n` responses per prompt, flattened in prompt order (at most `max_tokens`, default the rollout's)."""
        r = self.cfg.rollout
        limit = max_tokens or r.max_response_tokens
        budget = min(limit, r.max_total_tokens - max(len(p.ids) for p in prompts))
        if budget < 1:
            raise ValueError(f"rollout.max_total_tokens={r.max_total_tokens} leaves no room for a response")
        groups = self.engine.sample([p.ids for p in prompts], n, budget, temperature, seed)
        return [s for group in groups for s in group]

    def score(
        self, rows: Sequence[dict[str, Any]], samples: Sequence[Sample]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar rewards (`verification_reward` × verifier + `rm_multiplier` × RM score, or the no-EOS
        penalty) and their metrics."""
        texts = self._decode(samples)
        rm_rewards = self._rm_rewards(rows, texts) if self.reward_model is not None else None
        results = self._verify(rows, texts, rm_rewards)
        verifier_scores = torch.tensor([r.score for r in results], dtype=torch.float)
        stopped = torch.tensor([s.finished for s in samples])
        rm_scores = torch.tensor(rm_rewards, dtype=torch.float) if rm_rewards is not None else None
        c = self.cfg.reward
        scores = sequence_rewards(verifier_scores, stopped, c.verification_reward, c.no_eos_penalty,
                                  rm_scores, c.rm_multiplier)  # fmt: skip
        metrics = {
            "verifier_score": float(verifier_scores.mean()),
            "correct_rate": float((verifier_scores == 1).float().mean()),
            "reward": float(scores.mean()),
            "verifier_timeouts": float(sum(r.timed_out for r in results)),
        }
        if rm_scores is not None:
            metrics["rm_score"] = float(rm_scores.mean())  # raw, over every response (unfinished too)
        correct = [float(r.score == 1) for r in results]
        metrics.update({f"correct_rate/{name}": v for name, v in mean_by_verifier(rows, correct).items()})
        return scores, metrics

    def _decode(self, samples: Sequence[Sample]) -> list[str]:
        return [self.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]

    def _rm_rewards(self, rows: Sequence[Mapping[str, Any]], texts: Sequence[str]) -> list[float]:
        """The reward model's raw score of each row's chat + response (batched on the one loaded model)."""
        assert self.reward_model is not None
        return self.reward_model.rewards([row["messages"] for row in rows], texts)

    def _verify(
        self, rows: Sequence[Mapping[str, Any]], texts: Sequence[str], rm_rewards: Sequence[float] | None
    ) -> list[VerifierResult]:
        """Each response's verifier result against its row's label; `reward_model` labels become the
        response's reward from `rm_rewards` (needed when a row uses that verifier)."""
        items = []
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            label = row["ground_truth"]
            if reward_model_routes(row):
                if rm_rewards is None:
                    raise ValueError("a reward_model row needs the sampler's reward model")
                label = with_rm_reward(row, rm_rewards[i], self.cfg.reward_model or "")
            item = {"prediction": text, "ground_truth": label, "dataset": row["dataset"]}
            if "weights" in row:
                item["weights"] = row["weights"]
            items.append(item)
        return self.scorer.score(items)

    def sleep(self) -> None:
        """Let the engine free its GPU memory while the trainer updates (`rollout.vllm.sleep`)."""
        if isinstance(self.engine, VLLMEngine):
            self.engine.sleep()

    def settle(self) -> None:
        """Wait for the look-ahead sampling (it stays pending for the next step): the engine is idle."""
        if self._pending is not None:
            self._pending.result()

    def load(
        self, weights: Weights, probe: list[int], expected: Sequence[float], tolerance: float
    ) -> dict[str, float]:
        """New policy weights into the engine once it is idle, verified on `probe` against the
        trainer's log-probs `expected`; the sync's metrics."""
        self.settle()
        return timed_sync(self.engine, weights, probe, expected, tolerance)

    @torch.no_grad()
    def evaluate(self, prompts: Sequence[Prompt]) -> dict[str, float]:
        """Greedy held-out accuracy of the weights the engine holds, overall and per verifier."""
        self.settle()
        samples = self.sample(prompts, 0.0, n=1, seed=0, max_tokens=self.cfg.train.eval_max_tokens)
        rows = [p.row for p in prompts]
        texts = self._decode(samples)
        needs_rm = self.reward_model is not None and any(reward_model_routes(row) for row in rows)
        rm_rewards = self._rm_rewards(rows, texts) if needs_rm else None
        scores = [r.score for r in self._verify(rows, texts, rm_rewards)]
        metrics = {"eval/accuracy": sum(scores) / len(scores)}
        metrics.update({f"eval/accuracy/{name}": v for name, v in mean_by_verifier(rows, scores).items()})
        return metrics

    def write_lookahead(self, checkpoint: Path) -> None:
        """The pending look-ahead batch into `checkpoint` (nothing when there is none)."""
        if self._pending is not None:
            samples, seconds = self._pending.result()
            torch.save(([asdict(s) for s in samples], seconds), checkpoint / LOOKAHEAD_FILE)

    def close(self) -> None:
        """Stop the look-ahead sampling, the verifier workers and the engine."""
        if self._lookahead is not None:
            self._lookahead.shutdown(wait=True, cancel_futures=True)
        self.scorer.close()
        self.engine.close()
