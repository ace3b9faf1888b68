"""`rlvr prefs`: on-policy preference pairs, built the way Tülu 3 built its DPO data.

Each prompt is answered `n` times by each source model — the SFT policy (on-policy) and optionally
other checkpoints (off-policy) — through the same sampling path as `rlvr eval` (vLLM, or transformers
with `backend: hf`). Every response is judged:

    score = judge.verifier_weight × verifier score + judge.rm_weight × reward-model reward

(the row's own verifiers against its label; the raw reward of `judge.reward_model` at the last token).
Per prompt, the responses are ranked by score; **chosen** is the best *finished* response (one that
ended with EOS: a truncated answer is never taught as good), **rejected** the lowest-scoring response,
and the pair is kept when `chosen − rejected ≥ judge.min_margin`. Ties are broken by sampling order:
among equal scores the response sampled first (source models in the order given, then sample index)
is taken, for chosen and for rejected alike, so no length or position preference sneaks in and a
given seed always gives the same pairs. `judge.pairs_per_prompt > 1` pairs the next-best with the
next-worst response, each response used once, while the margin holds.

A prompt without a usable pair is never dropped silently: it is counted under its reason —
`too_long` (no room to answer in the context), `unreadable` (with `on_bad_row: skip`),
`no_finished_response`, `all_equal_scores` (split by the tied score, e.g. all right vs all wrong),
`false_arithmetic` (every finished response writes a false equation, see below) or `margin_below_min`
— in `report.json` and the printed summary.

With `judge.check_arithmetic` (on by default) a response whose worked arithmetic holds a false equation
(`21 - 9 = 10`, found by `rlvr.rewards.arithmetic.false_equations`) is never chosen, whatever its
score: the verifiers check the final answer only, and a right answer reached through a wrong step
would teach the step. It can still be the rejected side.

Output (`out_dir/`): `prefs.jsonl` in the `prefs` schema (`chosen` / `rejected` chats) plus metadata
per pair (prompt source and line, verifier, label, the two responses' models, scores and verifier /
RM parts, the judge); `report.json` (pairs, prompts without a pair by reason, score levels, seconds);
`samples/<model>.jsonl` (every response with its verdicts); `config.yaml`.

Resumable: samples are written a chunk of `chunk_size` prompts at a time, each chunk seeded by its
position, so a killed run started again with the same `out_dir` and settings continues after the last
finished chunk and produces the same file an uninterrupted run would.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from rlvr.checkpoints import resolve_model
from rlvr.config import ConfigError, from_dict, read_yaml, save_config, to_dict
from rlvr.data import DataError, read_jsonl, write_jsonl
from rlvr.eval.data import Format, Item, build_messages
from rlvr.eval.runner import (
    EvalConfig,
    Prompt,
    build_engine,
    load_prompts,
    model_context,
    sample_all,
    score,
)
from rlvr.rewards.arithmetic import false_equations
from rlvr.tracking import progress
from rlvr.vllm_engine import VLLMConfig


@dataclass
class SourceModel:
    """A model that answers the prompts."""

    model: str
    """A checkpoint folder, a run directory (its newest checkpoint) or a hub name."""
    n: int = 4
    """Responses per prompt."""
    temperature: float = 1.0
    name: str | None = None
    """Its label in the pairs' metadata and the samples file; default: the folder or hub name's last part."""

    @property
    def label(self) -> str:
        return self.name or Path(str(self.model).rstrip("/")).name


@dataclass
class JudgeConfig:
    verifier_weight: float = 1.0
    """Weight of the row's verifier score (0..1) in a response's score."""
    rm_weight: float = 0.0
    """Weight of the reward model's raw reward; needs `reward_model`."""
    reward_model: str | None = None
    """A sequence-classification checkpoint (e.g. `rlvr rm`'s), a run directory or a hub name."""
    min_margin: float = 0.5
    """The chosen response must out-score the rejected one by at least this much."""
    pairs_per_prompt: int = 1
    rm_batch_size: int = 32
    check_arithmetic: bool = True
    """Never choose a response whose worked arithmetic holds a false equation (`21 - 9 = 10`), whatever
    its score: a right final answer reached through a wrong step teaches the wrong step. It can still
    be rejected."""


