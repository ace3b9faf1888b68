"""Loading and validating the three data shapes rlvr trains on.

- `rlvr` (prompts for RL and eval): `{"messages": [...], "ground_truth": str | list, "dataset": str | list}`
- `sft` (demonstrations): `{"messages": [...]}`
- `prefs` (preference pairs): `{"chosen": [...], "rejected": [...]}`

A source is a local `.jsonl`/`.json`/`.parquet` file or a Hugging Face hub name (`org/name`,
optionally `org/name:split`). Every bad row is reported by line (or row) number; the caller
chooses between an error (default) and a counted, reported skip — rows are never dropped silently.

Local JSONL is read line by line rather than through `datasets`: the RLVR schema mixes types in
one column (`ground_truth` is a string in one row and a list in the next, IFEval kwargs are
heterogeneous dicts), which Arrow rejects or silently pads with nulls, and a malformed line must be
reported by its number. Parquet files and hub data sets go through `datasets`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlvr.chat import ROLES

Kind = Literal["rlvr", "sft", "prefs", "text"]
KINDS: tuple[Kind, ...] = ("rlvr", "sft", "prefs", "text")
MAX_ERRORS_SHOWN = 20


class DataError(ValueError):
    """A data source that cannot be used as asked: missing, unreadable, or with bad rows."""


@dataclass
class LoadReport:
    """What loading kept and skipped; `skipped` holds `(line, reason)` for every row left out."""

    source: str
    kept: int
    skipped: list[tuple[int, str]]

    def summary(self) -> str:
        text = f"{self.source}: {self.kept:,} rows"
        if self.skipped:
            text += f", {len(self.skipped):,} skipped ({_format_problems(self.skipped)})"
        return text


class Rows(list[dict[str, Any]]):
    """The loaded rows (a plain list) with the `LoadReport` of how they were loaded."""

    def __init__(self, rows: Iterable[dict[str, Any]], report: LoadReport) -> None:
        super().__init__(rows)
        self.report = report


def message_problems(messages: Any, field: str, need_final: str | None = None) -> list[str]:
    """Problems with one chat: a non-empty list of `{"role", "content"}` with known roles."""
    if not isinstance(messages, list) or not messages:
        return [f"'{field}' must be a non-empty list of messages"]
    problems = []
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{where} must be an object with 'role' and 'content'")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problems.append(f"{where}.role is {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            problems.append(f"{where}.content must be a string, got {type(content).__name__}")
        elif not content.strip():
            problems.append(f"{where}.content is empty")
    if not problems and need_final and messages[-1]["role"] != need_final:
        problems.append(f"'{field}' must end with a {need_final} message, ends with {messages[-1]['role']}")
    return problems


def _label_problems(row: dict[str, Any]) -> list[str]:
    dataset, truth = row.get("dataset"), row.get("ground_truth")
    if "ground_truth" not in row:
        return ["missing 'ground_truth'"]
    if isinstance(dataset, str):
        if not dataset:
            return ["'dataset' (the verifier name) is empty"]
        return []
    if isinstance(dataset, list):
        if not dataset or not all(isinstance(d, str) and d for d in dataset):
            return ["'dataset' must be a verifier name or a non-empty list of names"]
        if not isinstance(truth, list) or len(truth) != len(dataset):
            return [
                f"'dataset' lists {len(dataset)} verifiers, so 'ground_truth' must be a list of as many labels"
            ]
        weights = row.get("weights")
        if weights is not None and (
            not isinstance(weights, list)
            or len(weights) != len(dataset)
            or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        ):
            return [f"'weights' must be a list of {len(dataset)} numbers, parallel to 'dataset'"]
        return []
    return ["missing 'dataset' (the verifier name, e.g. gsm8k, math, ifeval)"]


def row_problems(row: Any, kind: Kind) -> list[str]:
    """Everything wrong with one row of the given kind; an empty list means the row is valid."""
    if not isinstance(row, dict):
        return [f"a row must be a JSON object, got {type(row).__name__}"]
    if kind == "rlvr":
        return message_problems(row.get("messages"), "messages", need_final="user") + _label_problems(row)
    if kind == "sft":
        return message_problems(row.get("messages"), "messages", need_final="assistant")
    if kind == "prefs":
        problems = message_problems(row.get("chosen"), "chosen", need_final="assistant")
        problems += message_problems(row.get("rejected"), "rejected", need_final="assistant")
        if not problems and row["chosen"] == row["rejected"]:
            problems.append("'chosen' and 'rejected' are identical")
        return problems
    if kind == "text":
        text = row.get("text")
        if not isinstance(text, str) or not text:
            return ["'text' must be a non-empty string"]
        return []
    raise ValueError(f"unknown data kind {kind!r}; expected one of {', '.join(KINDS)}")


def read_jsonl(path: str | Path) -> Iterable[tuple[int, Any]]:
    """Yield `(line_number, object)`; a line that is not JSON yields `(line_number, JsonLineError)`."""
    with Path(path).open(encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                yield number, JsonLineError(f"not valid JSON ({err.msg} at column {err.colno})")


class JsonLineError(str):
    """Marks a JSONL line that failed to parse (carried as a row so it is reported, not lost)."""


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def numbered_rows(source: str, split: str) -> Iterable[tuple[int, Any]]:
    """`(line or row number, row)` from a local .jsonl / .json / .parquet file, or a hub data set
    `org/name[:split]` or `org/name:config:split` (through `datasets.load_dataset`)."""
    path = Path(source)
    if path.exists():
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            if suffix == ".json" and path.read_text(encoding="utf-8", errors="replace").lstrip().startswith(
                "["
            ):
                data = json.loads(path.read_text(encoding="utf-8"))
                return enumerate(data, start=1)
            return read_jsonl(path)
        if suffix == ".parquet":
            import datasets

            return enumerate(datasets.load_dataset("parquet", data_files=str(path), split="train"), start=1)
        raise DataError(f"{source}: unsupported file type '{suffix}'; use .jsonl, .json or .parquet")
    if source.endswith((".jsonl", ".json", ".parquet")) or source.startswith((".", "/")):
        raise DataError(f"{source}: no such file")
    name, *rest = source.split(":")
    config, hub_split = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0] if rest else split)
    import datasets

    try:
        data = datasets.load_dataset(name, config, split=hub_split)
    except Exception as err:  # datasets raises many types for "not found / offline"
        raise DataError(
            f"{source}: could not load from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Use a local .jsonl/.parquet path, or check the name and your network."
        ) from err
    return enumerate(data, start=1)


def load_rows(
    source: str | Path,
    kind: Kind,
    split: str = "train",
    on_bad_row: Literal["error", "skip"] = "error",
    check: Callable[[int, dict[str, Any]], list[str]] | None = None,
    limit: int | None = None,
) -> Rows:
    """Load and validate rows of `kind` from a local file or a hub name.

    `check(line, row)` adds problems of the caller's own (e.g. an unknown verifier name).
    With `on_bad_row="error"` any bad row raises `DataError` listing every bad row by line;
    with `"skip"` bad rows are left out, listed in `rows.report` and summarised on stderr.
    """
    source = str(source)
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    for line, row in numbered_rows(source, split):
        if limit is not None and len(rows) >= limit:
            break
        if isinstance(row, JsonLineError):
            problems = [str(row)]
        else:
            row = dict(row) if not isinstance(row, dict) and hasattr(row, "keys") else row
            problems = row_problems(row, kind)
            if not problems and check is not None:
                problems = check(line, row)
        if problems:
            bad.append((line, "; ".join(problems)))
        else:
            rows.append(row)
    if bad and on_bad_row == "error":
        raise DataError(
            f"{source}: {len(bad):,} bad {kind} row(s) — {_format_problems(bad)}. "
            "Fix them, or load with on_bad_row=skip to leave them out (they are counted and reported)."
        )
    if not rows:
        raise DataError(f"{source}: no valid {kind} rows")
    report = LoadReport(source=source, kept=len(rows), skipped=bad)
    if bad:
        print(f"warning: {report.summary()}", file=sys.stderr)
    return Rows(rows, report)


def _format_problems(bad: Sequence[tuple[int, str]]) -> str:
    shown = "; ".join(f"line {line}: {reason}" for line, reason in bad[:MAX_ERRORS_SHOWN])
    if len(bad) > MAX_ERRORS_SHOWN:
        shown += f"; … and {len(bad) - MAX_ERRORS_SHOWN:,} more"
    return shown


def main_validate(paths: Sequence[str], kind: Kind) -> int:
    """`rlvr data validate --kind K FILE...`: report every bad row; exit 1 if any file has one."""
    status = 0
    for path in paths:
        try:
            report = load_rows(path, kind, on_bad_row="skip").report
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        if report.skipped:
            status = 1
        else:
            print(report.summary())
    return status
