"""The training-loop core SFT, DPO and the reward model share.

Why our own loop rather than TRL's SFTTrainer / DPOTrainer / RewardTrainer (TRL 1.16, read for
this): TRL has length-normalised DPO (`sigmoid_norm`) and pre-computed reference log-probs, but
no SimPO in `DPOTrainer`, no summed SFT loss (Tülu 3's reduction; `SFTTrainer` averages tokens),
a truncation that cuts from the end whatever it hits (template markers included) and a
`RewardTrainer` that filters over-long pairs away without counting them. Its checkpoints resume
through `transformers.Trainer`, which keeps neither our run directory (config.yaml, metrics.jsonl)
nor a reference-log-prob cache that survives a restart. The three stages differ only in how a
micro-batch turns into a loss, so one small loop carries them all over the training core
(`rlvr.train`: process group, precision, sharded engines, schedule, run directory, checkpoints).

One optimizer step consumes `train.batch_size` examples (sequences for SFT, pairs for DPO/RM),
split over processes and then into micro-batches. A micro-batch's loss is its summed loss divided
by the loss units of the whole global batch (tokens, sequences or pairs), so any split gives the
same update. The data order is a seeded permutation per epoch, a pure function of the step, so a
checkpoint (weights, optimizer, step, RNG) resumes exactly where the run stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import torch

from base_model.tokenizer import load_tokenizer
from rlvr.algos.encoding import (
    EncodedPair,
    EncodeReport,
    Overlong,
    encode_pairs,
    print_report,
    same_prompt_problems,
)
from rlvr.algos.lora import LoraConfig, load_adapter, save_lora_checkpoint, wrap_lora
from rlvr.chat import CHAT_TEMPLATE, EOS_TOKEN, PAD_TOKEN
from rlvr.checkpoints import Expect, resolve_model
from rlvr.config import ConfigError
from rlvr.data import Kind, load_rows
from rlvr.tracking import RunConfig, format_metrics, progress
from rlvr.train.checkpoint import read_state_dict
from rlvr.train.config import CoreConfig
from rlvr.train.core import Schedule, TrainCore, epoch_permutation, hf_writer
from rlvr.train.distributed import all_reduce, barrier, fit_then_leave
from rlvr.train.engines import Engine

ExampleT = TypeVar("ExampleT")


@dataclass
class OptimConfig:
    """AdamW and the schedule. Defaults are open-instruct's (Tülu 3): AdamW betas (0.9, 0.999),
    no weight decay, linear decay to 0 after a warmup given as a share of all steps."""

    lr: float = 5e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_embeddings: bool = False
    decay_norms: bool = True
    grad_clip: float = 1.0
    """Max global gradient norm; 0 disables clipping."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.03
    """Linear warmup over this share of all optimizer steps."""
    final_lr_ratio: float = 0.0


@dataclass
class TrainConfig(CoreConfig):
    epochs: float = 1.0
    max_steps: int | None = None
    """Cap on optimizer steps (None: `epochs` decides); the schedule spans the capped run."""
    batch_size: int = 128
    """Examples per optimizer step, over all processes: sequences (SFT) or pairs (DPO, RM)."""
    micro_batch_size: int = 8
    """Examples per forward pass per process (a DPO/RM pair is two sequences)."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    """Local .jsonl/.parquet files or hub names (`org/name[:split]`), concatenated."""
    max_length: int = 2048
    """Tokens per sequence (each side of a pair); see `rlvr.algos.encoding` for the truncation policy."""
    overlong: Overlong = "truncate"
    """Rows longer than `max_length`: cut the response (`truncate`) or leave the row out (`skip`, counted)."""
    on_bad_row: Literal["error", "skip"] = "error"
    """Rows that fail validation: stop before training, listing them (`error`) or leave them out, counted."""
    limit: int | None = None
    """Read at most this many valid rows per source (quick trials)."""


@dataclass
class EvalConfig:
    """Held-out evaluation, run after the last step (and at step 0 with `at_start`)."""

    rlvr_test: str | None = None
    """Verifiable prompts (`rlvr` rows): greedy generations scored by `rlvr.rewards`."""
    prefs_test: str | None = None
    """Preference pairs: the share where the model prefers the chosen answer."""
    max_prompts: int | None = None
    """Score only the first N prompts / pairs (None: all)."""
    max_new_tokens: int = 256
    batch_size: int = 32
    workers: int = 1
    """Processes scoring the generations."""
    at_start: bool = False
    """Also evaluate the starting model (logged at step 0), to read the stage's gain from one run."""


