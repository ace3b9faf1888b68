"""The `reward_model` verifier: score a response with a trained reward-model checkpoint.

A checkpoint is a `transformers` AutoModelForSequenceClassification directory (rlvr's reward
models are `Olmo2ForSequenceClassification`) with its tokenizer. The reward is the head's output at
the last non-pad token of ``prompt + response`` — rendered with the tokenizer's chat template when
it has one. Batches are right-padded, so that token is found from the attention mask, independent of
which id pads. The verifier's score is ``sigmoid(reward)`` (the Bradley–Terry probability of beating a
reward-0 response), keeping the contract's [0, 1]; the raw reward is in ``details["reward"]``.

For many rows at once, use `RewardModelScorer.rewards` directly: it batches on one model, where
`score_batch` would load the model once per worker process. A caller that has already computed the
rewards that way passes each row's raw reward as the label ``{"reward": r}``: the verifier then only
turns it into ``sigmoid(r)`` and loads nothing (PPO's sampler does this, `rlvr.algos.ppo.sampler`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr.rewards.contract import LabelError, VerifierResult, register

Prompt = str | Sequence[Mapping[str, Any]] | None
"""What a response answers: the user turn, a chat's messages (``role``/``content``), or nothing."""


class RewardModelScorer:
    """A loaded reward model: `rewards(prompts, responses)` → one float per pair."""

    def __init__(
        self, path: str | Path, device: str = "cpu", batch_size: int = 8, max_length: int = 2048
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = str(path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path).to(self.device).eval()
        if not hasattr(self.model, "score") or self.model.config.num_labels != 1:
            raise ValueError(
                f"{self.path}: expected a sequence-classification model with a 1-output `score` head"
            )

    def render(self, prompt: Prompt, response: str) -> str:
        """The text the model reads: the chat template if the tokenizer has one, else prompt + response.
        `prompt` is the user turn, or a whole chat (a list of messages, system turns included)."""
        if isinstance(prompt, str | None):
            messages = [{"role": "user", "content": prompt}] if prompt is not None else []
        else:
            messages = [dict(m) for m in prompt]
        if self.tokenizer.chat_template:
            messages.append({"role": "assistant", "content": response})
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return "".join(m["content"] for m in messages) + response

    def rewards(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> list[float]:
        """The raw reward (the head's output, no transform) of each prompt + response."""
        import torch

        rendered = [self.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        out: list[float] = []
        backbone = getattr(self.model, self.model.base_model_prefix)
        for start in range(0, len(rendered), self.batch_size):
            chunk = rendered[start : start + self.batch_size]
            batch = self.tokenizer(
                chunk,
                # a chat template already holds the special tokens; plain text gets the tokenizer's own
                add_special_tokens=not self.tokenizer.chat_template,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                hidden = backbone(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
                values = self.model.score(hidden).squeeze(-1).float()
            last = batch["attention_mask"].sum(dim=1) - 1
            out.extend(values[torch.arange(len(chunk), device=self.device), last].tolist())
        return out


@functools.lru_cache(maxsize=2)
def load_scorer(path: str, device: str = "cpu") -> RewardModelScorer:
    """A cached scorer per checkpoint (loading one takes seconds; verifiers are called per row)."""
    return RewardModelScorer(path, device=device)


def _model_path(label: Any, model: str | None) -> str:
    if model is not None:
        return str(model)
    if isinstance(label, dict) and isinstance(label.get("model"), str):
        return label["model"]
    if isinstance(label, str) and label.strip():
        return label
    raise LabelError(
        'reward_model needs a checkpoint: the option model=PATH, or a label PATH / {"model": PATH}'
    )


@register("reward_model", aliases=("rm",))
def reward_model(
    prediction: str, label: Any, prompt: str | None = None, model: str | None = None, device: str = "cpu"
) -> VerifierResult:
    """sigmoid(reward) of the checkpoint for ``prompt + prediction``; the raw reward is in details.
    A label ``{"reward": r}`` is a reward the caller computed already: only the sigmoid is applied."""
    if isinstance(label, Mapping) and "reward" in label:
        reward = float(label["reward"])
        details = {"reward": reward, **({"model": label["model"]} if "model" in label else {})}
        return VerifierResult(_sigmoid(reward), details)
    path = _model_path(label, model)
    reward = load_scorer(_local_model(path), device).rewards([prompt], [prediction])[0]
    return VerifierResult(_sigmoid(reward), {"reward": reward, "model": path})


@functools.lru_cache(maxsize=8)
def _local_model(name: str) -> str:
    """A reward-model checkpoint folder, run directory or hub name as its local folder (once per name)."""
    from rlvr.checkpoints import ModelPathError, resolve_model

    try:
        return str(resolve_model(name, "sequence_classification", "reward_model verifier model"))
    except ModelPathError as err:
        raise LabelError(str(err)) from None


def _sigmoid(reward: float) -> float:
    return 1.0 / (1.0 + math.exp(-reward)) if reward > -700 else 0.0
