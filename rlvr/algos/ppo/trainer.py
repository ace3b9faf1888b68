"""The RLVR loop: sample → verify → score with KL → advantages → clipped updates → verified sync.

One `train_step` is one rollout batch:

1. `next_prompts`: the step's prompts, a pure function of (seed, step) — resume needs nothing else.
2. `rollout`: `samples_per_prompt` responses per prompt from the engine (vLLM or transformers) —
   sampled now, or with `rollout.async_steps: 1` sampled during the previous step's update.
3. `score`: verifier rewards through `BatchScorer`; no-EOS responses get the penalty instead.
4. `forward_batch`: with the weights that sampled, the trainer's log-probs (temperature-scaled),
   the reference's log-probs, and the values (PPO) of every response token.
5. `advantages`: PPO — KL in the per-token reward, GAE, whitening; GRPO — group-relative scores.
6. `optimize`: `loss.epochs` passes × `loss.minibatches` optimizer steps, micro-batched.
7. `sync`: the new policy weights into the engine, verified on the probe (`rlvr.rollout`), once per
   step, before the engine next samples.

With `async_steps: 1` a background thread drives the engine: right after the sync at the start of
step k it starts sampling step k+1's batch, which overlaps step k's scoring, forwards and updates
(vLLM computes in its own worker process, so the two really run side by side). A checkpoint stores
that look-ahead batch, so a resumed run trains on the very samples the killed one had drawn.

Sequences are laid out `[left-padded prompt | right-padded response]`, so response token t sits at
column `P + t` for every row and its log-prob comes from the logits at column `P + t − 1`; position
ids skip the left padding, so RoPE positions equal the engine's.
"""

from __future__ import annotations

import copy
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from base_model.checkpoint import rng_state, set_rng_state
from base_model.config import ScheduleConfig
from base_model.optim import build_optimizer, lr_at
from base_model.perf import autocast_dtype
from rlvr.algos.common import load_causal_lm, load_chat_tokenizer, resolve_checkpoint
from rlvr.algos.evaluation import mean_by_verifier
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.losses import (
    entropy_from_logits,
    gae_advantages,
    group_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    policy_loss,
    sequence_rewards,
    token_logprobs,
    token_rewards,
    value_loss,
)
from rlvr.config import load_config
from rlvr.data import load_rows
from rlvr.generation import chat_prompt
from rlvr.rewards import BatchScorer, VerifierResult, verifier_name_problems
from rlvr.rollout import Engine, HFEngine, Sample, VLLMEngine, timed_sync
from rlvr.tracking import MetricsLogger, prepare_run_dir, progress, truncate_metrics

STATE_FILE = "ppo_state.pt"


@dataclass
class Prompt:
    row: dict[str, Any]
    ids: list[int]


