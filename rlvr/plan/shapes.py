"""Model shapes the planner counts bytes from: a checkpoint's `config.json`, or a built-in OLMo 2 shape.

A model argument (`init_from`, `policy`, `reward_model`) is read the way the trainers would read it,
without downloading anything: a local folder or run directory through `rlvr.checkpoints.resolve_model`,
a hub name through the local Hugging Face cache only. The OLMo 2 presets name hub models that a
machine planning a cluster run rarely has, so the published OLMo 2 shapes are built in and used when
the cache has no copy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlvr.config import ConfigError

Head = Literal["lm", "score"]
"""What sits on the decoder: the vocabulary projection of a causal LM (`lm`), or the one-output
score head of a reward or value model (`score`, `*ForSequenceClassification`)."""

DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


@dataclass(frozen=True)
class ModelShape:
    """An OLMo 2 decoder's sizes (the `config.json` keys of the same names)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False
    """`tie_word_embeddings`: the LM head reuses the embedding matrix."""
    dtype_bytes: int = 4
    """Bytes per weight as saved (`torch_dtype`); what vLLM's `dtype: auto` loads."""
    source: str = ""
    """Where the numbers came from, for the report."""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection: kv heads × head size."""
        return self.kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """One decoder layer: q, k, v, o projections, QK-norm gains, SwiGLU (gate, up, down), the two
        sub-layer norms; OLMo 2 has no biases."""
        h, kv = self.hidden, self.kv_dim
        attention = 2 * h * h + 2 * h * kv + h + kv
        return attention + 3 * h * self.intermediate + 2 * h

    def root_params(self, head: Head) -> int:
        """Everything outside the decoder layers: embedding, final norm and the head. FSDP2 shards
        these as one group (the root module's)."""
        h = self.hidden
        out = h if head == "score" else 0 if self.tied else h * self.vocab
        return self.vocab * h + h + out

    def params(self, head: Head) -> int:
        return self.layers * self.layer_params + self.root_params(head)

    @property
    def largest_param(self) -> int:
        """Elements of the biggest single tensor (the embedding, or a SwiGLU matrix)."""
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)


# The published config.json of each OLMo 2 release (hidden_size, intermediate_size, num_hidden_layers,
# num_attention_heads, num_key_value_heads, vocab_size; tie_word_embeddings false in all three). They
# are the values of base_model.model's olmo2_1b / olmo2_7b / olmo2_13b presets and of docs/recipe.md
# ("Sizes": MLP widths 11008 and 13824, a vocabulary padded to 100,352 rows). The 13B count they give,
# 13,716,198,400 parameters, is the `total_size` of allenai/OLMo-2-1124-13B's safetensors index
# (54,864,793,600 bytes) over 4 bytes: that release is saved in float32, as `torch_dtype` says.
OLMO2_SHAPES: dict[str, ModelShape] = {
    "1B": ModelShape(2048, 8192, 16, 16, 16, 100_352, source="built-in OLMo 2 1B shape"),
    "7B": ModelShape(4096, 11_008, 32, 32, 32, 100_352, source="built-in OLMo 2 7B shape"),
    "13B": ModelShape(5120, 13_824, 40, 40, 40, 100_352, source="built-in OLMo 2 13B shape"),
}
_OLMO2_RELEASES = [
    (re.compile(r"^allenai/OLMo-2-0425-1B(-[\w.-]+)?$", re.IGNORECASE), "1B"),
    (re.compile(r"^allenai/OLMo-2-1124-7B(-[\w.-]+)?$", re.IGNORECASE), "7B"),
    (re.compile(r"^allenai/OLMo-2-1124-13B(-[\w.-]+)?$", re.IGNORECASE), "13B"),
]
"""Every OLMo 2 release of a size (base, -SFT, -DPO, -RM, -Instruct, ...) shares its decoder shape."""
_HUB_NAME = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


def shape_from_config(config: dict, source: str) -> ModelShape:
    """The shape in a `config.json` mapping. A key missing from it is an error naming the file."""
    try:
        heads = int(config["num_attention_heads"])
        return ModelShape(
            hidden=int(config["hidden_size"]),
            intermediate=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            dtype_bytes=DTYPE_BYTES.get(str(config.get("torch_dtype") or config.get("dtype")), 4),
            source=source,
        )
    except KeyError as err:
        raise ConfigError(f"{source} has no {err.args[0]}: not a decoder config rlvr plan can size") from None


def read_shape(path: Path, source: str) -> ModelShape:
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{source}: cannot read {path}: {err}") from None
    return shape_from_config(config, source)


def model_shape(name: str, what: str) -> ModelShape:
    """The shape of the model `name` points to (`what`: the config key, for messages).

    A local path: its checkpoint's `config.json` (a run directory: its newest checkpoint). A hub name
    `org/name[@revision]`: the `config.json` in the local Hugging Face cache, else the built-in shape
    of an OLMo 2 release. Nothing is downloaded."""
    text = str(name).strip()
    if not text:
        raise ConfigError(f"{what} is empty: set it to the model this stage starts from")
    if Path(text).expanduser().exists():
        from rlvr.checkpoints import resolve_model

        folder = resolve_model(text, "any", what)
        return read_shape(folder / "config.json", f"{folder}/config.json")
    match = _HUB_NAME.match(text)
    if match is None or text.startswith(("/", ".", "~")):
        raise ConfigError(
            f"{what}: {text} does not exist; expected a checkpoint folder, a run directory or a hub name"
        )
    repo, revision = match["repo"], match["revision"]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json", revision=revision)
    if isinstance(cached, str):
        return read_shape(Path(cached), "config.json in the local Hugging Face cache")
    for pattern, size in _OLMO2_RELEASES:
        if pattern.match(repo):
            return OLMO2_SHAPES[size]
    raise ConfigError(
        f"{what}: the hub model {text} is not in the local Hugging Face cache and rlvr has no built-in shape "
        f"for it (built in: OLMo 2 {', '.join(OLMO2_SHAPES)}); fetch its config with "
        f"`hf download {repo} config.json`, or point {what} at a local checkpoint folder"
    )
