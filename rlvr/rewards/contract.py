"""The verifier contract and the registry.

A verifier is a plain function ``fn(prediction: str, label: Any, prompt: str | None = None, **options)``
returning a `VerifierResult` (a bare float or bool is accepted and wrapped). `@register("name")` adds it
to the registry; a separate package adds verifiers through the ``rlvr.verifiers`` entry-point group
(``my_name = "my_pkg.module:my_verifier"``), loaded lazily the first time a name is not found.

Callers never call a verifier directly: `run_verifier` resolves the name (case-insensitive, through
aliases), calls the function and turns every failure into a score of 0 with the reason in
``details["error"]`` — a bad prediction or label must never take down a PPO step.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ENTRY_POINT_GROUP = "rlvr.verifiers"


@dataclass
class VerifierResult:
    """What one verifier says about one prediction.

    `score` is in [0, 1]. `details` says what was extracted and which checks held; `details["error"]`
    holds the reason when the row could not be judged (bad label, unparseable input). `timed_out`
    marks a check cut off by its deadline: a timeout is reported, never silently counted as wrong.
    """

    score: float
    details: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    seconds: float = 0.0
    """Wall time of the verifier call (filled in by `run_verifier`)."""
    verifier: str | None = None
    """The canonical verifier name (filled in by `run_verifier`; None for a multi-verifier row)."""
    parts: list[VerifierResult] = field(default_factory=list)
    """For a row scored by several verifiers: each verifier's own result."""

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "details": self.details, "timed_out": self.timed_out}


class Verifier(Protocol):
    def __call__(self, prediction: str, label: Any, prompt: str | None = None, **options: Any) -> Any: ...


class LabelError(ValueError):
    """A label (ground truth) a verifier cannot use; reported as score 0 with the message."""


