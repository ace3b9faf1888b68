"""A pipeline run's summary, plots and report, built only from what the run recorded.

`rlvr pipeline report --run runs/<name>` (also `python -m rlvr.report --run ...`, and automatically at
the end of every `rlvr pipeline` run) reads `pipeline.json`, each stage's `metrics.jsonl` and the base
checkpoint, and writes into the run directory:

- `summary.json`: `{"total_seconds", "stages": {base, sft, prefs, dpo, rm, ppo}}`, one entry per stage the run
  recorded (stages not run are absent; a figure a recorded stage did not measure is null):
  - base (the soup stage's model): `checkpoint`, `params` (counted from the safetensors headers),
    `tokens` (stage-1 plus every anneal ingredient's training tokens), `seconds` (data, tokenizer,
    tokens, pretrain, anneal and soup stages together), `heldout_loss`, `accuracy`, `accuracy_by_verifier`;
  - sft, dpo: `checkpoint`, `seconds`, `accuracy`, `accuracy_by_verifier`, `preference_accuracy`;
  - prefs (the DPO stage's on-policy pairs): `dir`, `seconds`, `pairs`, `prompts`, `prompts_without_pair`
    (reason → prompts);
  - rm: `checkpoint`, `seconds`, `pairwise_accuracy`;
  - ppo: as sft, plus `steps` and `episodes`.
  `accuracy` is held-out greedy pass@1 on the verifiable test prompts, `preference_accuracy` the share
  of held-out pairs whose chosen answer gets the higher mean per-token log-prob (`rlvr.algos.evaluation`).
  Checkpoints are relative to the run directory; `total_seconds` is the sum of every recorded stage's
  seconds (time lost to killed attempts is not counted).
- `plots/loss.png` (train and held-out loss per stage), `plots/ppo.png` (reward, verifiable accuracy
  and KL over PPO steps), `plots/accuracy.png` (held-out accuracy per stage and verifier).
- `report.md`: the stage table, the gains between stages and the plots.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from rlvr.pipeline import BASE_STAGES
from rlvr.tracking import read_metrics

POLICY_KEYS = ("checkpoint", "seconds", "accuracy", "accuracy_by_verifier", "preference_accuracy")
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "sft": POLICY_KEYS,
    "prefs": ("dir", "seconds", "pairs", "prompts", "prompts_without_pair"),
    "dpo": POLICY_KEYS,
    "rm": ("checkpoint", "seconds", "pairwise_accuracy"),
    "ppo": (*POLICY_KEYS, "steps", "episodes"),
}
"""What summary.json keeps of each post-training stage's pipeline.json record."""
POLICIES = ("base", "sft", "dpo", "ppo")
"""The stages whose model is a policy measured on the held-out prompts."""
GAINS = (("base", "sft"), ("sft", "dpo"), ("dpo", "ppo"))
"""Consecutive policy stages whose changes the report states."""
PRETRAINING = "pretraining (stage 1, then the stage-2 anneals)"


def read_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The finished stages' records in `pipeline.json`, in the order they ran."""
    return json.loads((run_dir / "pipeline.json").read_text())["done"]


def count_parameters(checkpoint: Path) -> int | None:
    """Parameters in a checkpoint's safetensors files, read from their headers (no tensor is loaded);
    None when the folder has none."""
    files = sorted(checkpoint.glob("*.safetensors"))
    total = 0
    for file in files:
        with file.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total if files else None


def _pick(record: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: record.get(key) for key in keys}


def _base_tokens(done: dict[str, dict[str, Any]]) -> int | None:
    runs = [done["pretrain"]] if "pretrain" in done else []
    runs += done.get("anneal", {}).get("ingredients", [])
    return sum(run["tokens"] for run in runs) if runs else None


def _seconds(records: Iterable[dict[str, Any]]) -> float:
    """The recorded stages' seconds added up (the pipeline records them for every stage it ran)."""
    return round(sum(record.get("seconds", 0.0) for record in records), 1)


def summarize(run_dir: Path) -> dict[str, Any]:
    """summary.json's content for a pipeline run directory (see the module docstring)."""
    done = read_records(run_dir)
    stages: dict[str, dict[str, Any]] = {}
    if "soup" in done:
        soup = done["soup"]
        stages["base"] = {
            "checkpoint": soup["checkpoint"],
            "params": count_parameters(run_dir / soup["checkpoint"]),
            "tokens": _base_tokens(done),
            "seconds": _seconds(done[stage] for stage in BASE_STAGES if stage in done),
            **_pick(soup, ("heldout_loss", "accuracy", "accuracy_by_verifier")),
        }
    stages.update({stage: _pick(done[stage], keys) for stage, keys in SUMMARY_KEYS.items() if stage in done})
    return {"total_seconds": _seconds(done.values()), "stages": stages}


