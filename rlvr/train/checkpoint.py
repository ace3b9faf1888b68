"""One checkpoint format for every trainer: names, Hugging Face weight files, resumable state.

A checkpoint is a directory that `AutoModelForCausalLM.from_pretrained` and vLLM load as is
(`config.json`, safetensors, the tokenizer with its chat template), plus the trainer's own state
for resuming (`trainer_state.json`, RNG states, optimizer state). Names follow OLMo:
`step1000-tokens4B` in stage 1 and `stage2-ingredient2-step500-tokens2B` in stage 2, the token
count in whole billions (so tiny runs read `tokens0B`; the exact count is in trainer_state.json).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from rlvr.train.distributed import Dist, barrier

NAME_RE = re.compile(r"^(?:stage2-ingredient(?P<ingredient>\d+)-)?step(?P<step>\d+)-tokens(?P<btokens>\d+)B$")
STATE_FILE = "trainer_state.json"


class TrainingState(Protocol):
    """What a resumable checkpoint holds besides the model: an engine's optimizer (and DeepSpeed)
    state, or that of several engines side by side."""

    def save_state(self, path: Path, d: Dist) -> None: ...

    def load_state(self, path: Path) -> None: ...


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or incompatible with what it is used for."""


def checkpoint_name(step: int, tokens: int, stage: int = 1, ingredient: int = 1) -> str:
    name = f"step{step}-tokens{round(tokens / 1e9)}B"
    return f"stage2-ingredient{ingredient}-{name}" if stage == 2 else name


def checkpoint_step(path: Path) -> int | None:
    match = NAME_RE.match(path.name)
    return int(match["step"]) if match else None


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a trainer state) in `ckpt_dir`, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if checkpoint_step(p) is not None and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def save_model(
    model: Any, tokenizer: Any, path: Path, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """The Hugging Face part of a checkpoint: config, safetensors weights, tokenizer and chat template.
    `state_dict`: the weights to write (a sharded model's gathered full state), else the model's own."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per save would break the training bar
    try:
        model.save_pretrained(str(path), safe_serialization=True, state_dict=state_dict)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(str(path))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint's safetensors file(s), single or sharded."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} holds no .safetensors weights; is it a model checkpoint directory?")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def read_config(path: Path) -> dict:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path} is not a model checkpoint (no config.json)")
    return json.loads(config_path.read_text())


def rng_state() -> dict[str, Any]:
    """Every random generator a training step draws from, for a checkpoint to restore exactly."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(
    final: Path, d: Dist, engine: TrainingState, write_model: Callable[[Path], None], state: dict[str, Any]
) -> Path:
    """The resumable checkpoint protocol every trainer shares: the main process writes the model
    (`write_model(dir)`), every process its optimizer (and DeepSpeed) state and RNG, then `state` (plus
    the world size) is written last into `STATE_FILE` and `<final>.tmp/` is renamed to `final` — a run
    killed while saving keeps the previous checkpoint as the newest complete one."""
    tmp = final.with_name(f"{final.name}.tmp")
    if d.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_model(tmp)
    barrier(d)
    engine.save_state(tmp, d)
    torch.save(rng_state(), tmp / f"rng_rank{d.rank}.pt")
    barrier(d)
    if d.is_main:
        (tmp / STATE_FILE).write_text(json.dumps({**state, "world": d.world}, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    barrier(d)
    return final


def read_training_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text())


def restore_training_state(
    path: Path, state: dict[str, Any], d: Dist, engine: TrainingState, deepspeed: bool
) -> None:
    """The other half of `save_training_checkpoint`: optimizer (and, under DeepSpeed, module) state and
    this process's RNG. DeepSpeed's sharded state only loads into the world size that wrote it."""
    if deepspeed and state["world"] != d.world:
        raise CheckpointError(
            f"{path} holds DeepSpeed state for {state['world']} processes, this run has {d.world}"
        )
    engine.load_state(path)
    rng_file = path / f"rng_rank{d.rank}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))  # our own file: numpy state is not a tensor