@dataclass
class Batch:
    """One rollout batch as tensors, `[samples, ...]`; response columns start at `prompt_width`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    """`[samples, response_width]` float: 1 on response tokens (EOS included)."""
    prompt_width: int
    engine_logprobs: torch.Tensor
    scores: torch.Tensor
    """Scalar reward per sample (verifier reward or the no-EOS penalty)."""

    def response_tokens(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width :]

    def select(self, index: torch.Tensor) -> Batch:
        return Batch(
            self.input_ids[index], self.attention_mask[index], self.position_ids[index],
            self.response_mask[index], self.prompt_width, self.engine_logprobs[index], self.scores[index],
        )  # fmt: skip


def load_prompts(
    sources: Sequence[str], cfg: PPOConfig, tokenizer: Any, limit: int | None
) -> tuple[list[Prompt], int]:
    """Valid prompt rows, tokenised; prompts over `max_prompt_tokens` are counted and left out.
    Unknown verifier names stop the run here, naming the rows."""
    prompts, too_long = [], 0
    for source in sources:
        rows = load_rows(
            source, "rlvr", on_bad_row=cfg.data.on_bad_row, limit=limit,
            check=lambda _line, row: verifier_name_problems(row),
        )  # fmt: skip
        for row in rows:
            ids = tokenizer(chat_prompt(row["messages"]), add_special_tokens=False)["input_ids"]
            if len(ids) > cfg.data.max_prompt_tokens:
                too_long += 1
                continue
            prompts.append(Prompt(row, ids))
    return prompts, too_long


class PPOTrainer:
    def __init__(self, cfg: PPOConfig) -> None:
        if not cfg.policy:
            raise ValueError("policy is empty: set it to the checkpoint RL starts from (the DPO model)")
        cfg.policy = resolve_checkpoint(cfg.policy)
        self.cfg = cfg
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.autocast = autocast_dtype(cfg.train.precision, self.device)
        self.tokenizer = load_chat_tokenizer(cfg.policy)
        self.prompts, too_long = load_prompts(cfg.data.train, cfg, self.tokenizer, cfg.data.limit)
        self.test_prompts, _ = load_prompts(cfg.data.test, cfg, self.tokenizer, cfg.data.test_limit)
        if too_long:
            print(f"ppo: left out {too_long} prompt(s) longer than data.max_prompt_tokens="
                  f"{cfg.data.max_prompt_tokens}", file=sys.stderr)  # fmt: skip
        if not self.prompts:
            raise ValueError("no training prompts left: check data.train and data.max_prompt_tokens")
        r = cfg.rollout
        self.episodes_per_step = r.prompts_per_step * r.samples_per_prompt
        self.max_steps = max(1, cfg.train.total_episodes // self.episodes_per_step)
        self.schedule = ScheduleConfig(
            kind=cfg.optim.schedule,
            warmup_steps=round(cfg.optim.warmup_ratio * self.max_steps),
            final_lr_ratio=cfg.optim.final_lr_ratio,
        )
        self.ckpt_dir = cfg.run_dir / "checkpoints"
        self.step = 0
        self.too_long = too_long
        self._order: tuple[int, np.ndarray] | None = None
        # One pass over the batch with the KL in the loss (GRPO's default): the update's own first
        # forward runs on the weights that sampled, so its detached log-probs are the old ones —
        # a separate no-grad policy forward would compute the same numbers again.
        loss = cfg.loss
        self.old_from_update = loss.epochs == 1 and loss.minibatches == 1 and cfg.kl.placement == "loss"

        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.seed)
        self.policy = load_causal_lm(cfg.policy, cfg.train.attention).to(self.device).train()
        self.reference = load_causal_lm(cfg.policy, cfg.train.attention).to(self.device).eval()
        self.reference.requires_grad_(False)
        self.value = self._load_value_model() if cfg.algo == "ppo" else None
        self.optimizers = [build_optimizer(self.policy, cfg.optim)]
        if self.value is not None:
            self.optimizers.append(build_optimizer(self.value, cfg.optim))
        self.probe = self.tokenizer(r.probe, add_special_tokens=False)["input_ids"]

        self._lookahead = ThreadPoolExecutor(1, thread_name_prefix="rollout") if r.async_steps else None
        self._pending: Future[tuple[list[Sample], float]] | None = None
        """The next step's batch being sampled (async_steps 1): samples and the seconds they took."""

        checkpoints = sorted((p for p in self.ckpt_dir.glob("step*") if _step_of(p) >= 0), key=_step_of)
        checkpoints = checkpoints if cfg.train.resume else []
        self.resumed_from = checkpoints[-1] if checkpoints else None
        if self.resumed_from is not None:
            self.load_checkpoint(self.resumed_from)
        self.engine: Engine = self._build_engine()
        self.engine_step = self.step if isinstance(self.engine, HFEngine) else 0
        """The policy step whose weights the engine holds (a vLLM engine starts from `cfg.policy`)."""
        self.scorer = BatchScorer(cfg.reward.workers, cfg.reward.verifier_options)

        prepare_run_dir(cfg)
        if self.resumed_from is not None:
            truncate_metrics(cfg.run_dir / "metrics.jsonl", self.step)
        self.logger = MetricsLogger(cfg.run_dir, cfg, resume=self.resumed_from is not None)

    # ------------------------------------------------------------------ set-up

    def _load_value_model(self) -> torch.nn.Module:
        from transformers import AutoConfig, AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from base_model.model import init_weights
        from rlvr.algos.reward_model import init_score_head

        cfg = self.cfg
        if cfg.value_init == "fresh":
            config = AutoConfig.from_pretrained(cfg.policy, num_labels=1)
            model = AutoModelForSequenceClassification.from_config(
                config, dtype=torch.float32, attn_implementation=cfg.train.attention
            )
            init_weights(model)
        else:
            source = resolve_checkpoint(cfg.reward_model) if cfg.value_init == "reward_model" else cfg.policy
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # a new score head is expected when starting from the policy
            try:
                model = AutoModelForSequenceClassification.from_pretrained(
                    source, num_labels=1, dtype=torch.float32, attn_implementation=cfg.train.attention
                )
            finally:
                hf_logging.set_verbosity(verbosity)
        if cfg.value_init != "reward_model":
            init_score_head(model, cfg.seed)
        return model.to(self.device).train()

    def _build_engine(self) -> Engine:
        if self.cfg.rollout.backend == "hf":
            # sampling alongside the update needs weights the update does not change under it
            model = copy.deepcopy(self.policy) if self._lookahead else self.policy
            return HFEngine(model, self.tokenizer, self.autocast)
        return VLLMEngine(self.cfg.policy, self.cfg.rollout.vllm, seed=self.cfg.seed)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Path:
        cfg = self.cfg
        self._announce()
        steps = progress(range(self.step, self.max_steps), total=self.max_steps - self.step, desc=cfg.algo,
                         enabled=cfg.log.progress)  # fmt: skip
        last_saved: Path | None = None
        try:
            if self.test_prompts and cfg.train.eval_at_start and self.step == 0:
                self.logger.log(0, self.evaluate())
            for _ in steps:
                metrics = self.train_step()
                self.step += 1
                if self.test_prompts and (
                    self.step % cfg.train.eval_every == 0 or self.step == self.max_steps
                ):
                    metrics.update(self.evaluate())
                self.logger.log(self.step, metrics)
                if self.step % cfg.train.save_every == 0 or self.step == self.max_steps:
                    last_saved = self.save_checkpoint()
        finally:
            self.close()
        return last_saved or self.ckpt_dir / f"step{self.step}"

    def close(self) -> None:
        """Stop the look-ahead sampling, the verifier workers, the engine and the metrics log."""
        if self._lookahead is not None:
            self._lookahead.shutdown(wait=True, cancel_futures=True)
        self.scorer.close()
        self.engine.close()
        self.logger.close()

    def train_step(self) -> dict[str, float]:
        started = time.perf_counter()
        prompts = self.next_prompts(self.step)
        samples, sample_seconds, sync_metrics = self.rollout(prompts)
        generated = time.perf_counter()
        rows = [p.row for p in prompts for _ in range(self.cfg.rollout.samples_per_prompt)]
        scores, score_metrics = self.score(rows, samples)
        batch = self.collate(prompts, samples, scores)
        old = self.forward_batch(batch)
        advantages, returns, reward_metrics = self.advantages(batch, old)
        update_metrics = self.optimize(batch, old, advantages, returns)
        trained = time.perf_counter()
        response_tokens = float(batch.response_mask.sum())
        lengths = batch.response_mask.sum(1)
        return {
            **score_metrics,
            **reward_metrics,
            **update_metrics,
            **sync_metrics,
            "lr": self.lr(),
            "episodes": (self.step + 1) * self.episodes_per_step,
            "stop_rate": float(torch.tensor([s.finished for s in samples], dtype=torch.float).mean()),
            "response_length": float(lengths.mean()),
            "kl": float((kl_per_token(old["logprobs"], old["ref_logprobs"], self.cfg.kl.estimator)
                         * batch.response_mask).sum(1).mean()),
            "logprob_gap_mean": float(masked_mean((old["logprobs"] - batch.engine_logprobs).abs(), batch.response_mask)),
            "logprob_gap_max": float(((old["logprobs"] - batch.engine_logprobs).abs() * batch.response_mask).max()),
            "gen_tokens_per_s": response_tokens / max(sample_seconds, 1e-9),
            "rollout_wait_seconds": generated - started,
            "train_tokens_per_s": float(batch.attention_mask.sum()) * self.cfg.loss.epochs
            / max(trained - generated, 1e-9),
            "step_seconds": time.perf_counter() - started,
        }  # fmt: skip

    # ------------------------------------------------------------------ the step's parts

    def next_prompts(self, step: int) -> list[Prompt]:
        """The prompts of `step`: consecutive slices of per-epoch seeded permutations."""
        n, per_step = len(self.prompts), self.cfg.rollout.prompts_per_step
        picked = []
        for k in range(step * per_step, (step + 1) * per_step):
            epoch, offset = divmod(k, n)
            picked.append(self.prompts[self._epoch_order(epoch)[offset]])
        return picked

    def rollout(self, prompts: Sequence[Prompt]) -> tuple[list[Sample], float, dict[str, float]]:
        """This step's samples, the engine's seconds for them, and the sync's metrics. On-policy: sync,
        then sample. async_steps 1: take the batch sampled during the last update, sync, and start
        sampling the next step's batch before returning."""
        if self._pending is None:
            sync_metrics = self.sync()
            samples, seconds = self._timed_sample(prompts, self.step)
        else:
            (samples, seconds), self._pending = self._pending.result(), None
            sync_metrics = {}
        if self._lookahead is not None and self.step + 1 < self.max_steps:
            sync_metrics.update(self.sync())
            self._pending = self._lookahead.submit(
                self._timed_sample, self.next_prompts(self.step + 1), self.step + 1
            )
        return samples, seconds, sync_metrics

    def _timed_sample(self, prompts: Sequence[Prompt], step: int) -> tuple[list[Sample], float]:
        start = time.perf_counter()
        r = self.cfg.rollout
        samples = self.sample(
            prompts, r.temperature, r.samples_per_prompt, seed=self.cfg.seed * 1_000_003 + step
        )
        return samples, time.perf_counter() - start

    def _engine_idle(self) -> None:
        """Wait until the look-ahead batch is sampled (its result stays pending for the next step)."""
        if self._pending is not None:
            self._pending.result()

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (
                epoch,
                np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.prompts)),
            )
        return self._order[1]

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
        """Scalar rewards (verifier × `verification_reward`, or the no-EOS penalty) and their metrics."""
        results = self._verify(rows, samples)
        verifier_scores = torch.tensor([r.score for r in results], dtype=torch.float)
        stopped = torch.tensor([s.finished for s in samples])
        c = self.cfg.reward
        scores = sequence_rewards(verifier_scores, stopped, c.verification_reward, c.no_eos_penalty)
        metrics = {
            "verifier_score": float(verifier_scores.mean()),
            "correct_rate": float((verifier_scores == 1).float().mean()),
            "reward": float(scores.mean()),
            "verifier_timeouts": float(sum(r.timed_out for r in results)),
        }
        correct = [float(r.score == 1) for r in results]
        metrics.update({f"correct_rate/{name}": v for name, v in mean_by_verifier(rows, correct).items()})
        return scores, metrics

    def _verify(self, rows: Sequence[dict[str, Any]], samples: Sequence[Sample]) -> list[VerifierResult]:
        """Each sample's verifier result against its row's label."""
        texts = [self.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]
        return self.scorer.score(
            [{"prediction": t, "ground_truth": row["ground_truth"], "dataset": row["dataset"]}
             for t, row in zip(texts, rows, strict=True)]
        )  # fmt: skip

    def collate(self, prompts: Sequence[Prompt], samples: Sequence[Sample], scores: torch.Tensor) -> Batch:
        n = self.cfg.rollout.samples_per_prompt
        prompt_ids = [p.ids for p in prompts for _ in range(n)]
        width = max(len(p) for p in prompt_ids)
        response_width = max(len(s.token_ids) for s in samples)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(samples), width + response_width), pad, dtype=torch.long)
        attention = torch.zeros_like(ids)
        response_mask = torch.zeros((len(samples), response_width))
        engine_logprobs = torch.zeros((len(samples), response_width))
        for row, (prompt, sample) in enumerate(zip(prompt_ids, samples, strict=True)):
            length = len(sample.token_ids)
            ids[row, width - len(prompt) : width] = torch.tensor(prompt)
            ids[row, width : width + length] = torch.tensor(sample.token_ids)
            attention[row, width - len(prompt) : width + length] = 1
            response_mask[row, :length] = 1
            engine_logprobs[row, :length] = torch.tensor(sample.logprobs)
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        return Batch(ids, attention, positions, response_mask, width, engine_logprobs, scores)

    def _policy_forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, logits) of the response tokens under `model`, at the sampling temperature."""
        with self._autocast():
            logits = model(
                input_ids=batch.input_ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
                position_ids=batch.position_ids.to(self.device),
            ).logits
        logits = logits[:, batch.prompt_width - 1 : -1].float() / self.cfg.rollout.temperature
        return token_logprobs(logits, batch.response_tokens().to(self.device)), logits

    def _values(self, batch: Batch) -> torch.Tensor:
        """V(state before each response token): the value head on every hidden state."""
        assert self.value is not None
        with self._autocast():
            hidden = self.value.model(
                input_ids=batch.input_ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
                position_ids=batch.position_ids.to(self.device),
            ).last_hidden_state
            values = self.value.score(hidden).squeeze(-1)
        return values[:, batch.prompt_width - 1 : -1].float()

    @torch.no_grad()
    def forward_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Log-probs (policy, reference) and values with the weights that sampled, micro-batched.
        With `old_from_update` the policy's log-probs are left as zeros for the update to fill in."""
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for index in self._micro_batches(torch.arange(len(batch.scores))):
            micro = batch.select(index)
            if not self.old_from_update:
                parts["logprobs"].append(self._policy_forward(self.policy, micro)[0].cpu())
            parts["ref_logprobs"].append(self._policy_forward(self.reference, micro)[0].cpu())
            if self.value is not None:
                parts["values"].append(self._values(micro).cpu())
        old = {key: torch.cat(values) * batch.response_mask for key, values in parts.items()}
        old.setdefault("logprobs", torch.zeros_like(batch.response_mask))
        return old

    def advantages(
        self, batch: Batch, old: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        """Per-token advantages (and PPO's returns) with the KL where `kl.placement` puts it."""
        cfg, mask = self.cfg, batch.response_mask
        metrics: dict[str, float] = {}
        if cfg.algo == "grpo":
            per_sample = group_advantages(batch.scores, cfg.rollout.samples_per_prompt)
            return per_sample.unsqueeze(1) * mask, None, metrics
        kl = kl_per_token(old["logprobs"], old["ref_logprobs"], cfg.kl.estimator) * mask
        beta = cfg.kl.beta if cfg.kl.placement == "reward" else 0.0
        rewards = token_rewards(batch.scores, kl, mask, beta)
        advantages, returns = gae_advantages(rewards, old["values"], mask, cfg.loss.gamma, cfg.loss.lam)
        if cfg.loss.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        metrics["total_reward"] = float(rewards.sum(1).mean())
        metrics["value_mean"] = float(masked_mean(old["values"], mask))
        return advantages, returns, metrics

    def optimize(
        self,
        batch: Batch,
        old: dict[str, torch.Tensor],
        advantages: torch.Tensor,
        returns: torch.Tensor | None,
    ) -> dict[str, float]:
        cfg = self.cfg
        totals: dict[str, float] = {}
        weight = 1.0 / (cfg.loss.epochs * cfg.loss.minibatches)
        generator = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
        for _ in range(cfg.loss.epochs):
            order = torch.randperm(len(batch.scores), generator=generator)
            for minibatch in order.chunk(cfg.loss.minibatches):
                for key, value in self._minibatch_update(batch, old, advantages, returns, minibatch).items():
                    _accumulate(totals, key, value, weight)
        return totals

    def _minibatch_update(
        self, batch: Batch, old: dict[str, torch.Tensor], advantages: torch.Tensor, returns: torch.Tensor | None,
        minibatch: torch.Tensor,
    ) -> dict[str, float]:  # fmt: skip
        cfg, lr = self.cfg, self.lr()
        tokens = float(batch.response_mask[minibatch].sum())
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for index in self._micro_batches(minibatch):
            micro, mask = batch.select(index), batch.response_mask[index].to(self.device)
            share = float(mask.sum()) / tokens  # micro-batch losses are token means: weight by tokens
            logprobs, logits = self._policy_forward(self.policy, micro)
            if self.old_from_update:
                old["logprobs"][index] = logprobs.detach().cpu() * mask.cpu()
            pg, stats = policy_loss(logprobs, old["logprobs"][index].to(self.device),
                                    advantages[index].to(self.device), mask, cfg.loss.clip)  # fmt: skip
            loss = pg
            if cfg.kl.placement == "loss":
                kl = kl_per_token(logprobs, old["ref_logprobs"][index].to(self.device), cfg.kl.estimator)
                loss = loss + cfg.kl.beta * masked_mean(kl, mask)
                _accumulate(sums, "kl_loss", float(masked_mean(kl.detach(), mask)), share)
            if self.value is not None and returns is not None:
                vf, vf_stats = value_loss(self._values(micro), old["values"][index].to(self.device),
                                          returns[index].to(self.device), mask, cfg.loss.value_clip)  # fmt: skip
                loss = loss + cfg.loss.value_coef * vf
                stats = {**stats, **vf_stats, "value_loss": vf.detach()}
            if not torch.isfinite(loss):
                self._save_bad_batch(batch, minibatch)
            (loss * share).backward()
            stats = {
                **stats,
                "policy_loss": pg.detach(),
                "entropy": masked_mean(entropy_from_logits(logits.detach()), mask),
            }
            for key, value in stats.items():
                _accumulate(sums, key, float(value), share)
        for name, model, optimizer in zip(
            ("policy", "value"), self._trained_models(), self.optimizers, strict=False
        ):
            if cfg.optim.grad_clip > 0:
                sums[f"grad_norm/{name}"] = float(
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                )
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
        return sums

    def sync(self) -> dict[str, float]:
        """The current policy weights into the engine, verified on the probe; nothing when it has them."""
        if self.engine_step == self.step:
            return {}
        if isinstance(self.engine, HFEngine) and self.engine.model is self.policy:
            metrics: dict[str, float] = {}  # the engine samples from the policy itself
        else:
            metrics = timed_sync(self.engine, self.policy, self.probe, self.cfg.rollout.sync_tolerance)
        self.engine_step = self.step
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Greedy held-out accuracy, overall and per verifier."""
        self._engine_idle()
        self.sync()
        samples = self.sample(self.test_prompts, 0.0, n=1, seed=0, max_tokens=self.cfg.train.eval_max_tokens)
        rows = [p.row for p in self.test_prompts]
        scores = [r.score for r in self._verify(rows, samples)]
        metrics = {"eval/accuracy": sum(scores) / len(scores)}
        metrics.update({f"eval/accuracy/{name}": v for name, v in mean_by_verifier(rows, scores).items()})
        return metrics

    # ------------------------------------------------------------------ helpers

    def lr(self) -> float:
        return lr_at(self.step, self.cfg.optim.lr, self.max_steps, self.schedule)

    def _trained_models(self) -> list[torch.nn.Module]:
        return [self.policy] if self.value is None else [self.policy, self.value]

    def _micro_batches(self, index: torch.Tensor) -> list[torch.Tensor]:
        return list(index.split(self.cfg.train.micro_batch_size))

    def _autocast(self) -> Any:
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _save_bad_batch(self, batch: Batch, minibatch: torch.Tensor) -> None:
        path = self.cfg.run_dir / f"nonfinite-step{self.step + 1}.pt"
        torch.save({"batch": batch, "minibatch": minibatch}, path)
        raise FloatingPointError(
            f"non-finite loss at step {self.step + 1}; the rollout batch is saved in {path}. Lower optim.lr "
            "or check the rewards; resume continues from the last checkpoint."
        )

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """policy/ and value/ as Hugging Face checkpoints, plus optimizers, step and RNG."""
        from base_model.checkpoint import save_model

        path = self.ckpt_dir / f"step{self.step}"
        tmp = path.with_name(path.name + ".tmp")
        save_model(self.policy, self.tokenizer, tmp / "policy")
        if self.value is not None:
            save_model(self.value, self.tokenizer, tmp / "value")
        pending = self._pending.result() if self._pending is not None else None
        torch.save(
            {
                "step": self.step,
                "optimizers": [o.state_dict() for o in self.optimizers],
                "rng": rng_state(),
                "pending": None if pending is None else ([asdict(s) for s in pending[0]], pending[1]),
            },
            tmp / STATE_FILE,
        )
        tmp.rename(path)  # complete or absent: a kill mid-save leaves only the .tmp folder
        return path

    def load_checkpoint(self, path: Path) -> None:
        from safetensors.torch import load_file

        self.policy.load_state_dict(load_file(str(path / "policy" / "model.safetensors")))
        if self.value is not None:
            self.value.load_state_dict(load_file(str(path / "value" / "model.safetensors")))
        state = torch.load(path / STATE_FILE, weights_only=False)
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        self.step = state["step"]
        set_rng_state(state["rng"])
        if state.get("pending") is not None:  # the look-ahead batch the run had sampled for this step
            samples, seconds = state["pending"]
            self._pending = Future()
            self._pending.set_result(([Sample(**s) for s in samples], seconds))

    def _announce(self) -> None:
        cfg = self.cfg
        where = f"resuming from {self.resumed_from} at step {self.step}" if self.resumed_from else "starting"
        print(
            f"{cfg.algo}: {where}; {len(self.prompts):,} prompts ({self.too_long} too long, left out), "
            f"{self.max_steps} steps × {self.episodes_per_step} episodes, engine {cfg.rollout.backend}, "
            f"KL {cfg.kl.estimator} in the {cfg.kl.placement} (beta {cfg.kl.beta})",
            file=sys.stderr,
        )


EXTREMES = {"ratio_max": max, "ratio_min": min}
"""Statistics aggregated over micro-batches and updates by their extreme, not their weighted mean."""


def _accumulate(totals: dict[str, float], key: str, value: float, weight: float) -> None:
    if key in EXTREMES:
        totals[key] = EXTREMES[key](totals.get(key, value), value)
    else:
        totals[key] = totals.get(key, 0.0) + value * weight


def _step_of(path: Path) -> int:
    digits = path.name.removeprefix("step")
    return int(digits) if digits.isdigit() else -1


def train(cfg: PPOConfig) -> Path:
    return PPOTrainer(cfg).fit()


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rlvr ppo", description="PPO / GRPO with verifiable rewards.")
    parser.add_argument("--config", required=True, help="e.g. configs/ppo/tiny.yaml")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(PPOConfig, args.config, overrides)
    final = train(cfg)
    print(f"final checkpoint: {final}")
    return 0
