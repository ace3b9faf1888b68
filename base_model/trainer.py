"""The pretraining loop: `Trainer(cfg).fit()` (what `rlvr pretrain --config F` runs).

One optimizer step = one global batch of `global_batch_size` sequences, split across processes
and then into micro-batches. Each micro-batch's loss is its summed token loss divided by the
label count of the whole global batch, so any split (1×8, 8×1, 2 processes × 4) gives the same
update up to float rounding. The step is: draw the batch → forward/backward each micro-batch
under autocast → clip → AdamW at the scheduled LR → log; every `eval_every` steps the held-out
loss, every `save_every` steps a checkpoint that resumes exactly (weights, optimizer, data
counters, RNG).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from base_model.config import PretrainConfig
from base_model.data import ChunkSource, EvalChunks, MixtureSampler, check_tokenizer, expand_paths
from base_model.loss import heldout_sums, lm_loss
from base_model.model import build_model, describe, flops_per_token, hf_config
from base_model.tokenizer import fingerprint, load_tokenizer
from rlvr.config import ConfigError
from rlvr.tracking import progress
from rlvr.train.checkpoint import CheckpointError, checkpoint_name, read_config, read_state_dict
from rlvr.train.core import Schedule, TrainCore, hf_writer
from rlvr.train.distributed import all_reduce, fit_then_leave
from rlvr.train.engines import Engine
from rlvr.train.precision import measure_matmul_peak

# config.json keys that must agree between a checkpoint and the configured model.
SHAPE_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)


class Trainer:
    def __init__(self, cfg: PretrainConfig) -> None:
        self.cfg = cfg
        self.core = TrainCore(cfg, cfg.train)
        self.dist = self.core.dist
        self.accumulation = self._check_batch_sizes()
        self.step = 0
        self.tokens_per_step = cfg.train.global_batch_size * cfg.data.seq_len
        s = cfg.schedule
        self.schedule = Schedule(cfg.optim.lr, cfg.train.max_steps, s.kind, warmup_steps=s.warmup_steps,
                                 final_lr_ratio=s.final_lr_ratio)  # fmt: skip

        self.tokenizer = load_tokenizer(cfg.tokenizer)
        if len(self.tokenizer) > cfg.model.vocab_size:
            raise ValueError(
                f"the tokenizer at {cfg.tokenizer} has {len(self.tokenizer):,} tokens but model.vocab_size is "
                f"{cfg.model.vocab_size:,}; raise model.vocab_size to at least that (a multiple of 64 is fastest)"
            )
        self.sampler, self.eval_set = self._build_data()
        resume_from = self.core.resumed_from

        torch.manual_seed(cfg.seed)  # the same on every process: identical initial weights
        model = build_model(
            cfg.model, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, seed=cfg.seed
        )
        if resume_from is None and cfg.init_from is not None:
            self._load_weights(model, Path(cfg.init_from), check_tokenizer=True)
        elif resume_from is None and cfg.stage == 2:
            raise ValueError(
                "a stage-2 run continues from a stage-1 checkpoint: set init_from to its directory"
            )
        if resume_from is not None and not cfg.train.uses_deepspeed:
            self._load_weights(model, resume_from)  # DeepSpeed restores the module itself, below
        if not self.core.sharded:  # the sharded engines move each shard to the device themselves
            model.to(self.dist.device)
        model.train()
        self.engine: Engine = self.core.build_engine(
            model, cfg.optim, cfg.train.micro_batch_size, self.accumulation, cfg.optim.grad_clip
        )
        if resume_from is not None:
            self.load_checkpoint(resume_from)

        self.forward_loss = self._forward_loss
        if cfg.train.compile:
            if cfg.train.sharding not in ("none", "ddp"):
                raise ValueError("train.compile works with train.sharding none or ddp")
            # One static graph: every micro-batch has the same shape. Eval and sampling stay eager.
            self.forward_loss = torch.compile(self._forward_loss, dynamic=False)
        self.flops_per_token = flops_per_token(cfg.model, cfg.data.seq_len)
        self.peak_flops = self._peak_flops()
        self.resumed_from = resume_from
        self.core.open_run(self.step)

    # ------------------------------------------------------------------ set-up

    def _check_batch_sizes(self) -> int:
        t, d = self.cfg.train, self.dist
        per_pass = t.micro_batch_size * d.world
        if t.global_batch_size % per_pass:
            raise ConfigError(
                f"train.global_batch_size {t.global_batch_size} is not a multiple of micro_batch_size "
                f"{t.micro_batch_size} × {d.world} process(es); change one of them"
            )
        if self.cfg.data.seq_len > self.cfg.model.max_seq_len:
            raise ValueError(
                f"data.seq_len {self.cfg.data.seq_len} exceeds model.max_seq_len {self.cfg.model.max_seq_len}"
            )
        return t.global_batch_size // per_pass

    def _build_data(self) -> tuple[MixtureSampler, EvalChunks | None]:
        data = self.cfg.data
        if not data.train:
            raise ValueError("data.train is empty: list at least one source with the token files to train on")
        sources = []
        for i, source in enumerate(data.train):
            paths = expand_paths(source.paths)
            check_tokenizer(paths, self.cfg.tokenizer)
            sources.append(ChunkSource(paths, data.seq_len, name=source.name or f"source{i}"))
        sampler = MixtureSampler(sources, [s.weight for s in data.train], seed=self.cfg.seed)
        eval_set = None
        if data.eval_paths:
            paths = expand_paths(data.eval_paths)
            check_tokenizer(paths, self.cfg.tokenizer)
            eval_set = EvalChunks(paths, data.seq_len, data.eval_sequences)
        return sampler, eval_set

    def _load_weights(self, model: torch.nn.Module, path: Path, check_tokenizer: bool = False) -> None:
        config = read_config(path)
        expected = hf_config(self.cfg.model).to_dict()
        differ = [k for k in SHAPE_KEYS if config.get(k) != expected.get(k)]
        if differ:
            found = ", ".join(f"{k} {config.get(k)} (config: {expected.get(k)})" for k in differ)
            raise CheckpointError(
                f"{path} does not fit the configured model: {found}; set the model section to its shape"
            )
        if (
            check_tokenizer
            and (path / "tokenizer.json").is_file()
            and fingerprint(path) != fingerprint(self.cfg.tokenizer)
        ):
            raise CheckpointError(
                f"{path} was trained with another tokenizer than {self.cfg.tokenizer}; use its tokenizer"
            )
        model.load_state_dict(read_state_dict(path), strict=True)

    def _peak_flops(self) -> float:
        """Summed over processes: each measures its own share of the hardware, concurrently."""
        if self.cfg.train.peak_tflops is not None:
            return self.cfg.train.peak_tflops * 1e12 * self.dist.world
        mine = measure_matmul_peak(self.dist.device, self.core.autocast_dtype or torch.float32, seconds=1.0)
        return float(all_reduce(torch.tensor(mine, dtype=torch.float64), self.dist))

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Path:
        """Train to `max_steps`; returns the final checkpoint."""
        cfg, t = self.cfg, self.cfg.train
        self._announce()
        last_saved: Path | None = None
        steps = progress(
            range(self.step, t.max_steps),
            total=t.max_steps - self.step,
            desc="pretrain",
            enabled=cfg.log.progress and self.dist.is_main,
        )
        for _ in steps:
            metrics = self.train_step()
            self.step += 1
            if self.eval_set is not None and (self.step % t.eval_every == 0 or self.step == t.max_steps):
                metrics.update(self.eval_step())
            self.core.log(self.step, metrics)
            if self.step % t.save_every == 0 or self.step == t.max_steps:
                last_saved = self.save_checkpoint()
        final = last_saved or self.core.ckpt_dir / checkpoint_name(
            self.step, self.step * self.tokens_per_step, cfg.stage, cfg.ingredient
        )
        if t.sample_prompts:
            self.write_samples()
        self.core.close()
        return final

    def train_step(self) -> dict[str, float]:
        """One optimizer step over one global batch; returns its metrics."""
        start = time.perf_counter()
        d, world = self.dist, self.dist.world
        picks = self.sampler.next_chunks(self.cfg.train.global_batch_size)
        per_rank = len(picks) // world
        mine = picks[d.rank * per_rank : (d.rank + 1) * per_rank]
        micro = self.cfg.train.micro_batch_size
        batches = [self.sampler.batch(mine[i : i + micro]) for i in range(0, per_rank, micro)]

        n_local = sum(int((labels[:, 1:] != -100).sum()) for _, labels in batches)
        n_global = max(1.0, float(all_reduce(torch.tensor(float(n_local)), d)))
        sums = torch.zeros(2, dtype=torch.float64)
        for i, (input_ids, labels) in enumerate(batches):
            with self.engine.micro_context(last=i == len(batches) - 1):
                ce_sum, z_sum = self.forward_loss(input_ids.to(d.device), labels.to(d.device))
                loss = (ce_sum + self.cfg.optim.z_loss * z_sum) * (world / n_global)
                self.engine.backward(loss)
            sums += torch.stack([ce_sum.detach(), z_sum.detach()]).double().cpu()

        lr = self.schedule(self.step)
        grad_norm = self.engine.step(lr)
        ce, z = (all_reduce(sums, d) / n_global).tolist()
        elapsed = time.perf_counter() - start
        tokens_per_s = self.tokens_per_step / elapsed
        return {
            "loss": ce,
            "z_loss": self.cfg.optim.z_loss * z,  # the term as it enters the loss (OLMo-core logs it so)
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": (self.step + 1) * self.tokens_per_step,
            "tokens_per_s": tokens_per_s,
            "mfu": tokens_per_s * self.flops_per_token / self.peak_flops,
            "epochs": max(self.sampler.epochs()),
            "step_time": elapsed,
            **self.core.memory_metrics({"": self.engine}),
        }

    def _forward_loss(
        self, input_ids: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy and z-loss of one micro-batch (the part `train.compile` compiles)."""
        with self.core.autocast():
            logits = self.engine.forward(input_ids)
        ce_sum, z_sum, _ = lm_loss(logits, labels)
        return ce_sum, z_sum

    def eval_step(self) -> dict[str, float]:
        """Mean token loss on the fixed held-out chunks (no z-loss), shared across processes."""
        assert self.eval_set is not None
        batches = self.eval_set.batches(self.cfg.train.micro_batch_size, self.dist.rank, self.dist.world)
        sums = heldout_sums(self.engine.module, batches, self.dist.device, self.core.autocast_dtype)
        ce, n = all_reduce(sums, self.dist).tolist()
        return {"eval_loss": ce / max(n, 1.0)}

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        cfg = self.cfg
        tokens = self.step * self.tokens_per_step
        state = {
            "stage": cfg.stage,
            "ingredient": cfg.ingredient,
            "global_batch_size": cfg.train.global_batch_size,
            "seq_len": cfg.data.seq_len,
            "sampler": self.sampler.state_dict(),
        }
        name = checkpoint_name(self.step, tokens, cfg.stage, cfg.ingredient)
        writer = hf_writer(self.engine.module, self.tokenizer)
        return self.core.save(self.step, tokens, {"": (self.engine, writer)}, state, name=name)

    def load_checkpoint(self, path: Path) -> None:
        """Restore optimizer (and, under DeepSpeed, module) state, step, data counters and RNG."""
        expect = {"global_batch_size": self.cfg.train.global_batch_size, "seq_len": self.cfg.data.seq_len}
        state = self.core.restore(path, {"": self.engine}, expect)
        self.step = state["step"]
        self.sampler.load_state_dict(state["sampler"])

    # ------------------------------------------------------------------ reporting

    def _announce(self) -> None:
        if not self.dist.is_main:
            return
        cfg, t = self.cfg, self.cfg.train
        where = (
            f"resuming from {self.resumed_from} (step {self.step})" if self.resumed_from else "from scratch"
        )
        if self.resumed_from is None and cfg.init_from:
            where = f"from {cfg.init_from}"
        lines = [
            f"model: {describe(cfg.model)}",
            f"batch: {t.global_batch_size} × {cfg.data.seq_len} tokens = {self.tokens_per_step:,} per step "
            f"({self.dist.world} process(es) × {self.accumulation} micro-batch(es) of {t.micro_batch_size})",
            f"{self.core.describe()}; MFU against {self.peak_flops / 1e12:.3g} TFLOP/s ({'configured' if t.peak_tflops else 'measured'})",
            f"run: {cfg.run_dir} — {t.max_steps} steps, {where}",
        ]
        for line in lines:
            print(line, file=sys.stderr)

    def write_samples(self) -> list[str]:
        """Greedy continuations of `train.sample_prompts`, printed and saved to `samples.txt` (main
        process). Under zero3/fsdp2 every process generates: each forward is a collective."""
        if not (self.core.sharded or self.dist.is_main):
            return []
        model = self.engine.module
        model.eval()
        texts = []
        with torch.no_grad():
            for prompt in self.cfg.train.sample_prompts:
                ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.dist.device)
                out = model.generate(
                    ids,
                    max_new_tokens=self.cfg.train.sample_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
                texts.append(prompt + self.tokenizer.decode(out[0, ids.shape[1] :]))
        model.train()
        if not self.dist.is_main:
            return texts
        report = "\n\n".join(f"--- sample {i + 1}\n{text}" for i, text in enumerate(texts))
        (self.cfg.run_dir / "samples.txt").write_text(report + "\n")
        print(report, file=sys.stderr)
        return texts


def pretrain(cfg: PretrainConfig) -> Path:
    """Run (or resume) a pretraining run; returns the final checkpoint directory."""
    return fit_then_leave(lambda: Trainer(cfg))
