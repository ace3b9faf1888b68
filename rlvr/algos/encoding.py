"""Chats → token ids and labels: assistant-only labels, the truncation policy, packing, padding.

A chat is rendered once with the chat template (`rlvr.chat.render_segments`) and tokenized as one
string, exactly as `apply_chat_template` and vLLM will tokenize it at inference; a token is
trained on when it starts inside an assistant span (the assistant's content and the EOS closing
it — never the `<|assistant|>\\n` marker or anything a user or system wrote). Marking by character
offsets rather than tokenizing segment by segment keeps the ids identical to inference even where
BPE merges across a segment boundary.

Truncation (`max_length`) never leaves a sequence ending in a template marker or in the middle of
a context turn:
- a row whose prompt (everything before its first trained token) fills the limit cannot be
  trained on: it is skipped, counted and reported;
- otherwise the sequence is cut inside a response (`overlong="truncate"`; the cut response keeps
  no EOS, so the model never learns to stop mid-answer) or, where the limit falls inside a later
  context turn, back at the end of the last whole assistant turn; `overlong="skip"` skips the row
  instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rlvr.chat import render_segments
from rlvr.logprobs import IGNORE_INDEX

Overlong = Literal["truncate", "skip"]


@dataclass
class EncodedChat:
    input_ids: list[int]
    labels: list[int]
    """`input_ids` where trained on, `IGNORE_INDEX` elsewhere (aligned with the ids, not shifted)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_labels(self) -> int:
        """Predicted labels: position 0 has no logit before it (it is always the BOS, never trained)."""
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


@dataclass
class EncodedPair:
    chosen: EncodedChat
    rejected: EncodedChat
    index: int = 0
    """Position in the training set (keys the cached reference log-probs)."""

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)


@dataclass
class EncodeReport:
    """What encoding kept, truncated and skipped (`skipped`: `(row number, reason)`)."""

    source: str
    kept: int = 0
    truncated: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    """What validation left out before encoding (`rlvr.data.LoadReport` summaries, with line numbers)."""

    def summary(self) -> str:
        text = "".join(f"invalid rows left out: {line}\n" for line in self.invalid)
        text += f"{self.source}: {self.kept:,} kept ({self.truncated:,} truncated)"
        if self.skipped:
            reasons: dict[str, int] = {}
            for _, reason in self.skipped:
                reasons[reason] = reasons.get(reason, 0) + 1
            shown = "; ".join(f"{n:,} {reason}" for reason, n in reasons.items())
            rows = ", ".join(str(row) for row, _ in self.skipped[:10])
            more = ", …" if len(self.skipped) > 10 else ""
            text += f", {len(self.skipped):,} skipped ({shown}; rows {rows}{more})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kept": self.kept,
            "truncated": self.truncated,
            "skipped": len(self.skipped),
            "skipped_rows": self.skipped,
            "invalid": self.invalid,
        }


