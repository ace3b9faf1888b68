"""`rlvr verify --input IN.jsonl --output OUT.jsonl`: score predictions with the verifiers.

Each input row has ``prediction``, ``ground_truth`` and ``dataset`` (the verifier name or a list of
them), optionally ``prompt`` and ``weights``. Each output row is the input row plus ``score`` and
``details``, in input order. Any malformed row or unknown verifier stops the command before scoring,
listing every bad line. A per-verifier table (rows, mean score, timeouts, errors, rows/s) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rlvr.rewards.batch import BatchScorer
from rlvr.rewards.contract import VerifierResult, warm_up
from rlvr.rewards.math_verifiers import DEFAULT_TIMEOUT
from rlvr.rewards.routing import row_problems

MAX_PROBLEMS_SHOWN = 50


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, row)`` for each non-blank line; a line that is not JSON yields a `ValueError`."""
    # surrogateescape: invalid UTF-8 reaches the verifiers (which must cope) instead of failing the read
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    yield number, ValueError(f"not valid JSON ({err.msg} at column {err.colno})")


def _json_line(row: dict[str, Any]) -> str:
    try:
        return json.dumps(row, ensure_ascii=False).encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be written as UTF-8: escape them
        return json.dumps(row, ensure_ascii=True)


def summary_table(results: Sequence[VerifierResult], wall_seconds: float) -> str:
    """One line per verifier: rows, mean score, timeouts, errors and rows/s of verifier time."""
    stats: dict[str, list[float]] = {}
    for result in results:
        for part in result.parts or [result]:
            entry = stats.setdefault(part.verifier or "?", [0, 0.0, 0, 0, 0.0])
            entry[0] += 1
            entry[1] += part.score
            entry[2] += part.timed_out
            entry[3] += "error" in part.details
            entry[4] += part.seconds
    lines = [f"{'verifier':<16} {'rows':>8} {'mean score':>10} {'timeouts':>8} {'errors':>7} {'rows/s':>10}"]
    for name, (rows, total, timeouts, errors, seconds) in sorted(stats.items()):
        rate = rows / seconds if seconds > 0 else float("inf")
        lines.append(
            f"{name:<16} {rows:>8,.0f} {total / rows:>10.4f} {timeouts:>8,.0f} {errors:>7,.0f} {rate:>10,.0f}"
        )
    count = len(results)
    mean = sum(r.score for r in results) / count if count else 0.0
    timeouts = sum(r.timed_out for r in results)
    rate = count / wall_seconds if wall_seconds > 0 else float("inf")
    lines.append(f"{'all rows':<16} {count:>8,} {mean:>10.4f} {timeouts:>8,} {'':>7} {rate:>10,.0f}")
    lines.append(
        "(rows/s per verifier: rows per second of its own time in one process; all rows: wall clock)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlvr verify", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input", required=True, type=Path, help="JSONL with prediction, ground_truth, dataset"
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="JSONL: the input rows plus score and details"
    )
    parser.add_argument("--ifeval-mode", choices=("strict", "loose"), default="strict")
    parser.add_argument("--workers", type=int, default=1, help="processes scoring in parallel (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="symbolic-check seconds per math row"
    )
    args = parser.parse_args(list(argv))
    if not args.input.is_file():
        print(f"rlvr verify: {args.input}: no such file", file=sys.stderr)
        return 2
    rows, problems = [], []
    for line, row in read_rows(args.input):
        found = [str(row)] if isinstance(row, ValueError) else row_problems(row)
        problems += [(line, problem) for problem in found]
        rows.append(row)
    if problems:
        print(f"rlvr verify: {args.input}: {len(problems):,} problem(s), nothing scored:", file=sys.stderr)
        for line, problem in problems[:MAX_PROBLEMS_SHOWN]:
            print(f"  line {line}: {problem}", file=sys.stderr)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            print(f"  … and {len(problems) - MAX_PROBLEMS_SHOWN:,} more", file=sys.stderr)
        return 1
    if not rows:
        print(f"rlvr verify: {args.input}: no rows", file=sys.stderr)
        return 1
    math_options = {"timeout": args.timeout}
    options = {"ifeval": {"mode": args.ifeval_mode}, "math": math_options, "strict_math": math_options}
    with BatchScorer(args.workers, options) as scorer:
        if args.workers == 1:
            warm_up()  # load models and start a sandbox now, so per-verifier rates measure scoring
        start = time.perf_counter()
        results = scorer.score(rows)
        wall = time.perf_counter() - start
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as f:
        for row, result in zip(rows, results, strict=True):
            f.write(_json_line({**row, "score": result.score, "details": result.details}) + "\n")
    print(summary_table(results, wall))
    print(f"wrote {len(rows):,} rows to {args.output}")
    return 0