class UnknownVerifierError(KeyError):
    """A verifier name that is neither registered, an alias, nor an installed entry point."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


_VERIFIERS: dict[str, Verifier] = {}
_ALIASES: dict[str, str] = {}
_ENTRY_POINT_ERRORS: dict[str, str] = {}
_entry_points_loaded = False
_WARM_UPS: list[Callable[[], None]] = []


def _key(name: str) -> str:
    return name.strip().lower()


def register(
    name: str | None = None, *, aliases: Iterable[str] = (), replace: bool = False
) -> Callable[[Verifier], Verifier]:
    """Decorator: register a verifier function under `name` (default: the function's name).

    Names are case-insensitive. Registering a taken name is an error unless `replace=True`, so two
    packages cannot silently shadow each other.
    """

    def decorate(fn: Verifier) -> Verifier:
        key = _key(name or fn.__name__)  # type: ignore[attr-defined]
        if not replace and (key in _VERIFIERS or key in _ALIASES):
            raise ValueError(f"verifier name '{key}' is already registered; pass replace=True to override it")
        _VERIFIERS[key] = fn
        _ALIASES.pop(key, None)
        for alias in aliases:
            register_alias(alias, key, replace=replace)
        return fn

    return decorate


def register_alias(alias: str, target: str, *, replace: bool = False) -> None:
    """Make `alias` resolve to the verifier `target` (e.g. ``MATH`` → ``math``)."""
    alias_key, target_key = _key(alias), resolve(target)
    if alias_key == target_key:
        return
    if not replace and (alias_key in _VERIFIERS or _ALIASES.get(alias_key, target_key) != target_key):
        raise ValueError(f"'{alias_key}' is already a verifier or an alias of another one")
    _ALIASES[alias_key] = target_key


def unregister(name: str) -> None:
    """Remove a verifier and every alias pointing at it (for tests and interactive use)."""
    key = _key(name)
    _VERIFIERS.pop(key, None)
    for alias in [a for a, t in _ALIASES.items() if t == key]:
        del _ALIASES[alias]


def _load_entry_points() -> None:
    """Register the verifiers other installed packages declare under ``rlvr.verifiers``.

    An entry point may name a verifier function (registered under the entry point's name) or a module
    (importing it runs its `@register` decorators). A broken plugin does not break rlvr: its error is
    kept and reported when its name is used.
    """
    global _entry_points_loaded
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = _key(ep.name)
        if key in _VERIFIERS:
            continue
        try:
            obj = ep.load()
        except Exception as err:
            _ENTRY_POINT_ERRORS[key] = f"entry point {ep.value!r} failed to load: {type(err).__name__}: {err}"
            continue
        if callable(obj) and key not in _VERIFIERS:
            _VERIFIERS[key] = obj


def resolve(name: str) -> str:
    """The canonical registered name for `name` or an alias of it; raises `UnknownVerifierError`."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownVerifierError(f"a verifier name must be a non-empty string, got {name!r}")
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key not in _VERIFIERS and not _entry_points_loaded:
        _load_entry_points()
        key = _ALIASES.get(key, key)
    if key in _VERIFIERS:
        return key
    if key in _ENTRY_POINT_ERRORS:
        raise UnknownVerifierError(f"verifier '{name}': {_ENTRY_POINT_ERRORS[key]}")
    close = difflib.get_close_matches(key, list(_VERIFIERS) + list(_ALIASES), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise UnknownVerifierError(f"unknown verifier '{name}'{hint} (known: {', '.join(available())})")


def get_verifier(name: str) -> Verifier:
    return _VERIFIERS[resolve(name)]


def available() -> list[str]:
    """Every registered verifier name (aliases not included)."""
    if not _entry_points_loaded:
        _load_entry_points()
    return sorted(_VERIFIERS)


def on_warm_up(fn: Callable[[], None]) -> Callable[[], None]:
    """Register a function that loads a verifier's models or workers ahead of its first call."""
    if fn not in _WARM_UPS:
        _WARM_UPS.append(fn)
    return fn


def warm_up() -> None:
    """Run every registered warm-up (tokenizer models, language profiles, a sandbox worker) now.

    `BatchScorer` runs this in each worker process when the pool starts, so the first batch is not
    slowed by loading; a single-process caller may call it before timing-sensitive work.
    """
    for fn in _WARM_UPS:
        fn()


def verifier_modules() -> list[str]:
    """The importable modules that define the registered verifiers (what a spawned process must import)."""
    modules = {getattr(fn, "__module__", None) for fn in _VERIFIERS.values()}
    return sorted(m for m in modules if m and m != "__main__")


def aliases() -> dict[str, str]:
    return dict(sorted(_ALIASES.items()))


def _as_result(value: Any) -> VerifierResult:
    if isinstance(value, VerifierResult):
        return value
    if isinstance(value, bool | int | float):
        return VerifierResult(float(value))
    raise TypeError(f"a verifier must return a VerifierResult, float or bool, got {type(value).__name__}")


def run_verifier(
    name: str,
    prediction: Any,
    label: Any,
    prompt: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> VerifierResult:
    """Call the verifier registered as `name` safely (see `call_verifier`).

    An unknown `name` is the one error raised — it is a mistake in the data, caught when the data is
    loaded (`check_verifier_names`), not something to score as 0.
    """
    canonical = resolve(name)
    result = call_verifier(_VERIFIERS[canonical], prediction, label, prompt, options)
    result.verifier = canonical
    return result


def call_verifier(
    fn: Verifier,
    prediction: Any,
    label: Any,
    prompt: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> VerifierResult:
    """Call a verifier function: never raises for bad predictions or labels, always a score in [0, 1]."""
    start = time.perf_counter()
    if not isinstance(prediction, str):
        result = VerifierResult(
            0.0, {"error": f"prediction must be a string, got {type(prediction).__name__}"}
        )
    elif prompt is not None and not isinstance(prompt, str):
        result = VerifierResult(
            0.0, {"error": f"prompt must be a string or null, got {type(prompt).__name__}"}
        )
    else:
        try:
            result = _as_result(fn(prediction, label, prompt, **dict(options or {})))
        except Exception as err:  # the contract: a verifier's failure is a 0 with its reason, not a crash
            result = VerifierResult(0.0, {"error": f"{type(err).__name__}: {err}"[:2000]})
    if not isinstance(result.score, int | float) or math.isnan(result.score):
        result.details["error"] = f"verifier returned a non-numeric score {result.score!r}"
        result.score = 0.0
    elif not 0.0 <= result.score <= 1.0:
        result.details["clipped_from"] = result.score
        result.score = min(1.0, max(0.0, float(result.score)))
    result.score = float(result.score)
    if result.timed_out:
        result.details["timed_out"] = True
    result.seconds = time.perf_counter() - start
    return result