@dataclass
class StageConfig(RunConfig):
    """What every post-training stage configures; each stage adds its own section."""

    init_from: str = ""
    """The checkpoint the stage starts from: the base model for SFT, the SFT model for DPO and RM. A
    folder, a run directory (its newest checkpoint) or a hub name `org/name[@revision]`."""
    tokenizer: str | None = None
    """None: the tokenizer saved with `init_from`."""
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class StageResult:
    checkpoint: Path
    steps: int
    evaluation: dict[str, Any]
    """The final held-out figures (`eval.json`)."""


def load_chat_tokenizer(path: str) -> Any:
    """A local tokenizer directory or a hub name, checked against rlvr's chat format.

    Training renders chats with `rlvr.chat` (EOS `<|endoftext|>`), so the tokenizer must end turns
    with that token and pad with another one (the reward model pools at the last non-pad token);
    the template is set on the tokenizer so every checkpoint renders chats as it was trained.
    """
    from transformers import AutoTokenizer

    tokenizer = load_tokenizer(path) if Path(path).is_dir() else AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token != EOS_TOKEN:
        raise ValueError(
            f"the tokenizer of {path} ends sequences with {tokenizer.eos_token!r}; rlvr's chat "
            f"template needs {EOS_TOKEN!r}"
        )
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"the tokenizer of {path} needs a pad token distinct from EOS (e.g. {PAD_TOKEN!r})")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def load_causal_lm(path: str, attention: str = "sdpa") -> torch.nn.Module:
    """A checkpoint as an fp32 causal LM (bf16 enters through autocast; master weights stay fp32)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attention)


def load_training_rows(
    cfg: DataConfig, kind: Kind, check: Any = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every valid row of `cfg.train`, and a summary per source of what validation left out (with
    `on_bad_row: error`, a bad row raises instead, listing every bad row)."""
    if not cfg.train:
        raise ValueError("data.train is empty: list at least one data file")
    rows: list[dict[str, Any]] = []
    invalid = []
    for source in cfg.train:
        loaded = load_rows(source, kind, on_bad_row=cfg.on_bad_row, check=check, limit=cfg.limit)
        rows.extend(loaded)
        if loaded.report.skipped:
            invalid.append(loaded.report.summary())
    return rows, invalid


def load_pairs(data: DataConfig, tokenizer: Any) -> tuple[list[EncodedPair], EncodeReport]:
    """The preference pairs DPO and the reward model train on, with what was left out and why."""
    rows, invalid = load_training_rows(data, "prefs", check=same_prompt_problems)
    pairs, report = encode_pairs(tokenizer, rows, data.max_length, data.overlong, ", ".join(data.train))
    report.invalid = invalid
    return pairs, report


