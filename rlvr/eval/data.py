"""Reading evaluation data: the RLVR schema and, through adapters, raw GSM8K, MATH and IFEval files.

A file's format is read off its first row's keys (`detect_format`) or given (`--format`); every row
becomes an `Item` (question, label, verifier). A row its adapter cannot read stops the run naming
the file and line, or is left out and listed (`on_bad_row="skip"`) — never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr.data import DataError, JsonLineError, numbered_rows, read_jsonl, row_problems
from rlvr.rewards import gsm8k, ifeval, verifier_name_problems
from rlvr.rewards.contract import LabelError
from rlvr.rewards.math_normalize import last_boxed

Format = Literal["auto", "rlvr", "gsm8k", "math", "ifeval"]
FORMATS: tuple[str, ...] = ("rlvr", "gsm8k", "math", "ifeval")


class AdapterError(ValueError):
    """A row its format's adapter cannot read (reported with the file and line)."""


@dataclass
class Item:
    """One prompt to evaluate: the question, its label and verifier, and where it came from."""

    question: str
    ground_truth: Any
    dataset: str | list[str]
    source: str
    line: int
    context: list[dict[str, str]] = field(default_factory=list)
    """Chat turns before the question (an RLVR row's earlier messages)."""
    weights: list[float] | None = None


def detect_format(row: Mapping[str, Any]) -> str | None:
    """The format a row's keys say it is in (None: none of `FORMATS`)."""
    if "messages" in row:
        return "rlvr"
    if "instruction_id_list" in row and "prompt" in row:
        return "ifeval"
    if "question" in row and "answer" in row:
        return "gsm8k"
    if "problem" in row and ("answer" in row or "solution" in row):
        return "math"
    return None


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise AdapterError(f"'{key}' must be a non-empty string, got {type(value).__name__}")
    return value


def adapt_rlvr(row: Mapping[str, Any]) -> dict[str, Any]:
    """An RLVR row (`messages`, `ground_truth`, `dataset`): the last user turn is the question."""
    problems = row_problems(dict(row), "rlvr") or verifier_name_problems(row)
    if problems:
        raise AdapterError("; ".join(problems))
    messages = row["messages"]
    return {
        "question": messages[-1]["content"],
        "context": list(messages[:-1]),
        "ground_truth": row["ground_truth"],
        "dataset": row["dataset"],
        "weights": row.get("weights"),
    }


def adapt_gsm8k(row: Mapping[str, Any]) -> dict[str, Any]:
    """GSM8K (`question`, `answer` with the final number after `####`)."""
    try:
        label = gsm8k.parse_label(_text(row, "answer"))
    except LabelError as err:
        raise AdapterError(str(err)) from None
    return {"question": _text(row, "question"), "ground_truth": label, "dataset": "gsm8k"}


def adapt_math(row: Mapping[str, Any]) -> dict[str, Any]:
    """MATH / MATH-500 (`problem`, `answer`; without `answer`, the last \\boxed{} of `solution`)."""
    answer = row.get("answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        answer = last_boxed(row["solution"]) if isinstance(row.get("solution"), str) else None
    if not answer or not answer.strip():
        raise AdapterError("no 'answer', and no \\boxed{} answer in 'solution'")
    return {"question": _text(row, "problem"), "ground_truth": answer, "dataset": "math"}


def adapt_ifeval(row: Mapping[str, Any]) -> dict[str, Any]:
    """IFEval (`prompt`, `instruction_id_list`, `kwargs`): the label rlvr's synthetic ifeval rows
    carry, a JSON string of the two lists (the hub copy's null-padded kwargs stripped)."""
    kwargs = row.get("kwargs")
    if isinstance(kwargs, list):
        kwargs = [
            {k: v for k, v in kw.items() if v is not None} if isinstance(kw, dict) else kw for kw in kwargs
        ]
    truth = {"instruction_id_list": row.get("instruction_id_list"), "kwargs": kwargs}
    try:
        ifeval.parse_label(truth)
    except LabelError as err:
        raise AdapterError(str(err)) from None
    return {
        "question": _text(row, "prompt"),
        "ground_truth": json.dumps(truth, ensure_ascii=False),
        "dataset": "ifeval",
    }


ADAPTERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "rlvr": adapt_rlvr,
    "gsm8k": adapt_gsm8k,
    "math": adapt_math,
    "ifeval": adapt_ifeval,
}


