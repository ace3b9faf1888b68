"""`TrainCore`: what every trainer (pretraining, SFT, DPO, RM, PPO/GRPO) does the same way.

A trainer owns its data and its step; the core owns the rest: the process group, the precision
(bf16 autocast over fp32 master weights), the engines that wrap and shard the models, the
learning-rate schedule, the run directory and metrics log, and the checkpoints — one format and
one naming (`step{N}-tokens{B}B`, `rlvr.train.checkpoint`) whose every save can be resumed from
exactly (weights, optimizer, step, RNG).

A checkpoint holds one Hugging Face folder per trained model: at its root for a single-model
trainer, in `policy/` and `value/` for PPO. Saving is a collective: every process hands its
shards to the main process (`Engine.full_state_dict`), which writes the folders; then each
process writes its own optimizer state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from rlvr.tracking import MetricsLogger, RunConfig, prepare_run_dir, truncate_metrics
from rlvr.train.checkpoint import (
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    read_training_state,
    restore_training_state,
    save_model,
    save_training_checkpoint,
)
from rlvr.train.config import SHARDED, CoreConfig
from rlvr.train.distributed import Dist, all_reduce, init_distributed
from rlvr.train.engines import Engine, ModelEngines, build_engine
from rlvr.train.optim import AdamWSettings, ScheduleConfig, build_optimizer, lr_at
from rlvr.train.precision import autocast, autocast_dtype


class TrainCore:
    def __init__(self, cfg: RunConfig, train: CoreConfig, timeout: float | None = None) -> None:
        train.validate()
        self.cfg = cfg
        self.train = train
        self.dist: Dist = init_distributed(
            train.dist_backend, train.uses_deepspeed, timeout, group=train.sharding in (*SHARDED, "zero2")
        )
        self.autocast_dtype: torch.dtype | None = autocast_dtype(train.precision, self.dist.device)
        if self.dist.device.type == "cuda":
            self._check_plan()
        self.ckpt_dir = cfg.run_dir / "checkpoints"
        checkpoints = list_checkpoints(self.ckpt_dir) if train.resume else []
        self.resumed_from: Path | None = checkpoints[-1] if checkpoints else None
        self.logger: MetricsLogger | None = None

    def _check_plan(self) -> None:
        """Refuse, before loading anything, a layout `rlvr plan` says does not fit these GPUs
        (`train.skip_plan_check` overrides)."""
        from rlvr.plan import check_fits

        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world))
        memory = torch.cuda.get_device_properties(self.dist.device).total_memory
        check_fits(self.cfg, self.dist.world, memory, nodes=max(1, self.dist.world // per_node),
                   bf16=self.autocast_dtype is not None)  # fmt: skip

    @property
    def sharded(self) -> bool:
        """Whether a process holds only part of each trained model's parameters."""
        return self.train.sharding in SHARDED

    def autocast(self) -> AbstractContextManager[Any]:
        return autocast(self.autocast_dtype, self.dist.device)

    def build_engine(
        self,
        model: nn.Module,
        optim: AdamWSettings,
        micro_batch_size: int,
        accumulation: int,
        grad_clip: float,
    ) -> Engine:
        """`model` (on its device, starting weights loaded) in the engine `train.sharding` names, with
        AdamW over its (sharded) parameters."""
        return build_engine(
            model,
            lambda m: build_optimizer(m, optim),
            self.train,
            micro_batch_size,
            accumulation,
            grad_clip,
            self.dist,
            param_dtype=self.autocast_dtype,
        )

    def open_run(self, step: int) -> MetricsLogger | None:
        """The main process's run directory and metrics log (resumed: cut back to `step`)."""
        if not self.dist.is_main:
            return None
        prepare_run_dir(self.cfg)
        if self.resumed_from is not None:
            truncate_metrics(self.cfg.run_dir / "metrics.jsonl", step)
        self.logger = MetricsLogger(self.cfg.run_dir, self.cfg, resume=self.resumed_from is not None)
        return self.logger

    def memory_metrics(self, engines: Mapping[str, Engine]) -> dict[str, float]:
        """`memory/<model>/{params,grads,optimizer}`: each trained model's bytes per process, the
        largest over the processes (a collective)."""
        keys, values = [], []
        for name, engine in engines.items():
            for part, count in engine.memory().items():
                keys.append(f"memory/{name + '/' if name else ''}{part}")
                values.append(float(count))
        reduced = all_reduce(torch.tensor(values, dtype=torch.float64), self.dist, dist.ReduceOp.MAX)
        return dict(zip(keys, reduced.tolist(), strict=True))

    def log(self, step: int, metrics: Mapping[str, Any], echo: bool | None = None) -> None:
        if self.logger is not None:
            self.logger.log(step, metrics, echo=echo)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None

    # ------------------------------------------------------------------ checkpoints

    def save(
        self,
        step: int,
        tokens: int,
        models: Mapping[str, tuple[Engine, Callable[[Path, dict[str, torch.Tensor]], None]]],
        state: dict[str, Any],
        write_extra: Callable[[Path], None] | None = None,
        name: str | None = None,
    ) -> Path:
        """A resumable checkpoint of `models` (folder → (engine, writer(folder, full state dict))).

        Every process gathers each model's full state dict (a collective under sharding); the main
        process writes the folders and `write_extra(dir)`; every process writes its optimizer state."""
        gathered = {folder: engine.full_state_dict() for folder, (engine, _) in models.items()}

        def write_models(out: Path) -> None:  # the main process
            for folder, (_, writer) in models.items():
                full = gathered[folder]
                assert full is not None
                target = out / folder if folder else out
                target.mkdir(parents=True, exist_ok=True)
                writer(target, full)
            if write_extra is not None:
                write_extra(out)

        engines = ModelEngines({folder: engine for folder, (engine, _) in models.items()})
        final = self.ckpt_dir / (name or checkpoint_name(step, tokens))
        return save_training_checkpoint(
            final, self.dist, engines, write_models, {**state, "step": step, "tokens": tokens}
        )

    def restore(self, path: Path, engines: Mapping[str, Engine], expect: Mapping[str, Any]) -> dict[str, Any]:
        """Optimizer (and, under DeepSpeed, module) state and this process's RNG from `path`, after
        checking that the settings in `expect` (which decide the data order) are unchanged."""
        state = read_training_state(path)
        for key, now in expect.items():
            if state.get(key) != now:
                raise CheckpointError(
                    f"{path} was trained with {key} {state.get(key)}, this run has {now}: resuming would change "
                    "the data order. Restore the setting, or start a new run (--name)."
                )
        restore_training_state(path, state, self.dist, ModelEngines(engines), self.train.uses_deepspeed)
        return state

    def describe(self) -> str:
        """How the run is laid out, for the start-up lines."""
        mode = {"none": "no wrapper", "ddp": "DDP" if self.dist.world > 1 else "no wrapper",
                "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3", "fsdp2": "FSDP2"}[self.train.sharding]  # fmt: skip
        extras = [x for x, on in (("activation checkpointing", self.train.activation_checkpointing),
                                  ("optimizer offload", self.train.offload_optimizer)) if on]  # fmt: skip
        precision = "bf16 autocast" if self.autocast_dtype else "fp32"
        return f"{self.dist.world} process(es), {mode}{''.join(', ' + x for x in extras)}; {precision} on {self.dist.device}"