class PostTrainer(Generic[ExampleT]):
    """The loop; subclasses say how rows become examples and a micro-batch becomes a loss.

    Hooks: `load_examples` (rows → examples and the encode report), `load_model`, `prepare`
    (after the model is built, before resumed weights are loaded — DPO caches the reference there),
    `loss_units`, `micro_loss`, `step_metrics`, `evaluate`.
    """

    stage = "stage"
    init_expect: Expect = "causal_lm"
    """What `init_from` must hold (`rlvr.checkpoints.resolve_model`)."""

    def __init__(self, cfg: StageConfig) -> None:
        if not cfg.init_from:
            raise ValueError(f"init_from is empty: set it to the checkpoint {self.stage} starts from")
        # first, so a wrong path fails in a second, before data and model loading
        cfg.init_from = str(resolve_model(cfg.init_from, self.init_expect, "init_from"))
        self.cfg = cfg
        if cfg.lora.enabled and cfg.train.sharding in ("zero3", "fsdp2"):
            raise ConfigError(f"lora trains with train.sharding ddp or zero2, not {cfg.train.sharding}")
        self.core = TrainCore(cfg, cfg.train)
        self.dist = self.core.dist
        self.accumulation = self._check_batch_sizes()
        self.tokenizer = load_chat_tokenizer(cfg.tokenizer or cfg.init_from)
        self.examples, self.data_report = self.load_examples()
        if not self.examples:
            raise ValueError(f"no {self.stage} examples left after encoding: {self.data_report.summary()}")
        self.steps_per_epoch = math.ceil(len(self.examples) / cfg.train.batch_size)
        self.max_steps = max(1, math.ceil(cfg.train.epochs * self.steps_per_epoch))
        if cfg.train.max_steps is not None:
            self.max_steps = min(self.max_steps, cfg.train.max_steps)
        o = cfg.optim
        self.schedule = Schedule(
            o.lr, self.max_steps, o.schedule, o.warmup_ratio, final_lr_ratio=o.final_lr_ratio
        )
        self.step = 0
        self.tokens = 0
        self._order_cache: tuple[int, np.ndarray] | None = None

        self.resumed_from = self.core.resumed_from
        torch.manual_seed(cfg.seed)
        model = self.load_model()
        if cfg.lora.enabled:
            model = wrap_lora(model, cfg.lora, self.lora_modules_to_save)
        if not self.core.sharded:  # the sharded engines move each shard to the device themselves
            model.to(self.dist.device)
        model.train()
        self.engine: Engine = self.core.build_engine(
            model, o, cfg.train.micro_batch_size, self.accumulation, o.grad_clip
        )
        self.prepare()
        if self.resumed_from is not None:
            if not cfg.train.uses_deepspeed:  # DeepSpeed restores the module with its own state
                self._load_weights(self.resumed_from)
            self.load_checkpoint(self.resumed_from)
        if self.dist.is_main:
            self.core.open_run(self.step)
            (cfg.run_dir / "data_report.json").write_text(
                json.dumps(self.data_report.as_dict(), indent=2) + "\n"
            )

    # ------------------------------------------------------------------ hooks

    lora_modules_to_save: tuple[str, ...] = ()
    """Modules trained in full beside the LoRA adapters (the reward model's new head)."""

    def load_examples(self) -> tuple[list[ExampleT], EncodeReport]:
        raise NotImplementedError

    def load_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def prepare(self) -> None:
        """Runs on the engine with the starting weights, before a resumed checkpoint's weights replace
        them (DPO caches the reference log-probs here). Every process calls it."""

    def loss_units(self, examples: Sequence[ExampleT]) -> float:
        """What the loss is averaged over in these examples (tokens, sequences or pairs)."""
        return float(len(examples))

    def micro_loss(self, examples: Sequence[ExampleT]) -> tuple[torch.Tensor, dict[str, float]]:
        """`(summed loss, summed statistics)` of one micro-batch."""
        raise NotImplementedError

    def step_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Metrics of one step from the statistics summed over the global batch."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Held-out figures of `model` — the current weights, whole (main process)."""
        return {}

    def example_tokens(self, example: ExampleT) -> int:
        return len(example)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ set-up

    def _check_batch_sizes(self) -> int:
        t, world = self.cfg.train, self.dist.world
        if t.batch_size % (t.micro_batch_size * world):
            raise ConfigError(
                f"train.batch_size {t.batch_size} is not a multiple of micro_batch_size {t.micro_batch_size} "
                f"× {world} process(es); change one of them"
            )
        return t.batch_size // (t.micro_batch_size * world)

    def _load_weights(self, path: Path) -> None:
        if self.cfg.lora.enabled:
            load_adapter(self.engine.module, path)
            return
        self.engine.load_full_state_dict(read_state_dict(path))

    def whole_model(self) -> torch.nn.Module | None:
        """The current weights as one unsharded model on the main process (None elsewhere): the
        trained module itself, or under zero3/fsdp2 a copy built from the gathered shards (every
        process must call this)."""
        if not self.core.sharded:
            return self.engine.module if self.dist.is_main else None
        full = self.engine.full_state_dict()
        if not self.dist.is_main:
            return None
        assert full is not None
        model = self.load_model()
        model.load_state_dict(full)
        return model.to(self.dist.device)

    # ------------------------------------------------------------------ data order

    def epoch_order(self, epoch: int) -> np.ndarray:
        """A seeded permutation of the examples, repeated cyclically to whole batches (no example is
        dropped; the last batch of an epoch re-uses a few from its start)."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            perm = epoch_permutation(self.cfg.seed, epoch, len(self.examples))
            self._order_cache = (epoch, np.resize(perm, self.steps_per_epoch * self.cfg.train.batch_size))
        return self._order_cache[1]

    def global_batch(self, step: int) -> list[ExampleT]:
        epoch, k = divmod(step, self.steps_per_epoch)
        size = self.cfg.train.batch_size
        return [self.examples[i] for i in self.epoch_order(epoch)[k * size : (k + 1) * size]]

    def local_micro_batches(self, batch: Sequence[ExampleT]) -> list[list[ExampleT]]:
        """This process's share of the global batch in micro-batches, sorted by length (less padding)."""
        share = len(batch) // self.dist.world
        mine = sorted(batch[self.dist.rank * share : (self.dist.rank + 1) * share], key=self.example_tokens)
        micro = self.cfg.train.micro_batch_size
        return [mine[i : i + micro] for i in range(0, len(mine), micro)]

    # ------------------------------------------------------------------ the loop

    def fit(self) -> StageResult:
        """Train to the last step, evaluate, return the final checkpoint and its held-out figures."""
        t = self.cfg.train
        self._announce()
        if self.cfg.eval.at_start and self.step == 0:
            self._log_evaluation(0, prefix="eval_start")
        last_saved = self.resumed_from if self.step == self.max_steps else None
        steps = progress(
            range(self.step, self.max_steps),
            total=self.max_steps - self.step,
            desc=self.stage,
            enabled=self.cfg.log.progress and self.dist.is_main,
        )
        for _ in steps:
            metrics = self.train_step()
            self.step += 1
            self.core.log(self.step, metrics)
            if self.step % t.save_every == 0 or self.step == self.max_steps:
                last_saved = self.save_checkpoint()
        assert last_saved is not None
        evaluation = self._final_evaluation()
        self.core.close()
        return StageResult(last_saved, self.step, evaluation)

    def train_step(self) -> dict[str, float]:
        """One optimizer step over one global batch; returns its metrics."""
        started = time.perf_counter()
        d = self.dist
        batch = self.global_batch(self.step)
        micro_batches = self.local_micro_batches(batch)
        units = float(
            all_reduce(torch.tensor(self.loss_units([e for micro in micro_batches for e in micro])), d)
        )
        scale = d.world / max(units, 1e-12)  # the engines average over processes (rlvr.train.engines)
        sums: dict[str, float] = {}
        for i, micro in enumerate(micro_batches):
            with self.engine.micro_context(last=i == len(micro_batches) - 1):
                with self.core.autocast():
                    loss_sum, stats = self.micro_loss(micro)
                self.engine.backward(loss_sum * scale)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
        lr = self.schedule(self.step)
        grad_norm = self.engine.step(lr)
        keys = sorted(sums)
        totals = all_reduce(torch.tensor([sums[k] for k in keys], dtype=torch.float64), d).tolist()
        mine = sum(self.example_tokens(e) for micro in micro_batches for e in micro)
        step_tokens = int(all_reduce(torch.tensor(mine), d))
        self.tokens += step_tokens
        elapsed = time.perf_counter() - started
        return {
            **self.step_metrics(dict(zip(keys, totals, strict=True))),
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": self.tokens,
            "tokens_per_s": step_tokens / elapsed,
            "epoch": (self.step + 1) / self.steps_per_epoch,
            "step_time": elapsed,
            **self.core.memory_metrics({"": self.engine}),
        }

    # ------------------------------------------------------------------ evaluation

    def _final_evaluation(self) -> dict[str, Any]:
        """Evaluate the final model once: a finished run re-started reads the figures back."""
        path = self.cfg.run_dir / "eval.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("step") == self.step:
                return saved
        return self._log_evaluation(self.step, prefix="eval")

    def _log_evaluation(self, step: int, prefix: str) -> dict[str, Any]:
        model = self.whole_model()
        if model is None:
            barrier(self.dist)
            return {}
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            figures = self.evaluate(model)
        if not figures:  # no held-out files configured
            barrier(self.dist)
            return {}
        flat = {f"{prefix}/{key}": value for key, value in _flatten(figures).items()}
        print(
            f"{self.stage} held-out ({'start' if prefix == 'eval_start' else 'final'}, step {step}): "
            f"{format_metrics(_flatten(figures))}",
            file=sys.stderr,
        )
        self.core.log(step, flat, echo=False)
        record = {"step": step, **figures}
        if prefix == "eval":
            (self.cfg.run_dir / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
        barrier(self.dist)
        return record

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        if self.cfg.lora.enabled:
            writer = lambda out, _: save_lora_checkpoint(self.engine.module, self.tokenizer, out)  # noqa: E731
        else:
            writer = hf_writer(self.engine.module, self.tokenizer)
        state = {
            "stage": self.stage,
            "max_steps": self.max_steps,
            "examples": len(self.examples),
            "batch_size": self.cfg.train.batch_size,
        }
        return self.core.save(self.step, self.tokens, {"": (self.engine, writer)}, state)

    def load_checkpoint(self, path: Path) -> None:
        """Restore optimizer (and, under DeepSpeed, module) state, step, token count and RNG."""
        expect = {"examples": len(self.examples), "batch_size": self.cfg.train.batch_size}
        state = self.core.restore(path, {"": self.engine}, expect)
        if state["max_steps"] != self.max_steps and self.dist.is_main:
            print(
                f"warning: {path} was part of a {state['max_steps']}-step run, this one has {self.max_steps} "
                "steps: the learning-rate schedule continues on the new length",
                file=sys.stderr,
            )
        self.step, self.tokens = state["step"], state["tokens"]

    # ------------------------------------------------------------------ reporting

    def _announce(self) -> None:
        if not self.dist.is_main:
            return
        cfg, t = self.cfg, self.cfg.train
        print_report(self.data_report)
        where = (
            f"resuming from {self.resumed_from} (step {self.step})"
            if self.resumed_from
            else f"from {cfg.init_from}"
        )
        lines = [
            f"{self.stage}: {len(self.examples):,} examples, {self.steps_per_epoch:,} steps per epoch, "
            f"{self.max_steps:,} steps (warmup {self.schedule.warmup_steps})",
            f"batch: {t.batch_size} = {self.dist.world} process(es) × {self.accumulation} micro-batch(es) of "
            f"{t.micro_batch_size}; {self.core.describe()}",
            f"run: {cfg.run_dir} — {where}",
        ]
        for line in lines:
            print(line, file=sys.stderr)


def _flatten(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"accuracy_by_verifier": {"gsm8k": 0.2}}` → `{"accuracy_by_verifier/gsm8k": 0.2}`; numbers only."""
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float):
            flat[f"{prefix}{key}"] = value
    return flat


def run_stage(trainer_cls: type[PostTrainer[Any]], cfg: StageConfig) -> StageResult:
    """Build the trainer, fit, then leave the process group (torchrun launches)."""
    return fit_then_leave(lambda: trainer_cls(cfg))


def stage_main(
    argv: Sequence[str], config_cls: type[StageConfig], trainer_cls: type[PostTrainer[Any]]
) -> int:
    """`rlvr <stage> --config FILE [--key.sub=value ...]`: train, print the final checkpoint and figures."""
    import argparse

    from rlvr.config import load_config

    parser = argparse.ArgumentParser(prog=f"rlvr {trainer_cls.stage}", description=trainer_cls.__doc__)
    parser.add_argument("--config", required=True, help=f"e.g. configs/{trainer_cls.stage}/tiny.yaml")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(config_cls, args.config, overrides)
    result = run_stage(trainer_cls, cfg)
    if result.evaluation:
        print(json.dumps({"checkpoint": str(result.checkpoint), **result.evaluation}, indent=2))
    return 0
