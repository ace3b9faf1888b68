"""The RLVR loop: sample → verify → score with KL → advantages → clipped updates → verified sync.

One `train_step` is one rollout batch:

1. `next_prompts`: the step's prompts, a pure function of (seed, step) — resume needs nothing else.
2. `sync_engine`: the policy's weights since the engine last took them, verified on the probe
   (`rlvr.rollout`); a step every process joins (under zero3/fsdp2 each tensor is gathered from the
   shards as it streams). Also before an evaluation.
3. `Sampler.rollout`: `samples_per_prompt` responses per prompt from the engine (vLLM or transformers) —
   sampled now, or with `rollout.async_steps: 1` sampled during the previous step's update.
4. `Sampler.score`: verifier rewards through `BatchScorer` (plus `rm_multiplier` × the reward model's
   score); no-EOS responses get the penalty instead.
5. `forward_batch`: with the weights that sampled, the trainer's log-probs (temperature-scaled),
   the reference's log-probs, and the values (PPO) of every response token.
6. `advantages`: PPO — KL in the per-token reward, GAE, whitening; GRPO — group-relative scores.
7. `optimize`: `loss.epochs` passes × `loss.minibatches` optimizer steps, micro-batched.

Sampling, scoring and the periodic evaluation are the main process's (`rlvr.algos.ppo.sampler`,
which also explains `async_steps: 1`); under `torchrun` every process computes its share of steps
5–7 (`rlvr.algos.ppo.distributed`, "Scaling out").
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from rlvr.algos.common import load_causal_lm, load_chat_tokenizer
from rlvr.algos.ppo.batch import Batch, Prompt, collate, load_prompts
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.distributed import TokenValues, frozen_model
from rlvr.algos.ppo.losses import (
    entropy_from_logits,
    gae_advantages,
    group_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_rewards,
    value_loss,
)
from rlvr.algos.ppo.sampler import Sampler, read_lookahead
from rlvr.checkpoints import resolve_model
from rlvr.config import ConfigError, load_config
from rlvr.logprobs import token_logprobs
from rlvr.rollout import FP32_TOLERANCE, measured_tolerance, start_limit, trainer_logprobs, verify_sync
from rlvr.tracking import progress
from rlvr.train.checkpoint import read_state_dict
from rlvr.train.core import Schedule, TrainCore, epoch_permutation, hf_writer
from rlvr.train.distributed import (
    all_reduce,
    all_reduce_metrics,
    broadcast_from_main,
    fit_then_leave,
    gather_rows,
    rank_rows,
)
from rlvr.train.engines import ModelEngines

Forward = Callable[..., torch.Tensor]
"""`(input_ids=, attention_mask=, position_ids=) → logits` (per-token values for the value model)."""


class PPOTrainer:
    def __init__(self, cfg: PPOConfig) -> None:
        if not cfg.policy:
            raise ValueError("policy is empty: set it to the checkpoint RL starts from (the DPO model)")
        # first, so a wrong path fails in a second; the engine, tokenizer and models get the local folders
        cfg.policy = str(resolve_model(cfg.policy, "causal_lm", "policy"))
        if cfg.reward_model:  # named, so checked, even where this run may not load it (--reward_model=null)
            cfg.reward_model = str(resolve_model(cfg.reward_model, "sequence_classification", "reward_model"))
        self.cfg = cfg
        t = cfg.train
        self.core = TrainCore(cfg, t, timeout=t.dist_timeout)
        self.dist = self.core.dist
        self.device = self.dist.device
        self.tokenizer = load_chat_tokenizer(cfg.policy)
        self.prompts, too_long = load_prompts(cfg.data.train, cfg, self.tokenizer, cfg.data.limit)
        # evaluation needs the engine, which only the main process has
        main = self.dist.is_main
        self.test_prompts = (
            load_prompts(cfg.data.test, cfg, self.tokenizer, cfg.data.test_limit)[0] if main else []
        )
        if too_long and main:
            print(f"ppo: left out {too_long} prompt(s) longer than data.max_prompt_tokens="
                  f"{cfg.data.max_prompt_tokens}", file=sys.stderr)  # fmt: skip
        if not self.prompts:
            raise ValueError("no training prompts left: check data.train and data.max_prompt_tokens")
        self.episodes_per_step = cfg.rollout.prompts_per_step * cfg.rollout.samples_per_prompt
        self.accumulation = self._micro_batches_per_update()
        self.max_steps = max(1, t.total_episodes // self.episodes_per_step)
        o = cfg.optim
        self.schedule = Schedule(
            o.lr, self.max_steps, o.schedule, o.warmup_ratio, final_lr_ratio=o.final_lr_ratio
        )
        self.step = 0
        self.tokens = 0
        self.too_long = too_long
        self._order: tuple[int, np.ndarray] | None = None
        # One pass over the batch with the KL in the loss (GRPO's default): the update's own first
        # forward runs on the weights that sampled, so its detached log-probs are the old ones —
        # a separate no-grad policy forward would compute the same numbers again.
        loss = cfg.loss
        self.old_from_update = loss.epochs == 1 and loss.minibatches == 1 and cfg.kl.placement == "loss"

        if t.threads:
            torch.set_num_threads(t.threads)
        torch.manual_seed(cfg.seed)
        on_device = not self.core.sharded  # the sharded engines move each shard to the device themselves
        self.policy = load_causal_lm(cfg.policy, t.attention).train()
        self.reference = frozen_model(load_causal_lm(cfg.policy, t.attention), self.core)
        self.value = self._load_value_model() if cfg.algo == "ppo" else None
        self.token_values = TokenValues(self.value) if self.value is not None else None
        if on_device:
            for model in (self.policy, self.value):
                if model is not None:
                    model.to(self.device)
        if t.compile:
            self._compile_models()
        self.resumed_from = self.core.resumed_from
        if self.resumed_from is not None and not t.uses_deepspeed:
            self._load_weights(self.resumed_from)  # DeepSpeed restores the modules with its own state
        self.train_engines = self._build_train_engines()
        if self.resumed_from is not None:
            self.load_checkpoint(self.resumed_from)

        # The main process samples, verifies, evaluates and logs. vLLM engines take the policy's weights
        # from the training engine at each sync, gathered tensor by tensor under zero3/fsdp2 (`sync_engine`).
        # The transformers engine samples from the policy itself, or from a whole copy on the main
        # process when the policy is sharded (or changes under the look-ahead sampling).
        r = cfg.rollout
        rollout_copy = None
        if self.core.sharded and main and r.backend == "hf":
            rollout_copy = load_causal_lm(cfg.policy, t.attention).to(self.device).eval()
        self.engine_follows_policy = r.backend == "hf" and not self.core.sharded and not r.async_steps
        """The engine samples from the trained policy object itself: there is nothing to sync."""
        self.engine_step = self.step if r.backend == "hf" and not self.core.sharded else 0
        """The policy step whose weights the engine holds (vLLM engines and the copy start from `cfg.policy`)."""
        self.probe = self.tokenizer(r.probe, add_special_tokens=False)["input_ids"]
        self.evaluates = broadcast_from_main(bool(self.test_prompts), self.dist)
        self.sampler: Sampler | None = None
        if main:
            lookahead = read_lookahead(self.resumed_from) if self.resumed_from is not None else None
            self.sampler = Sampler(cfg, self.tokenizer, rollout_copy or self.policy, self.core.autocast_dtype,
                                   lookahead, rows=[p.row for p in (*self.prompts, *self.test_prompts)],
                                   device=self.device)  # fmt: skip
        self.sync_tolerance = r.sync_tolerance if r.sync_tolerance is not None else FP32_TOLERANCE
        """The largest probe gap a sync may leave (the transformers engine computes in fp32, as the trainer)."""
        if r.backend == "vllm":
            self._verify_engine_start()
        self.core.open_run(self.step)

    # ------------------------------------------------------------------ set-up

    def _load_value_model(self) -> torch.nn.Module:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from base_model.model import init_weights
        from rlvr.algos.reward_model import init_score_head, load_score_model

        cfg = self.cfg
        if cfg.value_init == "fresh":
            config = AutoConfig.from_pretrained(cfg.policy, num_labels=1)
            model = AutoModelForSequenceClassification.from_config(
                config, dtype=torch.float32, attn_implementation=cfg.train.attention
            )
            init_weights(model)
            init_score_head(model, cfg.seed)
        elif cfg.value_init == "reward_model":
            assert cfg.reward_model is not None
            model = load_score_model(cfg.reward_model, cfg.train.attention, cfg.seed, new_head=False)
        else:
            model = load_score_model(cfg.policy, cfg.train.attention, cfg.seed, new_head=True)
        return model.train()

    def _compile_models(self) -> None:
        """Compiled in place (`Module.compile`), so state dicts, checkpoints and weight syncs keep their names."""
        for model in (self.policy, self.reference, self.value):
            if model is not None:
                model.compile(dynamic=True)

    def _build_train_engines(self) -> ModelEngines:
        t, optim = self.cfg.train, self.cfg.optim
        models: dict[str, torch.nn.Module] = {"policy": self.policy}
        if self.token_values is not None:
            models["value"] = self.token_values
        return ModelEngines(
            {
                name: self.core.build_engine(
                    model, optim, t.micro_batch_size, self.accumulation, optim.grad_clip
                )
                for name, model in models.items()
            }
        )

    def _probe_logprobs(self, model: torch.nn.Module) -> list[float] | None:
        """`model`'s log-probs of the probe: a forward every process runs under zero3/fsdp2; the main
        process's alone otherwise (None elsewhere)."""
        if self.core.sharded or self.dist.is_main:
            return trainer_logprobs(model, self.probe, self.device)
        return None

    def _verify_engine_start(self) -> None:
        """Do the vLLM engines serve the checkpoint they loaded — the reference's weights — as the
        trainer computes it? Fails before the first rollout; sets every later sync's tolerance."""
        expected = self._probe_logprobs(self.reference)
        if self.sampler is None:
            return
        assert expected is not None
        configured, engine_dtype = self.cfg.rollout.sync_tolerance, self.sampler.engine.dtype
        limit = configured if configured is not None else start_limit(engine_dtype)
        gaps = verify_sync(self.sampler.engine, self.probe, expected, limit)
        self.sync_tolerance = configured if configured is not None else measured_tolerance(gaps)
        print(f"{self.cfg.algo}: the vLLM engines match the starting weights on the probe (max log-prob gap "
              f"{max(gaps):.2g}, {str(engine_dtype).removeprefix('torch.')}); every sync must stay within "
              f"{self.sync_tolerance:.2g}", file=sys.stderr)  # fmt: skip

    def sync_engine(self) -> dict[str, float]:
        """The policy's current weights into the rollout engine, verified on the probe, when it holds
        older ones: a step every process joins. Under zero3/fsdp2 the weights stream as they are
        gathered, a tensor at a time, from every process's shards; otherwise the main process syncs
        alone. Returns the sync's metrics (the main process's; {} elsewhere)."""
        if self.engine_step == self.step:
            return {}
        self.engine_step = self.step
        if self.engine_follows_policy or not (self.core.sharded or self.dist.is_main):
            return {}
        expected = self._probe_logprobs(self.policy)
        weights = self.train_engines["policy"].weights()
        if self.sampler is None:
            for _ in weights.tensors:  # this process's part of each gather
                pass
            return {}
        assert expected is not None
        return self.sampler.load(weights, self.probe, expected, self.sync_tolerance)

    def _micro_batches_per_update(self) -> int:
        """Micro-batches each process runs per optimizer step. Processes reduce gradients together,
        so they must run the same number: the batch splits into minibatches × processes equal shares."""
        minibatches, world = self.cfg.loss.minibatches, self.dist.world
        if world > 1 and self.episodes_per_step % (minibatches * world):
            raise ConfigError(
                f"{self.episodes_per_step} episodes per step (rollout.prompts_per_step × samples_per_prompt) "
                f"do not split evenly into loss.minibatches {minibatches} × {world} processes; change one"
            )
        return math.ceil(self.episodes_per_step / (minibatches * world) / self.cfg.train.micro_batch_size)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Path:
        cfg = self.cfg
        self._announce()
        steps = progress(range(self.step, self.max_steps), total=self.max_steps - self.step, desc=cfg.algo,
                         enabled=cfg.log.progress and self.dist.is_main)  # fmt: skip
        last_saved: Path | None = None
        try:
            if self.evaluates and cfg.train.eval_at_start and self.step == 0:
                self._log(0, self.evaluate())
            for _ in steps:
                metrics = self.train_step()
                self.step += 1
                if self.evaluates and (self.step % cfg.train.eval_every == 0 or self.step == self.max_steps):
                    metrics.update(self.evaluate())
                self._log(self.step, metrics)
                if self.step % cfg.train.save_every == 0 or self.step == self.max_steps:
                    last_saved = self.save_checkpoint()
        finally:
            self.close()
        assert last_saved is not None or self.resumed_from is not None
        return last_saved or self.resumed_from  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the sampler (look-ahead, verifier workers, engine) and the metrics log."""
        if self.sampler is not None:
            self.sampler.close()
        self.core.close()

    def train_step(self) -> dict[str, float]:
        started = time.perf_counter()
        prompts = self.next_prompts(self.step)
        upcoming = self.next_prompts(self.step + 1) if self.step + 1 < self.max_steps else None
        sync_metrics = self.sync_engine()
        drawn = broadcast_from_main(
            self.sampler.draw(prompts, self.step, upcoming) if self.sampler is not None else None, self.dist
        )
        if self.sampler is not None:
            self.sampler.sleep()
        generated = time.perf_counter()
        batch = collate(prompts, drawn, self.tokenizer.pad_token_id)
        old = self.forward_batch(batch)
        advantages, returns, reward_metrics = self.advantages(batch, old)
        update_metrics = self.optimize(batch, old, advantages, returns)
        self.tokens += int(batch.attention_mask.sum()) * self.cfg.loss.epochs
        if self.old_from_update:  # each process filled in the rows it trained on
            all_reduce(old["logprobs"], self.dist)
        trained = time.perf_counter()
        response_tokens = float(batch.response_mask.sum())
        lengths = batch.response_mask.sum(1)
        return {
            **drawn.metrics,
            **sync_metrics,
            **reward_metrics,
            **update_metrics,
            "lr": self.lr(),
            "episodes": (self.step + 1) * self.episodes_per_step,
            "stop_rate": float(torch.tensor([s.finished for s in drawn.samples], dtype=torch.float).mean()),
            "response_length": float(lengths.mean()),
            "kl": float((kl_per_token(old["logprobs"], old["ref_logprobs"], self.cfg.kl.estimator)
                         * batch.response_mask).sum(1).mean()),
            "logprob_gap_mean": float(masked_mean((old["logprobs"] - batch.engine_logprobs).abs(), batch.response_mask)),
            "logprob_gap_max": float(((old["logprobs"] - batch.engine_logprobs).abs() * batch.response_mask).max()),
            "gen_tokens_per_s": response_tokens / max(drawn.seconds, 1e-9),
            "rollout_wait_seconds": generated - started,
            "train_tokens_per_s": float(batch.attention_mask.sum()) * self.cfg.loss.epochs
            / max(trained - generated, 1e-9),
            "step_seconds": time.perf_counter() - started,
            **self.core.memory_metrics(self.train_engines),
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

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_permutation(self.cfg.seed, epoch, len(self.prompts)))
        return self._order[1]

    def _policy_forward(self, forward: Forward, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, logits) of the response tokens, at the sampling temperature."""
        with self.core.autocast():
            logits = forward(**batch.model_inputs(self.device))
        logits = logits[:, batch.prompt_width - 1 : -1].float() / self.cfg.rollout.temperature
        return token_logprobs(logits, batch.response_tokens().to(self.device)), logits

    def _values(self, forward: Forward, batch: Batch) -> torch.Tensor:
        """V(state before each response token)."""
        with self.core.autocast():
            values = forward(**batch.model_inputs(self.device))
        return values[:, batch.prompt_width - 1 : -1].float()

    @torch.no_grad()
    def forward_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Log-probs (policy, reference) and values with the weights that sampled, micro-batched over
        this process's rows, then gathered from every process. With `old_from_update` the policy's
        log-probs are left as zeros for the update to fill in."""
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for index in self._micro_batches(rank_rows(torch.arange(len(batch.scores)), self.dist)):
            micro = batch.select(index)
            if not self.old_from_update:
                parts["logprobs"].append(
                    self._policy_forward(self.train_engines["policy"].forward, micro)[0].cpu()
                )
            parts["ref_logprobs"].append(self._policy_forward(_forward_of(self.reference), micro)[0].cpu())
            if self.token_values is not None:
                parts["values"].append(self._values(self.train_engines["value"].forward, micro).cpu())
        old = {
            key: gather_rows(torch.cat(values), self.dist) * batch.response_mask
            for key, values in parts.items()
        }
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
        """The updates; their statistics are token-weighted means over every process's micro-batches,
        averaged over the updates."""
        cfg = self.cfg
        totals: dict[str, float] = {}
        norms: dict[str, float] = {}  # the same on every process already
        weight = 1.0 / (cfg.loss.epochs * cfg.loss.minibatches)
        generator = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
        for _ in range(cfg.loss.epochs):
            order = torch.randperm(len(batch.scores), generator=generator)
            for minibatch in order.chunk(cfg.loss.minibatches):
                sums, grad_norms = self._minibatch_update(batch, old, advantages, returns, minibatch)
                for key, value in sums.items():
                    _accumulate(totals, key, value, weight)
                for key, value in grad_norms.items():
                    _accumulate(norms, key, value, weight)
        return {**all_reduce_metrics(totals, self.dist, EXTREMES), **norms}

    def _minibatch_update(
        self, batch: Batch, old: dict[str, torch.Tensor], advantages: torch.Tensor, returns: torch.Tensor | None,
        minibatch: torch.Tensor,
    ) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
        """One optimizer step over `minibatch`, this process's share of it in micro-batches; returns
        this process's weighted statistics and the gradient norms."""
        cfg, d = self.cfg, self.dist
        tokens = float(batch.response_mask[minibatch].sum())  # over every process's share
        micro_batches = self._micro_batches(rank_rows(minibatch, d))
        sums: dict[str, float] = {}
        for i, index in enumerate(micro_batches):
            micro, mask = batch.select(index), batch.response_mask[index].to(self.device)
            share = float(mask.sum()) / tokens  # micro-batch losses are token means: weight by tokens
            scale = share * d.world  # the engines average over processes (rlvr.train.engines)
            with self.train_engines.micro_context(last=i == len(micro_batches) - 1):
                logprobs, logits = self._policy_forward(self.train_engines["policy"].forward, micro)
                if self.old_from_update:
                    old["logprobs"][index] = logprobs.detach().cpu() * mask.cpu()
                pg, stats = policy_loss(logprobs, old["logprobs"][index].to(self.device),
                                        advantages[index].to(self.device), mask, cfg.loss.clip)  # fmt: skip
                loss = pg
                if cfg.kl.placement == "loss":
                    kl = kl_per_token(logprobs, old["ref_logprobs"][index].to(self.device), cfg.kl.estimator)
                    loss = loss + cfg.kl.beta * masked_mean(kl, mask)
                    _accumulate(sums, "kl_loss", float(masked_mean(kl.detach(), mask)), share)
                self._backward("policy", loss * scale, batch, minibatch)
                if self.token_values is not None and returns is not None:
                    vf, vf_stats = value_loss(self._values(self.train_engines["value"].forward, micro),
                                              old["values"][index].to(self.device),
                                              returns[index].to(self.device), mask, cfg.loss.value_clip)  # fmt: skip
                    self._backward("value", cfg.loss.value_coef * vf * scale, batch, minibatch)
                    stats = {**stats, **vf_stats, "value_loss": vf.detach()}
            stats = {
                **stats,
                "policy_loss": pg.detach(),
                "entropy": masked_mean(entropy_from_logits(logits.detach()), mask),
            }
            for key, value in stats.items():
                _accumulate(sums, key, float(value), share)
        lr = self.lr()
        return sums, {f"grad_norm/{name}": engine.step(lr) for name, engine in self.train_engines.items()}

    def _backward(self, model: str, loss: torch.Tensor, batch: Batch, minibatch: torch.Tensor) -> None:
        """The policy's and the value model's losses are separate graphs: each goes through its engine."""
        if not torch.isfinite(loss):
            self._save_bad_batch(batch, minibatch)
        self.train_engines[model].backward(loss)

    def evaluate(self) -> dict[str, float]:
        """Greedy held-out accuracy of the current policy (sampled by the main process, after a sync
        every process joins), with the sync's metrics."""
        metrics = self.sync_engine()
        if self.sampler is not None:
            metrics.update(self.sampler.evaluate(self.test_prompts))
        return metrics

    # ------------------------------------------------------------------ helpers

    def lr(self) -> float:
        return self.schedule(self.step)

    def _micro_batches(self, index: torch.Tensor) -> list[torch.Tensor]:
        return list(index.split(self.cfg.train.micro_batch_size))

    def _save_bad_batch(self, batch: Batch, minibatch: torch.Tensor) -> None:
        path = self.cfg.run_dir / f"nonfinite-step{self.step + 1}.pt"
        torch.save({"batch": batch, "minibatch": minibatch}, path)
        raise FloatingPointError(
            f"non-finite loss at step {self.step + 1}; the rollout batch is saved in {path}. Lower optim.lr "
            "or check the rewards; resume continues from the last checkpoint."
        )

    def _log(self, step: int, metrics: dict[str, float]) -> None:
        self.core.log(step, metrics)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """policy/ and value/ as Hugging Face folders, each with its optimizer (or DeepSpeed) state;
        the RNG of every process; the look-ahead batch if one is pending."""
        models = {"policy": (self.train_engines["policy"], hf_writer(self.policy, self.tokenizer))}
        if self.value is not None:
            write_value = hf_writer(self.value, self.tokenizer)
            models["value"] = (  # the engine trains the TokenValues wrapper: its keys start with "model."
                self.train_engines["value"],
                lambda out, state: write_value(out, {k.removeprefix("model."): v for k, v in state.items()}),
            )
        write_extra = self.sampler.write_lookahead if self.sampler is not None else None
        state = {"episodes": self.step * self.episodes_per_step}
        return self.core.save(self.step, self.tokens, models, state, write_extra)

    def load_checkpoint(self, path: Path) -> None:
        """Optimizer (and, under DeepSpeed, module) state, step, token count and RNG."""
        state = self.core.restore(path, self.train_engines, {})
        self.step, self.tokens = state["step"], state["tokens"]

    def _load_weights(self, path: Path) -> None:
        self.policy.load_state_dict(read_state_dict(path / "policy"))
        if self.value is not None:
            self.value.load_state_dict(read_state_dict(path / "value"))

    def _announce(self) -> None:
        if not self.dist.is_main:
            return
        cfg = self.cfg
        where = f"resuming from {self.resumed_from} at step {self.step}" if self.resumed_from else "starting"
        print(
            f"{cfg.algo}: {where}; {len(self.prompts):,} prompts ({self.too_long} too long, left out), "
            f"{self.max_steps} steps × {self.episodes_per_step} episodes, engine {cfg.rollout.backend}, "
            f"training on {self.core.describe()}, "
            f"KL {cfg.kl.estimator} in the {cfg.kl.placement} (beta {cfg.kl.beta})",
            file=sys.stderr,
        )


EXTREMES = {"ratio_max": max, "ratio_min": min}
"""Statistics aggregated over micro-batches, updates and processes by their extreme, not their weighted mean."""


def _accumulate(totals: dict[str, float], key: str, value: float, weight: float) -> None:
    if key in EXTREMES:
        totals[key] = EXTREMES[key](totals.get(key, value), value)
    else:
        totals[key] = totals.get(key, 0.0) + value * weight


def _forward_of(model: torch.nn.Module) -> Forward:
    """A module's forward as the training engines' `forward`, for the no-grad passes."""
    return lambda **inputs: model(**inputs, use_cache=False).logits


def train(cfg: PPOConfig) -> Path:
    return fit_then_leave(lambda: PPOTrainer(cfg))


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rlvr ppo", description="PPO / GRPO with verifiable rewards.")
    parser.add_argument("--config", required=True, help="e.g. configs/ppo/tiny.yaml")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(PPOConfig, args.config, overrides)
    final = train(cfg)
    print(f"final checkpoint: {final}")
    return 0