@dataclass
class PrefsConfig:
    data: list[str] | str
    """Prompt files (.jsonl/.parquet) or hub names; the RLVR schema or raw GSM8K / MATH / IFEval rows."""
    out_dir: str
    models: list[SourceModel] = field(default_factory=list)
    """The models that answer; the first is usually the policy about to be trained (on-policy)."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    format: Format = "auto"
    split: str = "train"
    """The split of a hub data set named without one."""
    limit: int | None = None
    """At most this many readable rows per source."""
    on_bad_row: Literal["error", "skip"] = "error"
    max_tokens: int = 1024
    seed: int = 0
    template: str = "{question}"
    system: str | None = None
    backend: Literal["vllm", "hf"] = "vllm"
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    batch_size: int = 128
    """Prompts per engine call."""
    chunk_size: int = 512
    """Prompts sampled, judged and written together; a killed run resumes after the last whole chunk."""
    workers: int = 1
    """Processes scoring the responses."""
    verifier_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = [self.data] if isinstance(self.data, str) else list(self.data)
        if not self.data or not self.out_dir:
            raise ValueError("data and out_dir must be set, e.g. --data=prompts.jsonl --out_dir=runs/prefs")
        if not self.models:
            raise ValueError("models must name at least one model, e.g. --models='[{model: runs/tiny/sft}]'")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models need distinct names (set `name`), got {labels}")
        if any(m.n < 1 or m.temperature < 0 for m in self.models):
            raise ValueError("every model needs n ≥ 1 and temperature ≥ 0")
        if sum(m.n for m in self.models) < 2:
            raise ValueError("a pair needs at least 2 responses per prompt: raise n or add a model")
        j = self.judge
        if j.rm_weight and not j.reward_model:
            raise ValueError("judge.rm_weight is set but judge.reward_model is empty")
        if not j.rm_weight and not j.verifier_weight:
            raise ValueError(
                "judge.verifier_weight and judge.rm_weight are both 0: nothing judges the responses"
            )
        if j.min_margin <= 0 or j.pairs_per_prompt < 1 or j.rm_batch_size < 1:
            raise ValueError("judge.min_margin must be > 0, pairs_per_prompt and rm_batch_size ≥ 1")
        if self.max_tokens < 1 or self.batch_size < 1 or self.chunk_size < 1:
            raise ValueError("max_tokens, batch_size and chunk_size must be ≥ 1")

    def sampling(self, source: SourceModel, model: str) -> EvalConfig:
        """The `rlvr eval` settings that sample `source`'s responses."""
        return EvalConfig(
            model=model, data=list(self.data), format=self.format, split=self.split, limit=self.limit,
            on_bad_row=self.on_bad_row, n=source.n, ks=[1], temperature=source.temperature,
            max_tokens=self.max_tokens, seed=self.seed, template=self.template, system=self.system,
            backend=self.backend, vllm=self.vllm, batch_size=self.batch_size, workers=self.workers,
            verifier_options=self.verifier_options,
        )  # fmt: skip


RESUME_FIELDS = ("data", "format", "split", "limit", "on_bad_row", "max_tokens", "seed", "template",
                 "system", "chunk_size", "models")  # fmt: skip
"""Settings a resumed run must share with the run that wrote the samples (the judge may change)."""


# ----------------------------------------------------------------------------- judging and pairing


@dataclass(frozen=True)
class Response:
    text: str
    finished: bool
    model: str
    verifier_score: float
    rm_score: float | None
    score: float
    sound: bool = True
    """No false equation in its worked arithmetic (always true without `judge.check_arithmetic`)."""


def judged(record: dict[str, Any], model: str, judge: JudgeConfig) -> list[Response]:
    """One prompt's responses from one model's samples record, with their scores."""
    rm_scores = record.get("rm_scores") or [None] * len(record["responses"])
    return [
        Response(text, finished, model, verifier, rm,
                 judge.verifier_weight * verifier + (judge.rm_weight * rm if judge.rm_weight else 0.0),
                 not (judge.check_arithmetic and false_equations(text)))
        for text, finished, verifier, rm in zip(
            record["responses"], record["finished"], record["scores"], rm_scores, strict=True
        )
    ]  # fmt: skip


