"""Scoring many rows in parallel across processes, results in input order.

`BatchScorer` keeps a process pool alive between calls (PPO scores a rollout batch every step);
`score_batch` is the one-shot form. Workers are forked by default, so verifiers registered at run
time (a script's own ``@register``) exist in them too; with ``mp_context="spawn"`` each worker
imports the modules that registered the verifiers, so those must be importable (not ``__main__``).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rlvr.rewards.contract import VerifierResult, verifier_modules, warm_up
from rlvr.rewards.routing import Options, check_verifier_names, score_row

CHUNKS_PER_WORKER = 4
"""Rows go to workers in about this many chunks each: enough to balance slow rows, few enough to be cheap."""


STARTUP_TIMEOUT = 300.0


def _init_worker(modules: list[str], barrier: Any) -> None:
    import importlib
    import threading

    for module in modules:
        importlib.import_module(module)
    warm_up()
    # hold every worker until all are warm, so the pool's first real batch is not half-served by
    # workers still loading (the parent waits on one no-op task per worker)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(STARTUP_TIMEOUT)


def _ready() -> None:
    """A no-op task: it runs once a worker has passed its initializer."""


def _score_chunk(rows: Sequence[Mapping[str, Any]], options: Options | None) -> list[VerifierResult]:
    return [score_row(row, options) for row in rows]


class BatchScorer:
    """A reusable pool of `workers` processes scoring rows with `score_row`.

    The workers start, load their models and start their sandboxes (`rlvr.rewards.warm_up`) in the
    constructor. ``workers=1`` scores in the calling process (no pool). Use as a context manager, or call
    `close()`; every result comes back in the order of the input rows.
    """

    def __init__(
        self, workers: int = 1, options: Options | None = None, mp_context: str | None = None
    ) -> None:
        self.workers = max(1, int(workers))
        self.options = options
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            context = multiprocessing.get_context(
                mp_context or ("fork" if sys.platform == "linux" else "spawn")
            )
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(verifier_modules(), context.Barrier(self.workers)),
            )
            for future in [self._pool.submit(_ready) for _ in range(self.workers)]:
                future.result()

    def score(self, rows: Sequence[Mapping[str, Any]]) -> list[VerifierResult]:
        """Scores for `rows`, in order. Unknown verifier names raise before any row is scored."""
        rows = list(rows)
        check_verifier_names(rows)
        if self._pool is None or len(rows) < 2:
            return _score_chunk(rows, self.options)
        size = max(1, math.ceil(len(rows) / (self.workers * CHUNKS_PER_WORKER)))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        futures = [self._pool.submit(_score_chunk, chunk, self.options) for chunk in chunks]
        return [result for future in futures for result in future.result()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BatchScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def score_batch(
    rows: Sequence[Mapping[str, Any]],
    workers: int = 1,
    options: Options | None = None,
    mp_context: str | None = None,
) -> list[VerifierResult]:
    """Score `rows` with `workers` processes; results in input order (see `BatchScorer`)."""
    with BatchScorer(workers, options, mp_context) as scorer:
        return scorer.score(rows)