# ---------------------------------------------------------------------------------------------- plots


def _metrics(run_dir: Path, record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A stage run's folder name (the first part of its checkpoint path) and its logged steps."""
    name = Path(record["checkpoint"]).parts[0]
    path = run_dir / name / "metrics.jsonl"
    return name, read_metrics(path) if path.is_file() else []


def _series(metrics: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of `key` over the records that logged it as a number."""
    points = [(m["step"], m[key]) for m in metrics if isinstance(m.get(key), int | float)]
    steps, values = zip(*points, strict=True) if points else ((), ())
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _curve(ax: Axes, steps: np.ndarray, values: np.ndarray, label: str, linestyle: str = "-") -> str:
    """Raw values faint, a moving average over a twentieth of the run on top; returns the colour."""
    (raw,) = ax.plot(steps, values, alpha=0.25, linewidth=0.8, linestyle=linestyle)
    window = max(1, len(values) // 20)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    ax.plot(
        steps[window - 1 :], smooth, color=raw.get_color(), linewidth=1.6, linestyle=linestyle, label=label
    )
    return raw.get_color()


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def plot_losses(run_dir: Path, done: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Train loss (and held-out `eval_loss` where logged) over steps: one panel for pretraining (the
    anneal ingredients continue from stage 1's last step; log scale, as it starts near ln(vocab)), one
    each for sft, dpo and rm."""
    panels: list[tuple[str, list[tuple[str, list[dict[str, Any]], float]]]] = []
    runs = []
    if "pretrain" in done:
        runs.append((*_metrics(run_dir, done["pretrain"]), 0.0))
    offset = runs[0][1][-1]["step"] if runs and runs[0][1] else 0.0
    runs += [(*_metrics(run_dir, r), offset) for r in done.get("anneal", {}).get("ingredients", [])]
    panels.append((PRETRAINING, runs))
    panels += [
        (stage, [(*_metrics(run_dir, done[stage]), 0.0)]) for stage in ("sft", "dpo", "rm") if stage in done
    ]
    panels = [(title, logged) for title, runs in panels if (logged := [run for run in runs if run[1]])]
    if not panels:
        return None
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6.5 * cols, 4.2 * rows))
    for i, (title, runs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for name, metrics, shift in runs:
            steps, loss = _series(metrics, "loss")
            color = _curve(ax, steps + shift, loss, f"{name} train")
            steps, heldout = _series(metrics, "eval_loss")
            if len(heldout):
                ax.plot(steps + shift, heldout, "o--", color=color, markersize=4, label=f"{name} held-out")
        if title == PRETRAINING:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.set(title=title, xlabel="step", ylabel="loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ppo(
    run_dir: Path, done: dict[str, dict[str, Any]], summary: dict[str, Any], path: Path
) -> Path | None:
    """Reward, verifiable accuracy and KL over PPO steps. The accuracy panel also marks the pipeline's
    held-out measure of the starting policy (the DPO model, at step 0) and of the final PPO policy."""
    if "ppo" not in done:
        return None
    _, metrics = _metrics(run_dir, done["ppo"])
    if not metrics:
        return None
    fig = Figure(figsize=(16, 4.2))
    reward, accuracy, kl = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    for key, label, style in (
        ("reward", "reward (verifier, or the no-EOS penalty)", "-"),
        ("total_reward", "reward − KL penalty", "--"),
    ):
        steps, values = _series(metrics, key)
        if len(values):
            _curve(reward, steps, values, label, style)
    steps, values = _series(metrics, "correct_rate")
    if len(values):
        _curve(accuracy, steps, values, "rollouts fully correct (sampled)")
    steps, values = _series(metrics, "eval/accuracy")
    if len(values):
        accuracy.plot(steps, values, "s-", label="held-out (PPO's own eval, greedy)")
    stages = summary["stages"]
    measured = [
        (step, stages[stage]["accuracy"], stage)
        for step, stage in ((0, "dpo"), (done["ppo"]["steps"], "ppo"))
        if stages.get(stage, {}).get("accuracy") is not None
    ]
    if measured:
        xs, ys, _ = zip(*measured, strict=True)
        accuracy.plot(xs, ys, "D", color="black", label="held-out (pipeline measure: DPO start, PPO end)")
        for x, y, stage in measured:
            accuracy.annotate(
                f"{stage} {y:.1%}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8
            )
    steps, values = _series(metrics, "kl")
    if len(values):
        _curve(kl, steps, values, "KL to the reference, summed over a response")
    fig.suptitle(f"PPO: {done['ppo']['steps']:,} steps, {done['ppo']['episodes']:,} episodes")
    for ax, title in ((reward, "reward"), (accuracy, "verifiable accuracy"), (kl, "KL")):
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_accuracy(summary: dict[str, Any], path: Path) -> Path | None:
    """Held-out accuracy of each policy stage, overall and per verifier, as grouped bars."""
    stages = {
        name: entry
        for name, entry in summary["stages"].items()
        if name in POLICIES and entry.get("accuracy") is not None
    }
    if not stages:
        return None
    verifiers = sorted({v for entry in stages.values() for v in entry.get("accuracy_by_verifier") or {}})
    groups = ["all", *verifiers]
    fig = Figure(figsize=(max(6.0, 1.8 * len(groups) + 2), 4.5))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(stages)
    for i, (name, entry) in enumerate(stages.items()):
        by_verifier = entry.get("accuracy_by_verifier") or {}
        values = [entry["accuracy"], *(by_verifier.get(v, math.nan) for v in verifiers)]
        xs = np.arange(len(groups)) + (i - (len(stages) - 1) / 2) * width
        bars = ax.bar(xs, [100 * v for v in values], width, label=name)
        ax.bar_label(bars, labels=["" if math.isnan(v) else f"{100 * v:.0f}" for v in values], fontsize=7)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set(title="held-out verifiable accuracy (greedy pass@1)", ylabel="%", ylim=(0, 105))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(stages))
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _change(before: float, after: float) -> str:
    """`a % → b % (±c points)`, the difference taken of the figures as printed, so the line adds up."""
    points = round(100 * after, 1) - round(100 * before, 1)
    return f"{_pct(before)} → {_pct(after)} ({points:+.1f} points)"


