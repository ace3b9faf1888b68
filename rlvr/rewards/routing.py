"""Routing a data row to its verifiers, and checking verifier names when data is loaded.

A row names its verifier in ``dataset`` and its label in ``ground_truth``; both may be parallel lists
(several verifiers on one response), with optional parallel ``weights``. The row's score is the
weighted mean of the verifier scores, so it stays in [0, 1] and `verification_reward × score` keeps
the scale PPO was tuned for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rlvr.rewards.contract import UnknownVerifierError, VerifierResult, resolve, run_verifier

Options = Mapping[str, Mapping[str, Any]]
"""Per-verifier keyword options, keyed by verifier name, e.g. ``{"ifeval": {"mode": "loose"}}``."""

MAX_NAMES_SHOWN = 20


def row_prompt(row: Mapping[str, Any]) -> str | None:
    """The prompt of a row: ``prompt``, else the last user message of ``messages`` (the RLVR schema)."""
    prompt = row.get("prompt")
    if prompt is not None:
        return prompt
    messages = row.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message.get("content")
    return None


def _routes(row: Mapping[str, Any]) -> list[tuple[str, Any, float]]:
    """`(name, label, weight)` for each verifier the row names; raises ValueError on a malformed row."""
    names, labels, weights = row.get("dataset"), row.get("ground_truth"), row.get("weights")
    if isinstance(names, str):
        return [(names, labels, 1.0)]
    if not isinstance(names, list) or not names:
        raise ValueError("'dataset' must be a verifier name or a non-empty list of names")
    if not isinstance(labels, list) or len(labels) != len(names):
        raise ValueError(
            f"'dataset' lists {len(names)} verifiers, so 'ground_truth' must be a list of as many labels"
        )
    if weights is None:
        weights = [1.0] * len(names)
    if (
        not isinstance(weights, list)
        or len(weights) != len(names)
        or not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights)
        or sum(weights) <= 0
    ):
        raise ValueError(f"'weights' must be {len(names)} non-negative numbers with a positive sum")
    return [(n, label, float(w)) for n, label, w in zip(names, labels, weights, strict=True)]


def _names(row: Any) -> list[Any]:
    if not isinstance(row, Mapping):
        return []
    names = row.get("dataset")
    return names if isinstance(names, list) else [names]


def unknown_names(row: Any) -> list[str]:
    """The verifier names in a row that do not resolve (empty when all are known)."""
    bad = []
    for name in _names(row):
        try:
            resolve(name)
        except UnknownVerifierError:
            bad.append(repr(name) if not isinstance(name, str) else name)
    return bad


def verifier_name_problems(row: Any) -> list[str]:
    """Problems with a row's verifier names (for `rlvr.data.load_rows(check=lambda line, row: ...)`)."""
    problems = []
    for name in _names(row):
        try:
            resolve(name)
        except UnknownVerifierError as err:
            problems.append(str(err))
    return problems


def row_problems(row: Any) -> list[str]:
    """Everything that stops a row from being scored: its shape and its verifier names."""
    if not isinstance(row, Mapping):
        return [f"a row must be a JSON object, got {type(row).__name__}"]
    problems = []
    if not isinstance(row.get("prediction"), str):
        problems.append("'prediction' must be a string")
    if "ground_truth" not in row:
        problems.append("missing 'ground_truth'")
    if "dataset" not in row:
        problems.append("missing 'dataset' (the verifier name)")
    elif "ground_truth" in row:
        try:
            _routes(row)
        except ValueError as err:
            problems.append(str(err))
        else:
            problems += verifier_name_problems(row)
    if row.get("prompt") is not None and not isinstance(row.get("prompt"), str):
        problems.append("'prompt' must be a string or null")
    return problems


def check_verifier_names(rows: Iterable[Any], first_row: int = 1) -> None:
    """Raise `UnknownVerifierError` naming every row (numbered from `first_row`) with an unknown verifier.

    Called when data is loaded, so a typo in ``dataset`` stops the run at once instead of silently
    scoring every such row 0 for the whole of training.
    """
    bad: dict[str, list[int]] = {}
    for number, row in enumerate(rows, start=first_row):
        for name in unknown_names(row):
            bad.setdefault(name, []).append(number)
    if not bad:
        return
    parts = []
    for name, numbers in bad.items():
        shown = ", ".join(map(str, numbers[:MAX_NAMES_SHOWN]))
        more = f" and {len(numbers) - MAX_NAMES_SHOWN:,} more" if len(numbers) > MAX_NAMES_SHOWN else ""
        try:
            resolve(name)
        except UnknownVerifierError as err:
            reason = str(err)
        parts.append(f"{reason} — in row(s) {shown}{more}")
    raise UnknownVerifierError("; ".join(parts))


def score_row(row: Mapping[str, Any], options: Options | None = None) -> VerifierResult:
    """Score one row (``prediction``, ``ground_truth``, ``dataset``, optional ``prompt``/``weights``).

    Raises `UnknownVerifierError` for an unknown name; any other problem scores 0 with the reason.
    """
    options = options or {}
    try:
        routes = _routes(row)
    except ValueError as err:
        return VerifierResult(0.0, {"error": str(err)})
    prompt = row_prompt(row)
    if prompt is not None and not isinstance(prompt, str):
        prompt = None
    parts = []
    for name, label, weight in routes:
        canonical = resolve(name)
        parts.append(
            (
                canonical,
                weight,
                run_verifier(canonical, row.get("prediction"), label, prompt, options.get(canonical)),
            )
        )
    if len(parts) == 1:
        name, _, result = parts[0]
        result.details = {"verifier": name, **result.details}
        return result
    total = sum(weight for _, weight, _ in parts)
    return VerifierResult(
        score=sum(weight * result.score for _, weight, result in parts) / total,
        details={
            "verifiers": [
                {"verifier": name, "weight": weight, "score": result.score, "details": result.details}
                for name, weight, result in parts
            ]
        },
        timed_out=any(result.timed_out for _, _, result in parts),
        seconds=sum(result.seconds for _, _, result in parts),
        parts=[result for _, _, result in parts],
    )
