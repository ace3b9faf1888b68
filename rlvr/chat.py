"""The Tülu 3 / OLMo 2 Instruct chat format.

    <|endoftext|><|user|>\\n{user}\\n<|assistant|>\\n{assistant}<|endoftext|>

(`<|system|>\\n{system}\\n` may precede a user turn.) `CHAT_TEMPLATE` is the Jinja form embedded in
every tokenizer rlvr saves, so `tokenizer.apply_chat_template` and vLLM produce exactly what
`render_chat` produces here; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, *ROLE_TOKENS.values()]
ROLES = tuple(ROLE_TOKENS)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if not loop.last %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}"
)


def render_chat(messages: Sequence[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    """The text `CHAT_TEMPLATE` renders, with `<|endoftext|>` as both BOS and EOS."""
    parts = [EOS_TOKEN]
    last = len(messages) - 1
    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "assistant":
            parts.append(f"<|assistant|>\n{content}{EOS_TOKEN}" + ("\n" if i != last else ""))
        elif role in ROLE_TOKENS:
            parts.append(f"{ROLE_TOKENS[role]}\n{content}\n")
        if i == last and add_generation_prompt:
            parts.append("<|assistant|>\n")
    return "".join(parts)


def render_segments(messages: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The rendered chat split into `(text, is_assistant_output)` pieces, for assistant-only loss.

    The trainable part of an assistant turn is its content and the EOS that ends it; the role
    marker `<|assistant|>\\n` and everything the user or system wrote is context only.
    """
    segments: list[tuple[str, bool]] = [(EOS_TOKEN, False)]
    last = len(messages) - 1
    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "assistant":
            segments.append(("<|assistant|>\n", False))
            segments.append((content + EOS_TOKEN, True))
            if i != last:
                segments.append(("\n", False))
        elif role in ROLE_TOKENS:
            segments.append((f"{ROLE_TOKENS[role]}\n{content}\n", False))
    return segments