def pick_pairs(
    responses: Sequence[Response], min_margin: float, pairs: int = 1
) -> tuple[list[tuple[Response, Response]], str | None]:
    """Up to `pairs` (chosen, rejected) pairs and, when there are none, the reason.

    Chosen: the best finished, sound responses; rejected: the lowest-scoring ones; ties by order in
    `responses` (the first wins). Each response is used once; pairing stops at the first pair whose
    margin is below `min_margin`."""
    if not any(r.finished for r in responses):
        return [], "no_finished_response"
    if len({r.score for r in responses}) == 1:
        return [], "all_equal_scores"
    candidates = [r for r in responses if r.finished and r.sound]
    if not candidates:
        return [], "false_arithmetic"
    best = sorted(candidates, key=lambda r: -r.score)  # stable: ties keep order
    worst = sorted(responses, key=lambda r: r.score)
    used: set[int] = set()
    out: list[tuple[Response, Response]] = []
    for chosen in best:
        if len(out) == pairs:
            break
        if id(chosen) in used:
            continue
        rejected = next((r for r in worst if id(r) not in used and r is not chosen), None)
        if rejected is None or chosen.score - rejected.score < min_margin:
            break
        used.update((id(chosen), id(rejected)))
        out.append((chosen, rejected))
    return out, None if out else "margin_below_min"


def pair_row(item: Item, chosen: Response, rejected: Response, cfg: PrefsConfig) -> dict[str, Any]:
    """A `prefs` row (chosen / rejected chats) with the metadata of how it was made."""
    prompt = build_messages(item, cfg.template, cfg.system)
    row: dict[str, Any] = {
        "chosen": [*prompt, {"role": "assistant", "content": chosen.text}],
        "rejected": [*prompt, {"role": "assistant", "content": rejected.text}],
        "source": item.source,
        "line": item.line,
        "dataset": item.dataset,
        "ground_truth": item.ground_truth,
    }
    for side, response in (("chosen", chosen), ("rejected", rejected)):
        row[f"{side}_model"] = response.model
        row[f"{side}_score"] = response.score
        row[f"{side}_verifier_score"] = response.verifier_score
        if response.rm_score is not None:
            row[f"{side}_rm_score"] = response.rm_score
    row["judge"] = to_dict(cfg.judge)
    return row


# ----------------------------------------------------------------------------- sampling


class RewardModelJudge:
    """The judge's reward model, loaded on first use and once per run."""

    def __init__(self, path: str, batch_size: int) -> None:
        self.path, self.batch_size = path, batch_size
        self._scorer: Any = None

    def score_missing(
        self, records: list[dict[str, Any]], prompts: Sequence[Prompt], cfg: PrefsConfig
    ) -> bool:
        """Add this reward model's raw reward of every answer (`rm_scores`) to the records that lack
        it or hold another model's (`records[i]` answers `prompts[i]`); whether any record changed."""
        todo = [(r, p) for r, p in zip(records, prompts, strict=False) if r.get("rm_model") != self.path]
        if not todo:
            return False
        if self._scorer is None:
            from rlvr.rewards.reward_model import RewardModelScorer

            self._scorer = RewardModelScorer(self.path, batch_size=self.batch_size)
        chats = [build_messages(p.item, cfg.template, cfg.system) for _, p in todo]
        rewards = self._scorer.rewards(
            [chat for chat, (r, _) in zip(chats, todo, strict=True) for _ in r["responses"]],
            [text for r, _ in todo for text in r["responses"]],
        )
        start = 0
        for r, _ in todo:
            end = start + len(r["responses"])
            r["rm_scores"], r["rm_model"], start = rewards[start:end], self.path, end
        return True


