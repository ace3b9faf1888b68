"""Where a model argument points: one resolver for every command that takes a model.

`resolve_model(name)` turns what a user writes (`init_from`, `policy`, `reward_model`, `eval --model`,
the pipeline's `base`) into a local Hugging Face checkpoint folder, before transformers, vLLM or a
weight-sync folder touch it:

- a folder with `config.json` and weights (`*.safetensors`, or `pytorch_model*.bin`) → that folder;
- an rlvr run directory (or its `checkpoints/` folder) → its newest complete checkpoint: `stepN-tokensXB/`
  of `rlvr sft|dpo|rm`, the `policy/` of `rlvr ppo`'s newest checkpoint (a PPO checkpoint folder → its `policy/`);
- a hub name `org/name` or `org/name@revision` that is not a local path → `huggingface_hub.snapshot_download`
  into the local Hugging Face cache (HF_HUB_CACHE / HF_HOME; with HF_HUB_OFFLINE=1 only the cache is read),
  config, tokenizer and safetensors files only (`.bin` weights only for a repo without safetensors).

The checkpoint's `config.json` `architectures` are checked against what the caller needs. Anything
that does not lead to a usable checkpoint raises `ModelPathError`: one line naming the argument, the
path or name, what was found, what was expected and how to fix it. It is a `ConfigError`, so every
`rlvr` command reports it and exits 2 without a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from rlvr.config import ConfigError

Expect = Literal["causal_lm", "sequence_classification", "any"]

EXPECTED = {
    "causal_lm": "a causal language model (*ForCausalLM), e.g. a base, sft or dpo checkpoint",
    "sequence_classification": "a sequence-classification reward model (*ForSequenceClassification), "
    "e.g. an `rlvr rm` checkpoint",
    "any": "a causal language model (*ForCausalLM) or a sequence-classification model (*ForSequenceClassification)",
}
ACCEPTS = (
    "a Hugging Face checkpoint folder (config.json + weights), an rlvr run directory or a hub name org/name"
)

HUB_FILES = [
    "*.json",  # config, generation config, tokenizer files, the safetensors index
    "*.safetensors",
    "*.jinja",  # chat templates
    "tokenizer.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
]
"""What a hub checkpoint is fetched with: everything transformers and vLLM load, no `.bin`/`.pt`/`.gguf`
duplicates of the safetensors weights, no training states or other revisions kept in subfolders."""
HUB_BIN_FILES = ["pytorch_model*.bin"]
"""Fetched as well only when a repo has no safetensors weights."""
HUB_SKIP = ["*/*"]

_HUB_NAME = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
TRAINER_STATE = "trainer_state.json"  # rlvr.train.checkpoint.STATE_FILE, without importing torch


class ModelPathError(ConfigError):
    """A model argument that does not lead to a usable checkpoint (a one-line message)."""

    label = ""
    """`rlvr.cli` prints the message after `rlvr <command>: ` as it is (the message names the argument)."""


def resolve_model(
    name: str | Path,
    expect: Literal["causal_lm", "sequence_classification", "any"] = "any",
    what: str = "model",
) -> Path:
    """The local checkpoint folder `name` stands for (see the module docstring).

    `expect`: `causal_lm` (a policy, an SFT/DPO start, an evaluated model), `sequence_classification`
    (a reward model) or `any` (either: `rlvr rm` starts from a causal LM or continues a reward model).
    A `config.json` without `architectures` is not checked. `what` names the argument in messages
    (`init_from`, `policy`, ...). Raises `ModelPathError`.
    """
    text = str(name).strip()
    if not text:
        raise ModelPathError(f"{what} is empty; set it to {ACCEPTS}")
    local = Path(text).expanduser()
    if local.exists():
        folder, shown = _local_checkpoint(local, text, what)
    elif (match := _hub_name(text)) is not None:
        folder, shown = _from_hub(match["repo"], match["revision"], text, what), text
    else:
        raise ModelPathError(f"{what}: {text} does not exist; expected {ACCEPTS}")
    _check_weights(folder, shown, what)
    _check_architecture(folder, shown, expect, what)
    return folder


# ----------------------------------------------------------------------------- local folders


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _local_checkpoint(local: Path, text: str, what: str) -> tuple[Path, str]:
    """`(checkpoint folder, how to name it in messages)` for an existing path."""
    if not local.is_dir():
        raise ModelPathError(f"{what}: {text} is a file; expected {ACCEPTS}")
    if _is_checkpoint(local):
        return local, text
    if _is_checkpoint(local / "policy"):  # an `rlvr ppo` checkpoint
        return local / "policy", f"{text} (its policy/)"
    for ckpt_dir in (local / "checkpoints", local):
        newest = _newest_checkpoint(ckpt_dir)
        if newest is not None:
            return newest, f"{text} (newest checkpoint {newest})"
    if (local / "checkpoints").is_dir():
        raise ModelPathError(
            f"{what}: {text} is a run directory without a complete checkpoint in checkpoints/ (none has "
            f"{TRAINER_STATE}); let the run save one, or point {what} at a checkpoint folder"
        )
    raise ModelPathError(
        f"{what}: {text} holds no checkpoint (no config.json, no checkpoints/); expected {ACCEPTS}"
    )


def _newest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint in a run's `checkpoints/`: a stage's `stepN-tokensXB/`, or its
    `policy/` for a PPO run; None when there is none."""
    if not ckpt_dir.is_dir():
        return None
    from rlvr.train.checkpoint import list_checkpoints

    found = list_checkpoints(ckpt_dir)
    if not found:
        return None
    return found[-1] / "policy" if _is_checkpoint(found[-1] / "policy") else found[-1]