def load_items(
    source: str,
    fmt: Format = "auto",
    split: str = "test",
    limit: int | None = None,
    on_bad_row: Literal["error", "skip"] = "error",
) -> tuple[list[Item], list[tuple[int, str]]]:
    """The readable rows of `source` as `Item`s, and `(line, reason)` for each row left out.

    With `on_bad_row="error"` the first unreadable row raises `DataError` naming file and line.
    """
    items: list[Item] = []
    skipped: list[tuple[int, str]] = []
    for line, raw in numbered_rows(source, split):
        if limit is not None and len(items) >= limit:
            break
        row = dict(raw) if hasattr(raw, "keys") else raw
        if fmt == "auto" and isinstance(row, dict):
            detected = detect_format(row)
            if detected is None:
                raise DataError(
                    f"{source}: line {line}: cannot tell the format from the keys {sorted(row)}; "
                    f"expected one of {', '.join(FORMATS)} (see --format)"
                )
            fmt = detected  # type: ignore[assignment]  # one format per file: the first row's
        try:
            if isinstance(row, JsonLineError):
                raise AdapterError(str(row))
            if not isinstance(row, dict):
                raise AdapterError(f"a row must be a JSON object, got {type(row).__name__}")
            items.append(Item(source=source, line=line, **ADAPTERS[fmt](row)))
        except AdapterError as err:
            if on_bad_row == "error":
                raise DataError(
                    f"{source}: line {line}: cannot read this {fmt} row: {err} "
                    "(--on_bad_row=skip leaves such rows out, counted and listed)"
                ) from None
            skipped.append((line, str(err)))
    if not items:
        raise DataError(f"{source}: no readable rows")
    return items, skipped


FEWSHOT_KEYS = (("question", "answer"), ("problem", "solution"))


def _example(row: Any) -> tuple[str, str] | None:
    """`(question, answer)` of a few-shot row, None when it has neither form."""
    if not isinstance(row, dict):
        return None
    messages = row.get("messages")
    if isinstance(messages, list) and [m.get("role") if isinstance(m, dict) else None for m in messages] == [
        "user",
        "assistant",
    ]:
        pair = (messages[0].get("content"), messages[1].get("content"))
    else:
        pair = next(((row.get(q), row.get(a)) for q, a in FEWSHOT_KEYS if q in row), (None, None))
    return (pair[0], pair[1]) if isinstance(pair[0], str) and isinstance(pair[1], str) else None


def read_fewshot(path: str) -> list[tuple[str, str]]:
    """`(question, answer)` examples from a .jsonl of question/answer, problem/solution or
    `messages` [user, assistant] rows."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file (--fewshot)")
    examples = []
    for line, row in read_jsonl(path):
        example = _example(row)
        if example is None:
            raise DataError(
                f"{path}: line {line}: a few-shot example needs question/answer, problem/solution "
                "or messages [user, assistant]"
            )
        examples.append(example)
    return examples


def build_messages(
    item: Item, template: str, system: str | None = None, fewshot: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """The chat for one item: system turn, few-shot turns, the item's earlier turns, the question."""
    messages = [{"role": "system", "content": system}] if system else []
    for question, answer in fewshot:
        messages += [
            {"role": "user", "content": template.format(question=question)},
            {"role": "assistant", "content": answer},
        ]
    return [*messages, *item.context, {"role": "user", "content": template.format(question=item.question)}]