def hf_writer(model: nn.Module, tokenizer: Any) -> Callable[[Path, dict[str, torch.Tensor]], None]:
    """Writes `model`'s Hugging Face folder (config, safetensors, tokenizer) from a full state dict."""
    return lambda out, state: save_model(model, tokenizer, out, state_dict=state)


class Schedule:
    """The learning rate of each optimizer step: warmup, then the decay `kind` names."""

    def __init__(self, peak: float, max_steps: int, kind: str, warmup_ratio: float | None = None,
                 warmup_steps: int | None = None, final_lr_ratio: float = 0.0) -> None:  # fmt: skip
        steps = warmup_steps if warmup_steps is not None else round((warmup_ratio or 0.0) * max_steps)
        self.config = ScheduleConfig(kind=kind, warmup_steps=steps, final_lr_ratio=final_lr_ratio)  # type: ignore[arg-type]
        self.peak = peak
        self.max_steps = max_steps

    @property
    def warmup_steps(self) -> int:
        return self.config.warmup_steps

    def __call__(self, step: int) -> float:
        return lr_at(step, self.peak, self.max_steps, self.config)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of one epoch: a seeded permutation of `n` items, a pure function of (seed, epoch),
    so a resumed run sees the same order."""
    return np.random.default_rng([seed, epoch]).permutation(n)