def _finished_records(path: Path, prompts: Sequence[Prompt], chunk_size: int) -> list[dict[str, Any]]:
    """The records of a killed run's whole chunks (a partial last chunk is sampled again)."""
    if not path.is_file():
        return []
    records = [row for _, row in read_jsonl(path) if isinstance(row, dict)]
    records = records[: len(records) // chunk_size * chunk_size] if len(records) < len(prompts) else records
    for record, prompt in zip(records, prompts, strict=False):
        if (record.get("source"), record.get("line")) != (prompt.item.source, prompt.item.line):
            raise DataError(
                f"{path}: line for {record.get('source')}:{record.get('line')} does not match the prompts "
                f"({prompt.item.source}:{prompt.item.line}): the data changed since it was written; "
                "use another out_dir or remove this one"
            )
    return records[: len(prompts)]


def sample_model(
    cfg: PrefsConfig, source: SourceModel, model: str, out: Path, judge: RewardModelJudge | None
) -> tuple[list[Prompt], list[dict[str, Any]], list[dict[str, Any]]]:
    """`source`'s judged responses to every prompt — read back for whole chunks a killed run wrote,
    sampled for the rest — with the prompts and the rows left out before sampling."""
    from transformers import AutoTokenizer

    ecfg = cfg.sampling(source, model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    context = model_context(model, cfg.vllm.max_model_len)
    prompts, skipped = load_prompts(ecfg, tokenizer, context)
    path = out / "samples" / f"{source.label}.jsonl"
    records = _finished_records(path, prompts, cfg.chunk_size)
    if judge is not None and judge.score_missing(records, prompts, cfg):  # a judge added or changed
        write_jsonl(records, path)
    if len(records) < len(prompts):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(records, path)  # drops a partial chunk a kill left behind
        engine = build_engine(ecfg, model, tokenizer, context)
        try:
            starts = range(len(records), len(prompts), cfg.chunk_size)
            for start in progress(starts, total=len(starts), desc=f"prefs: {source.label}"):
                chunk = prompts[start : start + cfg.chunk_size]
                # seeded by position: a resumed run samples a chunk exactly as an uninterrupted one
                samples = sample_all(engine, chunk, replace(ecfg, seed=cfg.seed + start))
                new = score(chunk, samples, tokenizer, ecfg)
                if judge is not None:
                    judge.score_missing(new, chunk, cfg)
                with path.open("a") as f:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in new)
                records += new
        finally:
            engine.close()
    return prompts, records, skipped


# ----------------------------------------------------------------------------- the run


def _check_resume(cfg: PrefsConfig, out: Path) -> None:
    """A resumed run must sample as the run that wrote `out` did."""
    saved = out / "config.yaml"
    if not saved.is_file() or not (out / "samples").is_dir():
        return
    before, now = read_yaml(saved), to_dict(cfg)
    changed = [k for k in RESUME_FIELDS if before.get(k) != now.get(k)]
    if changed:
        raise ConfigError(
            f"{out} holds samples made with other settings ({', '.join(changed)} changed): "
            "use another out_dir, or remove it to start over"
        )


def run(cfg: PrefsConfig) -> dict[str, Any]:
    """Sample, judge, pair; write prefs.jsonl, report.json and config.yaml; print the summary."""
    started = time.perf_counter()
    out = Path(cfg.out_dir)
    _check_resume(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    # every model resolved first: a wrong path fails now, not after hours of sampling another model
    models = [str(resolve_model(m.model, expect="causal_lm", what=f"models[{m.label}]")) for m in cfg.models]
    judge = None
    if cfg.judge.rm_weight:
        rm = resolve_model(
            cfg.judge.reward_model, expect="sequence_classification", what="judge.reward_model"
        )
        judge = RewardModelJudge(str(rm), cfg.judge.rm_batch_size)
    per_model: list[tuple[str, dict[tuple[str, int], dict[str, Any]]]] = []
    items: dict[tuple[str, int], Item] = {}
    left_out: dict[tuple[str, int], str] = {}
    for source, model in zip(cfg.models, models, strict=True):
        prompts, records, skipped = sample_model(cfg, source, model, out, judge)
        for p in prompts:
            items.setdefault((p.item.source, p.item.line), p.item)
        for s in skipped:
            left_out.setdefault((s["source"], s["line"]), s["kind"])
        per_model.append((source.label, {(r["source"], r["line"]): r for r in records}))
    rows, reasons, tied, unsound = [], Counter(), Counter(), 0
    for key, item in items.items():
        responses = [
            response
            for label, records in per_model
            if key in records
            for response in judged(records[key], label, cfg.judge)
        ]
        unsound += sum(not r.sound for r in responses)
        pairs, reason = pick_pairs(responses, cfg.judge.min_margin, cfg.judge.pairs_per_prompt)
        if reason is not None:
            reasons[reason] += 1
            if reason == "all_equal_scores":
                tied[f"{responses[0].score:g}"] += 1
        rows += [pair_row(item, chosen, rejected, cfg) for chosen, rejected in pairs]
    for key, kind in left_out.items():
        if key not in items:  # left out for every model
            reasons[kind] += 1
    tmp = out / "prefs.jsonl.tmp"
    write_jsonl(rows, tmp)
    os.replace(tmp, out / "prefs.jsonl")
    prompts = len(items) + sum(k not in items for k in left_out)
    report = _report(rows, prompts, reasons, tied, unsound, started)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report, out))
    return report


