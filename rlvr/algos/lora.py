"""Optional LoRA (PEFT) for every post-training stage.

A LoRA run still writes plain Hugging Face checkpoints: the adapters are merged into the weights
*functionally* (W + ΔW computed into a new state dict, the live model untouched, so a run that saves
and one that does not follow the same numbers), and the next stage or vLLM loads the directory like
any other. The adapter itself is kept in `adapter/` beside the merged weights for resuming; it sits
in a sub-directory because `from_pretrained` treats an `adapter_config.json` at the top level as a
PEFT model to load onto a base it would look for by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ADAPTER_DIR = "adapter"


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


def wrap_lora(model: torch.nn.Module, cfg: LoraConfig, modules_to_save: tuple[str, ...] = ()) -> Any:
    """The model with LoRA adapters on `cfg.target_modules`; everything else frozen except `modules_to_save`."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        modules_to_save=list(modules_to_save) or None,
        bias="none",
    )
    return get_peft_model(model, peft_cfg)


@torch.no_grad()
def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The weights a merged model would have (W + ΔW), under the base model's own key names."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas = {
        f"{name}.weight": module.get_delta_weight(module.active_adapters[0])
        for name, module in base.named_modules()
        if isinstance(module, LoraLayer)
    }
    merged = {}
    for key, tensor in base.state_dict().items():
        if "lora_" in key or ".original_module." in key:
            continue
        key = key.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")
        merged[key] = tensor + deltas[key] if key in deltas else tensor
    return merged


def save_lora_checkpoint(model: Any, tokenizer: Any, path: Path) -> None:
    """Merged Hugging Face weights + tokenizer in `path`, the adapter in `path/adapter`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.get_base_model().save_pretrained(
        str(path), state_dict=merged_state_dict(model), safe_serialization=True
    )
    tokenizer.save_pretrained(str(path))
    model.save_pretrained(str(path / ADAPTER_DIR))


def load_adapter(model: Any, path: Path) -> None:
    """Put a checkpoint's adapter (and fully trained modules) into a LoRA-wrapped model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = path / ADAPTER_DIR / "adapter_model.safetensors"
    if not file.is_file():
        raise FileNotFoundError(
            f"{path} has no LoRA adapter ({file} missing); was it trained with lora.enabled?"
        )
    result = set_peft_model_state_dict(model, load_file(str(file)))
    if result.unexpected_keys:
        raise ValueError(f"{file} does not fit this model: unexpected {result.unexpected_keys[:5]}")