def _check_weights(folder: Path, shown: str, what: str) -> None:
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        raise ModelPathError(
            f"{what}: {shown} has config.json but no weights (*.safetensors or pytorch_model*.bin); "
            "is the checkpoint complete?"
        )


def _check_architecture(folder: Path, shown: str, expect: Expect, what: str) -> None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelPathError(f"{what}: {shown}: config.json cannot be read ({_one_line(err)})") from None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not architectures or not isinstance(architectures, list):
        return  # nothing to check against; transformers decides from model_type
    kinds = {_kind(str(a)) for a in architectures}
    if expect in kinds or (expect == "any" and kinds & {"causal_lm", "sequence_classification"}):
        return
    found = ", ".join(map(str, architectures))
    kind = {"causal_lm": "a causal LM", "sequence_classification": "a sequence-classification model"}.get(
        next(iter(kinds)), "a model"
    )
    raise ModelPathError(f"{what}: {shown} is {kind} ({found}); expected {EXPECTED[expect]}")


def _kind(architecture: str) -> str:
    if architecture.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    if architecture.endswith("ForSequenceClassification"):
        return "sequence_classification"
    return "other"


# ----------------------------------------------------------------------------- the hub


def _hub_name(text: str) -> re.Match[str] | None:
    """`org/name[@revision]`, not a path (no leading `/`, `.`, `~`)."""
    if text.startswith(("/", ".", "~")):
        return None
    return _HUB_NAME.match(text)


def _from_hub(repo: str, revision: str | None, text: str, what: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = constants.is_offline_mode()
    where = f"{text} is not a local path"

    def fetch(patterns: list[str]) -> Path:
        return Path(
            snapshot_download(repo, revision=revision, allow_patterns=patterns, ignore_patterns=HUB_SKIP)
        )

    try:
        folder = fetch(HUB_FILES)
        if not offline and not any(folder.glob("*.safetensors")):
            folder = fetch(HUB_FILES + HUB_BIN_FILES)
    except HFValidationError as err:
        raise ModelPathError(
            f"{what}: {where} nor a valid hub name ({_one_line(err)}); expected {ACCEPTS}"
        ) from None
    except GatedRepoError:
        raise ModelPathError(
            f"{what}: {where}, and the hub model {repo} is gated: accept its licence on huggingface.co, "
            "then log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelPathError(
            f"{what}: {where}, and the hub has no model {repo} (or it is private: log in with "
            f"`hf auth login` or HF_TOKEN); expected {ACCEPTS}"
        ) from None
    except RevisionNotFoundError:
        raise ModelPathError(f"{what}: the hub model {repo} has no revision {revision!r}") from None
    except LocalEntryNotFoundError as err:
        cache = constants.HF_HUB_CACHE
        if offline:
            raise ModelPathError(
                f"{what}: {where}, and the hub model {repo}{'@' + revision if revision else ''} is not in the "
                f"local Hugging Face cache {cache} (HF_HUB_OFFLINE=1): download it once online "
                f"(`hf download {repo}{' --revision ' + revision if revision else ''}`), or unset HF_HUB_OFFLINE"
            ) from None
        raise ModelPathError(
            f"{what}: {where}, and the hub model {repo} could not be fetched nor found in the cache {cache} "
            f"({_one_line(err.__cause__ or err)}); check the connection, or set HF_HUB_CACHE to a cache that holds it"
        ) from None
    except OSError as err:  # HTTP errors (a Hub outage), a cache that cannot be written
        raise ModelPathError(f"{what}: the hub model {repo} could not be fetched: {_one_line(err)}") from None
    return folder


def _one_line(err: Any) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, Exception) and not isinstance(err, ModelPathError):
        text = f"{type(err).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."
