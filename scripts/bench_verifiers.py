"""Benchmark the built-in verifiers on the real benchmark files; MATH side by side with math-verify.

    .venv/bin/python scripts/bench_verifiers.py [--data DIR] [--workers 2] [--json out.json]

--data is a folder holding gsm8k_test.jsonl, math500_test.jsonl and ifeval_input_data.jsonl (the
formats of tests/data/README.md); the default is the small slice in tests/data, enough to check the
script runs. For meaningful rates, point it at the full test files (the same data sets are on the
hub as openai/gsm8k, HuggingFaceH4/MATH-500 and google/IFEval).

Rows per verifier (all built from the files in --data, no model needed):
- gsm8k: every gold solution against its own final answer and against another problem's answer.
- ifeval: four synthetic responses per IFEval prompt (plain, lower case, upper case, with markdown
  structure), scored in strict and in loose mode.
- math: MATH-500 reference solutions against their answers ("positives"), equivalent rewrites of
  every answer (`rlvr.rewards.harness.math_rewrites`, "rewrites") and solutions against a different
  problem's answer ("negatives"); accuracy and rows/s for rlvr's `math` and for `math-verify` on the
  same rows, each in one process, then rlvr with --workers processes.
Pool start-up is not timed (PPO keeps one pool for the whole run); every rate is the wall clock of one
pass over rows not seen before by that scorer (caches would flatter a repeat). The N-process rate is
measured after the 1-process one on the same rows, each in its own processes and caches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from rlvr.rewards import BatchScorer, warm_up
from rlvr.rewards.harness import math_rewrites
from rlvr.rewards.math_normalize import canonical

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DATA_FILES = ("gsm8k_test.jsonl", "math500_test.jsonl", "ifeval_input_data.jsonl")


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def gsm8k_rows(data: Path) -> list[dict[str, Any]]:
    rows = _read(data / "gsm8k_test.jsonl")
    answers = [row["answer"].rsplit("####", 1)[1].strip() for row in rows]
    out = []
    for i, row in enumerate(rows):
        out.append(
            {"prediction": row["answer"], "ground_truth": answers[i], "dataset": "gsm8k", "expected": 1.0}
        )
        other = answers[(i + 1) % len(rows)]
        if other.replace(",", "") != answers[i].replace(",", ""):
            out.append(
                {"prediction": row["answer"], "ground_truth": other, "dataset": "gsm8k", "expected": 0.0}
            )
    return out


def ifeval_rows(data: Path) -> list[dict[str, Any]]:
    """Four responses per prompt, each built from different GSM8K solutions so no text repeats."""
    prompts = _read(data / "ifeval_input_data.jsonl")
    texts = [row["answer"].replace("<<", "(").replace(">>", ")") for row in _read(data / "gsm8k_test.jsonl")]
    rng = random.Random(0)
    out = []
    for row in prompts:
        label = {"instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]}
        body = [" ".join(rng.sample(texts, 3)) for _ in range(4)]
        responses = [
            row["prompt"] + "\n\n" + body[0],
            body[1].lower(),
            body[2].upper(),
            "<<Title>>\n\n* " + body[3].replace(". ", ".\n* ", 4) + "\n***\nP.S. done",
        ]
        out += [{"prediction": text, "ground_truth": label, "dataset": "ifeval"} for text in responses]
    return out


def math_sets(data: Path) -> dict[str, list[dict[str, Any]]]:
    rows = _read(data / "math500_test.jsonl")
    rng = random.Random(0)
    positives = [{"prediction": r["solution"], "ground_truth": r["answer"], "expected": 1.0} for r in rows]
    rewrites = [
        {
            "prediction": f"So the answer is $\\boxed{{{rewrite}}}$.",
            "ground_truth": r["answer"],
            "expected": 1.0,
        }
        for r in rows
        for rewrite in math_rewrites(r["answer"])
    ]
    negatives = []
    for r in rows:
        other = rng.choice(rows)
        if canonical(other["answer"]) != canonical(r["answer"]):
            negatives.append({"prediction": r["solution"], "ground_truth": other["answer"], "expected": 0.0})
    sets = {"positives": positives, "rewrites": rewrites, "negatives": negatives}
    for items in sets.values():
        for item in items:
            item["dataset"] = "math"
    return sets


def rates(
    rows: list[dict[str, Any]], workers: int, options: dict | None = None
) -> tuple[list[float], float, float, int]:
    """Scores, rows/s in this process, rows/s with `workers` processes, and timeouts."""
    start = time.perf_counter()
    results = BatchScorer(1, options).score(rows)
    rate1 = len(rows) / (time.perf_counter() - start)
    with BatchScorer(workers, options) as pool:  # workers start and load in the constructor: not timed
        start = time.perf_counter()
        pool.score(rows)
        rate_n = len(rows) / (time.perf_counter() - start)
    return [r.score for r in results], rate1, rate_n, sum(r.timed_out for r in results)


def math_verify_scores(rows: list[dict[str, Any]]) -> tuple[list[float], float]:
    from math_verify import parse, verify

    start = time.perf_counter()
    scores = [float(verify(parse(f"${row['ground_truth']}$"), parse(row["prediction"]))) for row in rows]
    return scores, len(rows) / (time.perf_counter() - start)


def accuracy(scores: list[float], rows: list[dict[str, Any]]) -> float:
    return sum(score == row["expected"] for score, row in zip(scores, rows, strict=True)) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with gsm8k_test.jsonl, math500_test.jsonl, ifeval_input_data.jsonl (default: the tests/data slice)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    missing = [n for n in DATA_FILES if not (args.data / n).is_file()]
    if missing:
        parser.error(f"--data {args.data}: missing {', '.join(missing)}")
    report: dict[str, Any] = {"load_average": os.getloadavg(), "workers": args.workers}
    warm_up()  # models, language profiles and a sandbox worker loaded before any timing
    print(f"load average {report['load_average']}, {args.workers} workers\n")
    print(
        f"{'verifier':<16} {'set':<10} {'rows':>6} {'accuracy':>9} {'rows/s 1 proc':>14} {'rows/s N procs':>15}"
    )

    gsm = gsm8k_rows(args.data)
    scores, rate1, rate_n, _ = rates(gsm, args.workers)
    report["gsm8k"] = {
        "rows": len(gsm),
        "accuracy": accuracy(scores, gsm),
        "rows_per_s_1": rate1,
        "rows_per_s_n": rate_n,
    }
    print(
        f"{'gsm8k':<16} {'all':<10} {len(gsm):>6} {accuracy(scores, gsm):>9.4f} {rate1:>14,.0f} {rate_n:>15,.0f}"
    )

    ife = ifeval_rows(args.data)
    for mode in ("strict", "loose"):
        scores, rate1, rate_n, _ = rates(ife, args.workers, {"ifeval": {"mode": mode}})
        mean = sum(scores) / len(scores)
        report[f"ifeval_{mode}"] = {
            "rows": len(ife),
            "mean_score": mean,
            "rows_per_s_1": rate1,
            "rows_per_s_n": rate_n,
        }
        mean_text = f"(mean {mean:.3f})"
        print(
            f"{'ifeval ' + mode:<16} {'synthetic':<10} {len(ife):>6} {mean_text:>9} {rate1:>14,.0f} {rate_n:>15,.0f}"
        )

    for name, rows in math_sets(args.data).items():
        scores, rate1, rate_n, timeouts = rates(rows, args.workers)
        mv_scores, mv_rate = math_verify_scores(rows)
        ours, theirs = accuracy(scores, rows), accuracy(mv_scores, rows)
        report[f"math_{name}"] = {
            "rows": len(rows),
            "rlvr": {"accuracy": ours, "rows_per_s_1": rate1, "rows_per_s_n": rate_n, "timeouts": timeouts},
            "math_verify": {"accuracy": theirs, "rows_per_s_1": mv_rate},
        }
        print(f"{'math (rlvr)':<16} {name:<10} {len(rows):>6} {ours:>9.4f} {rate1:>14,.0f} {rate_n:>15,.0f}")
        print(f"{'math-verify':<16} {name:<10} {len(rows):>6} {theirs:>9.4f} {mv_rate:>14,.0f} {'':>15}")

    report["load_average_after"] = os.getloadavg()
    print(f"\nload average after: {report['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
