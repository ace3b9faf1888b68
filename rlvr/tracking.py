"""Run directories and metric logging shared by every stage.

`runs/<name>/` holds `config.yaml` (the resolved config), `metrics.jsonl` (one JSON object per
logged step) and `checkpoints/`. Metrics also go to wandb (offline unless `WANDB_MODE` or the
config says otherwise, so nothing needs a network) and, every `log.every` steps, to one compact
line on stderr.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from tqdm.auto import tqdm

from rlvr.config import save_config, to_dict

T = TypeVar("T")


@dataclass
class LogConfig:
    every: int = 10
    """Print a compact metrics line every this many steps (every step is still written to metrics.jsonl)."""
    wandb: bool = True
    wandb_project: str = "rlvr"
    wandb_mode: Literal["offline", "online", "disabled"] | None = None
    """None: $WANDB_MODE if set, else offline."""
    progress: bool = True
    """Progress bars on long loops (on stderr)."""


@dataclass
class RunConfig:
    """Fields every stage config carries (stage configs inherit from this)."""

    name: str = "run"
    runs_root: str = "runs"
    seed: int = 0
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.name


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Create `runs/<name>/` with `checkpoints/` and write the resolved config into it."""
    run_dir = cfg.run_dir
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible rather than dropping them
    return value


def format_metrics(metrics: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """One compact line: `loss 2.314 | lr 3.0e-04 | tok/s 9,312`."""
    parts = []
    for key in keys if keys is not None else metrics:
        if key not in metrics:
            continue
        value = metrics[key]
        if isinstance(value, float):
            if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
                text = f"{value:.2e}"
            else:
                text = f"{value:.4g}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        parts.append(f"{key} {text}")
    return " | ".join(parts)


class MetricsLogger:
    """Appends metrics to `metrics.jsonl`, mirrors them to wandb, prints a line every N steps."""

    def __init__(self, run_dir: Path, cfg: RunConfig, resume: bool = False) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.every = max(1, cfg.log.every)
        self.start = time.time()
        self._file = self.path.open("a" if resume else "w")
        self._wandb = None
        if cfg.log.wandb:
            mode = cfg.log.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
            if mode != "disabled":
                import wandb  # imported lazily: it costs seconds and is optional per run

                self._wandb = wandb.init(
                    project=cfg.log.wandb_project,
                    name=cfg.name,
                    dir=str(run_dir),
                    mode=mode,
                    config=to_dict(cfg),
                    resume="allow" if resume else None,
                    reinit="finish_previous",
                )

    def log(self, step: int, metrics: Mapping[str, Any], echo: bool | None = None) -> None:
        record = {"step": step, "time": round(time.time() - self.start, 3)}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if isinstance(v, int | float)}, step=step)
        if echo or (echo is None and step % self.every == 0):
            tqdm.write(f"step {step:,} | {format_metrics(metrics)}", file=sys.stderr)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def progress(
    iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True
) -> Iterator[T]:
    """A progress bar on stderr (tqdm), off when `enabled` is False."""
    return iter(
        tqdm(iterable, total=total, desc=desc, disable=not enabled, dynamic_ncols=True, file=sys.stderr)
    )


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records past the resumed step, so the metrics file reads as one uninterrupted run."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))