def _report(
    rows: Sequence[dict[str, Any]],
    prompts: int,
    reasons: Counter,
    tied: Counter,
    unsound: int,
    started: float,
) -> dict[str, Any]:
    with_pair = len({(r["source"], r["line"]) for r in rows})
    by_verifier = Counter(str(r["dataset"]) for r in rows)
    return {
        "pairs": len(rows),
        "prompts": prompts,
        "prompts_with_pair": with_pair,
        "prompts_without_pair": dict(sorted(reasons.items())),
        "all_equal_scores_by_score": dict(sorted(tied.items())),
        "responses_with_false_arithmetic": unsound,
        "pairs_by_verifier": dict(sorted(by_verifier.items())),
        "pairs_by_models": dict(Counter(f"{r['chosen_model']} > {r['rejected_model']}" for r in rows)),
        "mean_margin": sum(r["chosen_score"] - r["rejected_score"] for r in rows) / max(len(rows), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def format_report(report: dict[str, Any], out: Path) -> str:
    lines = [
        f"prefs: {report['pairs']:,} pairs from {report['prompts_with_pair']:,} of {report['prompts']:,} "
        f"prompts ({report['seconds']:.0f} s) -> {out / 'prefs.jsonl'}",
        "  pairs by verifier: " + ", ".join(f"{k} {v:,}" for k, v in report["pairs_by_verifier"].items()),
    ]
    if report["prompts_without_pair"]:
        lines.append(
            "  prompts without a pair: "
            + ", ".join(f"{k} {v:,}" for k, v in report["prompts_without_pair"].items())
        )
    if report["responses_with_false_arithmetic"]:
        lines.append(
            f"  responses never chosen for a false equation: {report['responses_with_false_arithmetic']:,}"
        )
    if report["all_equal_scores_by_score"]:
        lines.append(
            "  all responses scored alike: "
            + ", ".join(f"{v:,} at {k}" for k, v in report["all_equal_scores_by_score"].items())
        )
    return "\n".join(lines)


def make_prefs(
    data: str | Path | Sequence[str | Path],
    models: Sequence[str | Path | dict[str, Any]],
    out_dir: str | Path,
    **settings: Any,
) -> dict[str, Any]:
    """`rlvr prefs` in-process: `models` are paths / hub names or `SourceModel` fields as dicts;
    `settings` are other `PrefsConfig` fields (nested ones as dicts). Returns the report."""
    sources = [str(data)] if isinstance(data, str | Path) else [str(d) for d in data]
    values = {
        "data": sources,
        "out_dir": str(out_dir),
        "models": [m if isinstance(m, dict) else {"model": str(m)} for m in models],
    }
    return run(from_dict(PrefsConfig, {**values, **settings}, source="make_prefs()"))


EPILOG = """settings (PrefsConfig in rlvr/prefs.py; --key=value):
  --data FILE             prompts: RLVR rows (messages, ground_truth, dataset) or raw GSM8K / MATH / IFEval
  --out_dir DIR           prefs.jsonl, report.json, samples/, config.yaml (a rerun resumes here)
  --models='[{model: runs/tiny/sft, n: 4}, {model: other/ckpt, n: 2, name: other}]'
  --judge.min_margin 0.5  --judge.pairs_per_prompt 1
  --judge.rm_weight 0.1 --judge.reward_model runs/tiny/rm      (RM reward enters the score)
  --max_tokens 1024 --seed 0 --limit N --backend vllm|hf --chunk_size 512
"""


def main(argv: Sequence[str]) -> int:
    from rlvr.cli import config_command

    return config_command(
        argv,
        PrefsConfig,
        run,
        "rlvr prefs",
        "Sample responses from one or more models, judge them, write chosen/rejected pairs.",
        EPILOG,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
