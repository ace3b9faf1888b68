"""Metrics of `rlvr eval`: pass@k, maj@k, and their aggregation per data set and per IFEval instruction.

Pure functions over generation records (the rows of `generations.jsonl`), so figures can be
recomputed from a saved run: `summarize(read_jsonl_rows, ks)`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any

from rlvr.algos.evaluation import mean_by_verifier
from rlvr.rewards import gsm8k
from rlvr.rewards.math_normalize import as_number, candidates, canonical

CORRECT = 1.0 - 1e-9
"""A sample counts as correct for pass@k when its score reaches this (a score of 1 up to rounding)."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[str | None], scores: Sequence[float]) -> float:
    """The score of the most frequent extracted answer (None does not vote; all None scores 0).

    Ties go to the answer that appears first. Its score is the mean of its samples' scores (they
    agree whenever the verifier's verdict follows from the extracted answer).
    """
    votes = Counter(a for a in answers if a is not None)  # counts in first-appearance order
    if not votes:
        return 0.0
    winner = max(votes, key=votes.__getitem__)  # max keeps the first of equal counts
    won = [s for a, s in zip(answers, scores, strict=True) if a == winner]
    return sum(won) / len(won)


def maj_at_k(answers: Sequence[str | None], scores: Sequence[float], k: int) -> float:
    """maj@k averaged over the `len(answers) // k` disjoint blocks of k consecutive samples."""
    blocks = len(answers) // k
    if blocks < 1:
        raise ValueError(f"maj@{k} needs at least {k} samples, got {len(answers)}")
    return (
        sum(majority_vote(answers[b * k : (b + 1) * k], scores[b * k : (b + 1) * k]) for b in range(blocks))
        / blocks
    )


def gsm8k_answer(response: str) -> str | None:
    """The gsm8k verifier's answer (the last number), written by value: 18.0 and 18 vote together."""
    number = gsm8k.last_number(response)
    if number is None or len(number) > gsm8k.MAX_DIGITS:
        return number
    with localcontext() as exact:
        exact.prec = gsm8k.MAX_DIGITS + 2  # no rounding: distinct numbers must stay distinct
        return format((Decimal(number) + 0).normalize(), "f")  # + 0 turns -0 into 0


def math_answer(response: str, strict: bool = False) -> str | None:
    """The math verifier's first candidate answer, canonical (plain numbers by exact value)."""
    found = [answer for source, answer in candidates(response, strict) if source != "whole response"]
    if not found:
        return None
    text = canonical(found[0])
    value = as_number(text)
    return text if value is None else str(value)


ANSWER_EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "gsm8k": gsm8k_answer,
    "math": math_answer,
    "strict_math": lambda response: math_answer(response, strict=True),
}
"""Verifier name → the final answer it judges, for maj@k (verifiers not listed get no maj@k)."""


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def correct(scores: Iterable[float]) -> int:
    """How many samples are correct (score 1)."""
    return sum(s >= CORRECT for s in scores)


def group_metrics(generations: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """pass@1 and pass@k, maj@k, mean score, stop rate, response length and counts over generation
    records (pass@1 is always there; maj@k only when every record has extracted `answers`, so a
    mixed group's maj@k never stands for a subset of it)."""
    out: dict[str, Any] = {"prompts": len(generations)}
    for k in sorted({1, *ks}):
        out[f"pass@{k}"] = _mean(pass_at_k(len(g["scores"]), correct(g["scores"]), k) for g in generations)
    if generations and all(g.get("answers") is not None for g in generations):
        for k in ks:
            out[f"maj@{k}"] = _mean(maj_at_k(g["answers"], g["scores"], k) for g in generations)
    out["mean_score"] = _mean(s for g in generations for s in g["scores"])
    out["stop_rate"] = _mean(f for g in generations for f in g["finished"])
    out["response_tokens"] = _mean(t for g in generations for t in g["response_tokens"])
    out["timed_out"] = sum(g["timed_out"] for g in generations)
    out["verifier_errors"] = sum(len(g["verifier_errors"]) for g in generations)
    return out


def ifeval_metrics(generations: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """IFEval's figures over the samples with instruction verdicts: prompt level (all followed),
    instruction level, and the followed rate of each instruction id."""
    samples = [s for g in generations for s in g.get("ifeval", ()) if s]
    if not samples:
        return None
    by_id: dict[str, list[bool]] = {}
    for sample in samples:
        for verdict in sample:
            by_id.setdefault(verdict["id"], []).append(verdict["followed"])
    return {
        "samples": len(samples),
        "prompt_level": _mean(all(v["followed"] for v in s) for s in samples),
        "instruction_level": _mean(v["followed"] for s in samples for v in s),
        "by_instruction": {i: {"followed": _mean(v), "count": len(v)} for i, v in sorted(by_id.items())},
    }


def summarize(generations: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """The metrics of `metrics.json` (without the run's settings): overall, per data set, IFEval."""
    by_dataset: dict[str, list[Mapping[str, Any]]] = {}
    for g in generations:
        by_dataset.setdefault(g["dataset"], []).append(g)
    overall = group_metrics(generations, ks)
    return {
        "accuracy": overall["pass@1"],
        "accuracy_by_verifier": mean_by_verifier(
            generations, [correct(g["scores"]) / len(g["scores"]) for g in generations]
        ),
        "overall": overall,
        "by_dataset": {name: group_metrics(rows, ks) for name, rows in sorted(by_dataset.items())},
        "ifeval": ifeval_metrics(generations),
    }


SHORT_NAMES = {"mean_score": "score", "stop_rate": "stop", "response_tokens": "tokens"}


def format_table(metrics: Mapping[str, Any]) -> str:
    """The figures as a text table: a line per data set and overall, then IFEval's instructions."""
    groups = {**metrics["by_dataset"], "overall": metrics["overall"]}
    rates = dict.fromkeys(c for g in groups.values() for c in g if "@" in c)
    columns = [*rates, *SHORT_NAMES]
    lines = [["dataset", "prompts", *(SHORT_NAMES.get(c, c) for c in columns)]]
    for name, g in groups.items():
        cells = [
            "–" if c not in g else f"{g[c]:.1f}" if c == "response_tokens" else f"{g[c]:.3f}" for c in columns
        ]
        lines.append([name, str(g["prompts"]), *cells])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]
        )
        for line in lines
    ]
    ife = metrics.get("ifeval")
    if ife:
        text.append(
            f"\nifeval: prompt-level {ife['prompt_level']:.3f}, instruction-level {ife['instruction_level']:.3f}"
        )
        width = max(len(i) for i in ife["by_instruction"])
        text.append(f"  {'instruction'.ljust(width)}  count  followed")
        text += [
            f"  {i.ljust(width)}  {v['count']:5d}  {v['followed']:8.3f}"
            for i, v in ife["by_instruction"].items()
        ]
    return "\n".join(text)