def assistant_spans(
    messages: Sequence[Mapping[str, Any]], last_turn_only: bool = False
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans `[start, end)` to train on.

    `last_turn_only`: only the final assistant turn (the response of a preference pair); else every
    assistant turn (SFT on multi-turn chats).
    """
    text, spans = "", []
    for piece, trained in render_segments(messages):
        if trained:
            spans.append((len(text), len(text) + len(piece)))
        text += piece
    return text, spans[-1:] if last_turn_only else spans


def build_labels(
    input_ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[int]:
    """Labels for `input_ids`: the id where the token starts inside a trained span, else IGNORE_INDEX."""
    labels = []
    for token, (start, _) in zip(input_ids, offsets, strict=True):
        inside = any(lo <= start < hi for lo, hi in spans)
        labels.append(token if inside else IGNORE_INDEX)
    return labels


def truncate(chat: EncodedChat, max_length: int, overlong: Overlong) -> tuple[EncodedChat | None, str]:
    """Apply the truncation policy: `(chat, "")`, `(cut chat, "truncated")` or `(None, reason)`."""
    trained = [i for i, label in enumerate(chat.labels) if label != IGNORE_INDEX]
    if not trained:
        return None, "no assistant tokens"
    if trained[0] >= max_length:
        return None, f"prompt longer than max_length {max_length}"
    if len(chat) <= max_length:
        return chat, ""
    if overlong == "skip":
        return None, f"longer than max_length {max_length}"
    # Cut right after the last trained token within the limit: inside a response, or at the end of
    # the last whole assistant turn when the limit falls in a later context turn.
    cut = max(i for i in trained if i < max_length) + 1
    return EncodedChat(chat.input_ids[:cut], chat.labels[:cut]), "truncated"


def encode_chats(
    tokenizer: Any, chats: Sequence[Sequence[Mapping[str, Any]]], last_turn_only: bool = False
) -> list[EncodedChat]:
    """Tokenize rendered chats in one batched call and label their assistant tokens."""
    rendered = [assistant_spans(messages, last_turn_only) for messages in chats]
    batch = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    return [
        EncodedChat(list(ids), build_labels(ids, offsets, spans))
        for ids, offsets, (_, spans) in zip(
            batch["input_ids"], batch["offset_mapping"], rendered, strict=True
        )
    ]


def encode_sft(
    tokenizer: Any, rows: Sequence[Mapping[str, Any]], max_length: int, overlong: Overlong, source: str
) -> tuple[list[EncodedChat], EncodeReport]:
    """SFT rows (`messages`) → examples trained on every assistant turn, with the encode report."""
    report = EncodeReport(source)
    examples = []
    for number, chat in enumerate(encode_chats(tokenizer, [row["messages"] for row in rows]), start=1):
        kept, note = truncate(chat, max_length, overlong)
        if kept is None:
            report.skipped.append((number, note))
            continue
        report.truncated += note == "truncated"
        examples.append(kept)
    report.kept = len(examples)
    return examples, report


def encode_pairs(
    tokenizer: Any, rows: Sequence[Mapping[str, Any]], max_length: int, overlong: Overlong, source: str
) -> tuple[list[EncodedPair], EncodeReport]:
    """Preference rows → pairs trained on the final assistant turn of each side.

    A pair is skipped (and reported) when either side cannot be kept, or when truncation leaves the
    two sides identical (they differed only past the limit: nothing left to prefer).
    """
    report = EncodeReport(source)
    chosen = encode_chats(tokenizer, [row["chosen"] for row in rows], last_turn_only=True)
    rejected = encode_chats(tokenizer, [row["rejected"] for row in rows], last_turn_only=True)
    pairs = []
    for number, (c, r) in enumerate(zip(chosen, rejected, strict=True), start=1):
        c_kept, c_note = truncate(c, max_length, overlong)
        r_kept, r_note = truncate(r, max_length, overlong)
        if c_kept is None or r_kept is None:
            report.skipped.append((number, c_note if c_kept is None else r_note))
            continue
        if c_kept.input_ids == r_kept.input_ids:
            report.skipped.append((number, f"chosen and rejected identical within max_length {max_length}"))
            continue
        report.truncated += "truncated" in (c_note, r_note)
        pairs.append(EncodedPair(c_kept, r_kept, index=len(pairs)))
    report.kept = len(pairs)
    return pairs, report


def same_prompt_problems(line: int, row: dict[str, Any]) -> list[str]:
    """A preference pair compares two answers to one prompt: everything before the final turn must match."""
    if row["chosen"][:-1] != row["rejected"][:-1]:
        return ["'chosen' and 'rejected' answer different prompts (the turns before the last differ)"]
    return []


def pack(examples: Sequence[EncodedChat], max_length: int) -> list[EncodedChat]:
    """Concatenate examples, in order, into sequences of at most `max_length` tokens.

    Whole examples only (an example is never split across sequences, so truncation stays the
    policy's alone); each example starts with the template's `<|endoftext|>`, so the documents
    stay delimited. Attention is not masked between the documents of one sequence.
    """
    packed: list[EncodedChat] = []
    ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        if ids and len(ids) + len(example) > max_length:
            packed.append(EncodedChat(ids, labels))
            ids, labels = [], []
        ids = ids + example.input_ids
        labels = labels + example.labels
    if ids:
        packed.append(EncodedChat(ids, labels))
    return packed


def pad_right(chats: Sequence[EncodedChat], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, labels)` right-padded to the longest chat (pads are never labels).

    Right padding needs no attention mask under causal attention: a real token never attends to
    a pad that follows it, and positions start at 0 for every row.
    """
    width = max(len(chat) for chat in chats)
    ids = torch.full((len(chats), width), pad_id, dtype=torch.long)
    labels = torch.full((len(chats), width), IGNORE_INDEX, dtype=torch.long)
    for row, chat in enumerate(chats):
        ids[row, : len(chat)] = torch.tensor(chat.input_ids)
        labels[row, : len(chat)] = torch.tensor(chat.labels)
    return ids, labels


def print_report(report: EncodeReport) -> None:
    print(f"data: {report.summary()}", file=sys.stderr)
