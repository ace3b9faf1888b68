"""Checkpoint names, Hugging Face weight files, and model souping.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from base_model.data import EvalChunks
from base_model.distributed import Dist, barrier
from base_model.optim import heldout_sums
from base_model.perf import autocast_dtype

NAME_RE = re.compile(r"^(?:stage2-ingredient(?P<ingredient>\d+)-)?step(?P<step>\d+)-tokens(?P<btokens>\d+)B$")
STATE_FILE = "trainer_state.json"
# Files of a checkpoint that describe the model rather than hold weights; souping copies them.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
# config.json keys that may differ between checkpoints of the same model.
CONFIG_KEYS_IGNORED = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}


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


def save_model(model: Any, tokenizer: Any, path: Path) -> None:
    """The Hugging Face part of a checkpoint: config, safetensors weights, tokenizer and chat template."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per save would break the training bar
    try:
        model.save_pretrained(str(path), safe_serialization=True)
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


def heldout_loss(
    checkpoint: str | Path,
    paths: Sequence[str | Path],
    seq_len: int,
    max_chunks: int,
    batch_size: int = 16,
    precision: str = "auto",
) -> float:
    """Mean token loss of a saved checkpoint on the first `max_chunks` chunks of held-out token files
    (the same measure as the trainer's `eval_loss`), e.g. for a soup, which never ran in a trainer."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).to(device)
    chunks = EvalChunks([Path(p) for p in paths], seq_len, max_chunks)
    ce, n = heldout_sums(
        model, chunks.batches(batch_size), device, autocast_dtype(precision, device)
    ).tolist()
    return ce / max(n, 1.0)


def soup(inputs: Sequence[str | Path], out: str | Path) -> Path:
    """Average the weights of several checkpoints of one model ("model souping", OLMo 2 stage 2).

    The mean is taken in float64 and cast back to each tensor's dtype, so it is exact up to that
    final rounding. Config, generation config and tokenizer are copied from the first input.
    """
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise CheckpointError(f"souping needs at least two checkpoints, got {len(paths)}")
    out = Path(out)
    if out.resolve() in {p.resolve() for p in paths}:
        raise CheckpointError(f"--out {out} is one of the inputs; write the soup somewhere new")
    reference = {k: v for k, v in read_config(paths[0]).items() if k not in CONFIG_KEYS_IGNORED}
    for path in paths[1:]:
        config = {k: v for k, v in read_config(path).items() if k not in CONFIG_KEYS_IGNORED}
        if config != reference:
            differ = sorted(k for k in reference.keys() | config.keys() if reference.get(k) != config.get(k))
            raise CheckpointError(
                f"{path} is not the same model as {paths[0]}: config differs in {', '.join(differ)}"
            )

    first = read_state_dict(paths[0])
    dtypes = {k: v.dtype for k, v in first.items()}
    total = {k: v.double() for k, v in first.items()}
    del first
    for path in paths[1:]:
        state = read_state_dict(path)
        if state.keys() != total.keys():
            missing = sorted(total.keys() ^ state.keys())[:5]
            raise CheckpointError(f"{path} has different tensors from {paths[0]} (e.g. {', '.join(missing)})")
        for key, tensor in state.items():
            if tensor.shape != total[key].shape:
                raise CheckpointError(
                    f"{path}: {key} has shape {tuple(tensor.shape)}, expected {tuple(total[key].shape)}"
                )
            total[key] += tensor.double()
    averaged = {k: (v / len(paths)).to(dtypes[k]) for k, v in total.items()}

    out.mkdir(parents=True, exist_ok=True)
    save_torch_state_dict(averaged, str(out))
    for name in MODEL_FILES:
        if (paths[0] / name).is_file():
            shutil.copy2(paths[0] / name, out / name)
    (out / "soup.json").write_text(json.dumps({"inputs": [str(p) for p in paths]}, indent=2) + "\n")
    return out


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
