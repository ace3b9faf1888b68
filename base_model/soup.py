"""Model souping (OLMo 2 stage 2) and the held-out loss of a saved checkpoint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from transformers import AutoModelForCausalLM

from base_model.data import EvalChunks
from base_model.loss import heldout_sums
from rlvr.train.checkpoint import CheckpointError, read_config, read_state_dict
from rlvr.train.precision import autocast_dtype

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