def _gain(rows: dict[str, dict[str, Any]], start: str, end: str) -> str:
    """One line of figures that moved from stage `start` to stage `end`."""
    a, b = rows[start], rows[end]
    parts = []
    if a.get("accuracy") is not None and b.get("accuracy") is not None:
        parts.append(f"held-out accuracy {_change(a['accuracy'], b['accuracy'])}")
        by_a, by_b = a.get("accuracy_by_verifier") or {}, b.get("accuracy_by_verifier") or {}
        parts += [f"{v} {_change(by_a[v], by_b[v])}" for v in sorted(by_a) if v in by_b]
    if a.get("preference_accuracy") is not None and b.get("preference_accuracy") is not None:
        parts.append(f"preference accuracy {_change(a['preference_accuracy'], b['preference_accuracy'])}")
    return (
        f"- **{start} → {end}**: " + ("; ".join(parts) if parts else "no figure measured on both sides") + "."
    )


def _eval_table(record: dict[str, Any]) -> list[str]:
    """The eval stage's figures: one row per checkpoint and data file (`rlvr eval`'s metrics)."""
    checkpoints = record["checkpoints"]
    cells = [figures for files in checkpoints.values() for figures in files.values()]
    keys = sorted({k for f in cells for k in f if k.startswith(("pass@", "maj@"))},
                  key=lambda k: (k.split("@")[0] != "pass", int(k.split("@")[1])))  # fmt: skip
    lines = [
        "## Sampled evaluation (`rlvr eval`)",
        "",
        f"{record['n']} samples per prompt at temperature {record['temperature']:g}; pass@1 is the share of "
        "samples scored fully correct, pass@k the unbiased estimate, maj@k the majority answer's "
        "correctness (verifiers that extract an answer). Generations and every figure: the `dir` of each row.",
        "",
        "| checkpoint | data | prompts | " + " | ".join(keys) + " | stop rate | dir |",
        "|---" * (5 + len(keys)) + "|",
    ]
    for name, files in checkpoints.items():
        for label, f in files.items():
            row = [
                name,
                label,
                f"{f['prompts']:,}",
                *(_pct(f.get(k)) for k in keys),
                _pct(f["stop_rate"]),
                f"`{f['dir']}`",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def render_report(
    run_dir: Path,
    summary: dict[str, Any],
    done: dict[str, dict[str, Any]],
    images: Sequence[tuple[str, str, str]],
) -> str:
    """report.md's text: the stage table, the gains and the plots (`images`: title, caption and path
    relative to report.md)."""
    stages = summary["stages"]
    # the table shows summary.json's figures, plus pipeline.json's where the summary keeps none
    # (the base model's preference accuracy)
    rows = {
        name: {**done["soup" if name == "base" else name], **entry}
        for name, entry in stages.items()
        if name != "prefs"  # pairs, not a model: stated below the table
    }
    verifiers = sorted({v for row in rows.values() for v in row.get("accuracy_by_verifier") or {}})
    total = summary["total_seconds"]
    lines = [
        f"# Pipeline report: {run_dir.name}",
        "",
        f"Built from `{run_dir}`: its pipeline.json, the stages' metrics.jsonl files and the base "
        "checkpoint; the figures are also in `summary.json`. Accuracy is held-out greedy pass@1 on the "
        "verifiable test prompts; preference accuracy is the share of held-out preference pairs whose "
        "chosen answer gets the higher mean per-token log-prob; RM pairwise accuracy is the reward "
        "model's share of held-out pairs ranked right.",
        "",
        f"**Total time: {total:,.1f} s ({total / 60:.1f} min)**, the sum of the recorded stages' times.",
        "",
        "## Stages",
        "",
        "| stage | checkpoint | seconds | accuracy | "
        + " | ".join(verifiers)
        + " | preference acc. | RM pairwise acc. |",
        "|---" * (6 + len(verifiers)) + "|",
    ]
    for name, row in rows.items():
        by_verifier = row.get("accuracy_by_verifier") or {}
        cells = [
            name,
            f"`{row['checkpoint']}`",
            "—" if row["seconds"] is None else f"{row['seconds']:,.1f}",
            _pct(row.get("accuracy")),
            *(_pct(by_verifier.get(v)) for v in verifiers),
            _pct(row.get("preference_accuracy")),
            _pct(row.get("pairwise_accuracy")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if "base" in stages:
        base = stages["base"]
        facts = ", ".join(
            fact
            for fact in (
                f"{base['params']:,} parameters" if base["params"] is not None else "",
                f"{base['tokens']:,} training tokens (stage 1 + anneals)"
                if base["tokens"] is not None
                else "",
                f"held-out loss {base['heldout_loss']:.4f}" if base["heldout_loss"] is not None else "",
            )
            if fact
        )
        lines.append(
            f"Base model: {facts or 'no figures recorded'}; its seconds add up the stages from data to soup."
        )
    if "prefs" in stages:
        prefs = stages["prefs"]
        without = ", ".join(f"{reason} {n:,}" for reason, n in (prefs["prompts_without_pair"] or {}).items())
        lines += ["", f"DPO pairs (prefs stage, `{prefs['dir']}/`): {prefs['pairs']:,} pairs from "
                      f"{prefs['prompts']:,} prompts in {prefs['seconds']:,.1f} s; prompts without a pair: "
                      f"{without or 'none'}."]  # fmt: skip
    if "ppo" in stages:
        lines += ["", f"PPO: {stages['ppo']['steps']:,} steps, {stages['ppo']['episodes']:,} episodes."]
    gains = [_gain(rows, a, b) for a, b in GAINS if a in rows and b in rows]
    if gains:
        lines += ["", "## Gains", "", *gains]
    if "eval" in done:
        lines += ["", *_eval_table(done["eval"])]
    if images:
        lines += ["", "## Plots"]
        for title, caption, image in images:
            lines += ["", f"### {title}", "", f"![{title}]({image})", "", caption]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """summary.json, plots/ and report.md for the run in `run_dir` (written into `out_dir`, by default
    the run directory itself); returns report.md's path."""
    out_dir = out_dir or run_dir
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    done = read_records(run_dir)
    summary = summarize(run_dir)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    drawn = [
        (
            "Loss curves",
            "Train loss at every step (faint) and its moving average (solid); held-out loss (dots) where "
            "the stage logs one.",
            plot_losses(run_dir, done, plots / "loss.png"),
        ),
        (
            "PPO: reward, verifiable accuracy and KL",
            "Per PPO step: the rollouts' mean reward, the share of rollouts the verifiers score fully "
            "correct, and the KL to the reference policy; diamonds: the pipeline's held-out accuracy of "
            "the DPO model PPO starts from (step 0) and of the final policy.",
            plot_ppo(run_dir, done, summary, plots / "ppo.png"),
        ),
        (
            "Held-out accuracy by stage and verifier",
            "Greedy pass@1 on the held-out verifiable prompts, overall and per verifier.",
            plot_accuracy(summary, plots / "accuracy.png"),
        ),
    ]
    images = [(title, caption, str(path.relative_to(out_dir))) for title, caption, path in drawn if path]
    report = out_dir / "report.md"
    report.write_text(render_report(run_dir, summary, done, images))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr pipeline report",
        description="Write summary.json, plots/ and report.md for a pipeline run directory.",
    )
    parser.add_argument("--run", required=True, type=Path, help="a pipeline run directory, e.g. runs/tiny")
    parser.add_argument("--out", type=Path, help="write the files here instead of into the run directory")
    args = parser.parse_args(argv)
    if not (args.run / "pipeline.json").is_file():
        print(f"rlvr pipeline report: {args.run / 'pipeline.json'} does not exist", file=sys.stderr)
        return 2
    print(write_report(args.run, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
