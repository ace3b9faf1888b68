"""`rlvr pipeline --config configs/pipeline/tiny.yaml`: the recipe's stages in order, from one config.

Each stage writes into `runs/<name>/<stage>/` and is recorded in `runs/<name>/pipeline.json` when it
finishes; a re-run skips recorded stages, and a stage killed mid-way resumes from its own last
checkpoint. Stage settings come from the stage's own YAML file (the same file its command uses)
plus overrides, and the pipeline points every path inside its run directory.

Stages: data → tokenizer → tokens → pretrain (stage 1) → anneal (stage-2 ingredients) → soup (the
base model) → sft → dpo → rm → ppo → eval. The base, SFT, DPO and PPO records hold the same held-out
figures (greedy verifiable `accuracy`, `accuracy_by_verifier`, `preference_accuracy`), so each
stage's gain reads off pipeline.json; the rm record holds its held-out `pairwise_accuracy` and
`margin`. The eval stage runs `rlvr eval` (vLLM sampling, `evaluation.n` samples per prompt) on every
policy checkpoint — the synthetic test prompts plus any `evaluation.extra_data` files (e.g. the real
GSM8K / MATH-500 / IFEval files) — and records pass@1 / pass@k / maj@k per checkpoint and file.

After every run (a re-run that skips every stage included) `rlvr.report` writes `summary.json`,
`report.md` and `plots/` into the run directory; `rlvr pipeline report --run runs/<name>` rebuilds them.

Real scale (`configs/pipeline/olmo2_7b.yaml`): `base` names a released base model to post-train and
`data_source: stage_configs` keeps the data and held-out sets each stage's own config names (hub
datasets) instead of pointing the stages at the synthetic suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlvr.config import load_config, with_overrides
from rlvr.synth import SynthConfig, write_suite
from rlvr.tracking import RunConfig, prepare_run_dir, read_metrics

if TYPE_CHECKING:
    from rlvr.algos.common import StageConfig


@dataclass
class StageFile:
    """A stage's own YAML config plus overrides on top of it."""

    config: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class EvalStage:
    """The eval stage: `rlvr eval` settings (see `rlvr.eval.EvalConfig`) for every policy checkpoint."""

    n: int = 4
    temperature: float = 1.0
    max_tokens: int = 160
    extra_data: list[str] = field(default_factory=list)
    """Files evaluated besides the synthetic test prompts (raw GSM8K / MATH / IFEval formats read too)."""
    extra_limit: int | None = None
    """At most this many rows of each extra file."""
    backend: Literal["vllm", "hf"] = "vllm"
    gpu_memory_utilization: float = 0.1


@dataclass
class DPOData:
    """What the dpo stage trains on."""

    on_policy: bool = True
    """The prefs stage's pairs: the SFT model's own answers to the RLVR training prompts, judged by
    their verifiers (Tülu 3's on-policy data). False: the DPO config's own data (the synthetic pairs)."""
    synthetic_ratio: float = 0.0
    """With on_policy: synthetic near-miss pairs (prefs_train.jsonl) added per on-policy pair — 0 none,
    0.5 one for every two, 1 as many."""

    def __post_init__(self) -> None:
        if self.synthetic_ratio < 0:
            raise ValueError("dpo_data.synthetic_ratio must be ≥ 0")


@dataclass
class RMData:
    """What the rm stage trains on besides the synthetic pairs (prefs_train.jsonl)."""

    on_policy: bool = True
    """Also the prefs stage's pairs. Measured on the tiny suite (1 epoch each): synthetic pairs alone
    rank 79.7 % of the held-out synthetic pairs right but only 52.8 % of pairs of the SFT model's own
    answers to the held-out prompts; with the on-policy pairs added, 78.9 % and 64.5 %."""


@dataclass
class PipelineConfig(RunConfig):
    name: str = "tiny"
    synth: SynthConfig = field(default_factory=SynthConfig)
    vocab_size: int = 1024
    """Byte-level BPE vocabulary (special tokens and the 256 bytes included)."""
    heldout_fraction: float = 0.02
    """Share of pretraining documents held out for the base model's held-out loss."""
    pretrain: StageFile = field(default_factory=lambda: StageFile("configs/pretrain/tiny.yaml"))
    anneal: StageFile = field(default_factory=lambda: StageFile("configs/pretrain/tiny_stage2.yaml"))
    anneal_ingredients: int = 2
    """Stage-2 runs from the stage-1 checkpoint, each with its own data-order seed, then souped."""
    sft: StageFile = field(default_factory=lambda: StageFile("configs/sft/tiny.yaml"))
    """Also sets how the base model is evaluated (its `eval` section), so base and SFT compare."""
    prefs: StageFile = field(default_factory=lambda: StageFile("configs/prefs/tiny.yaml"))
    """`rlvr prefs` from the SFT model on the RLVR training prompts: the dpo stage's on-policy pairs."""
    dpo: StageFile = field(default_factory=lambda: StageFile("configs/dpo/tiny.yaml"))
    dpo_data: DPOData = field(default_factory=DPOData)
    rm_data: RMData = field(default_factory=RMData)
    rm: StageFile = field(default_factory=lambda: StageFile("configs/rm/tiny.yaml"))
    ppo: StageFile = field(default_factory=lambda: StageFile("configs/ppo/tiny.yaml"))
    """Starts from the dpo stage's checkpoint with the value model from the rm stage's."""
    data_source: Literal["synthetic", "stage_configs"] = "synthetic"
    """synthetic: every stage trains and is measured on the suite the data stage writes; stage_configs:
    every stage keeps the data and held-out sets its own config names (hub datasets at real scale) —
    the stages up to soup then do not apply, so `base` must be set."""
    evaluation: EvalStage = field(default_factory=EvalStage)
    base: str | None = None
    """A base model (path or hub name, e.g. allenai/OLMo-2-1124-7B) SFT starts from instead of the soup
    stage's; pretrain, anneal and soup then do not apply."""
    stages: list[str] = field(
        default_factory=lambda: [
            "data",
            "tokenizer",
            "tokens",
            "pretrain",
            "anneal",
            "soup",
            "sft",
            "prefs",
            "dpo",
            "rm",
            "ppo",
            "eval",
        ]
    )

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
        if self.anneal_ingredients < 1:
            raise ValueError("anneal_ingredients must be at least 1")
        for stage, data in (("dpo", self.dpo_data), ("rm", self.rm_data)):
            if data.on_policy and stage in self.stages and "prefs" not in self.stages:
                raise ValueError(f"{stage}_data.on_policy trains {stage} on the prefs stage's pairs: add prefs "
                                 f"to stages before {stage}, or set --{stage}_data.on_policy=false")  # fmt: skip
        if self.rm_data.on_policy and self.data_source == "stage_configs":
            raise ValueError("rm_data.on_policy adds the prefs stage's pairs to the synthetic ones: with "
                             "data_source stage_configs set --rm_data.on_policy=false")  # fmt: skip
        if self.data_source == "stage_configs" and not self.base:
            raise ValueError("data_source stage_configs needs base: the model SFT starts from")
        if self.base:  # nothing builds a base model, and with the stage configs' data nothing is synthesised
            unused = BASE_STAGES if self.data_source == "stage_configs" else ("pretrain", "anneal", "soup")
            if clash := [s for s in self.stages if s in unused]:
                raise ValueError(
                    f"stage(s) {clash} do not apply with base {self.base} and data_source {self.data_source}"
                )


@dataclass
class Context:
    cfg: PipelineConfig
    run_dir: Path
    done: dict[str, dict[str, Any]]
    base: Path | None = None
    """`cfg.base` resolved to a local checkpoint folder (`rlvr.checkpoints.resolve_model`)."""

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)


def run_data(ctx: Context) -> dict[str, Any]:
    counts = write_suite(ctx.cfg.synth, ctx.path("data"))
    return {"dir": "data", "rows": counts}


def run_tokenizer(ctx: Context) -> dict[str, Any]:
    from base_model.data import iter_texts
    from base_model.tokenizer import train_tokenizer

    sources = [str(ctx.path("data", f)) for f in ("pretrain.jsonl", "sft_train.jsonl")]
    tokenizer = train_tokenizer(iter_texts(sources), ctx.path("tokenizer"), ctx.cfg.vocab_size)
    return {"dir": "tokenizer", "vocab": len(tokenizer)}


def run_tokens(ctx: Context) -> dict[str, Any]:
    from base_model.data import prepare_memmaps

    tokens, tokenizer = ctx.path("tokens"), ctx.path("tokenizer")
    files = prepare_memmaps(
        [str(ctx.path("data", "pretrain.jsonl"))],
        tokenizer,
        tokens,
        val_fraction=ctx.cfg.heldout_fraction,
        seed=ctx.cfg.seed,
    )
    # The anneal mix adds the SFT chats as plain text (no held-out share: they are training data).
    files.update(
        prepare_memmaps([str(ctx.path("data", "sft_train.jsonl"))], tokenizer, tokens, seed=ctx.cfg.seed)
    )
    return {"dir": "tokens", "tokens": {name: record["tokens"] for name, record in files.items()}}


def _place(cfg: RunConfig, ctx: Context, name: str) -> None:
    """A stage's run directory inside the pipeline's, the pipeline's seed and wandb setting."""
    cfg.runs_root, cfg.name, cfg.seed = str(ctx.run_dir), name, ctx.cfg.seed
    cfg.log.wandb = ctx.cfg.log.wandb


def _pretrain_run(
    ctx: Context, stage: StageFile, name: str, ingredient: tuple[int, Path] | None = None
) -> dict[str, Any]:
    """One `rlvr pretrain` run with its paths pointed into the pipeline's run directory; `ingredient`:
    (its number, the stage-1 checkpoint) for an anneal run."""
    from base_model.config import PretrainConfig
    from base_model.trainer import pretrain

    tokens = ctx.path("tokens")
    cfg = load_config(PretrainConfig, stage.config)
    _place(cfg, ctx, name)
    cfg.tokenizer = str(ctx.path("tokenizer"))
    cfg.data.eval_paths = [str(tokens / "val" / "pretrain.tokens.bin")]
    for source in cfg.data.train:  # stage files name runs/tokens/X.tokens.bin; keep the file, move the folder
        source.paths = [str(tokens / Path(p).name) for p in source.paths]
    if ingredient is not None:  # stage 2: one anneal ingredient from the stage-1 model
        cfg.init_from, cfg.ingredient, cfg.seed = (
            str(ingredient[1]),
            ingredient[0],
            ctx.cfg.seed + ingredient[0],
        )
    cfg = with_overrides(cfg, stage.overrides, f"{stage.config} + overrides")
    started = time.time()
    checkpoint = pretrain(cfg)
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
    return {
        "checkpoint": str(checkpoint.relative_to(ctx.run_dir)),
        "steps": metrics[-1]["step"] if metrics else 0,
        "tokens": metrics[-1].get("tokens", 0) if metrics else 0,
        "heldout_loss": evals[-1] if evals else None,
        "seconds": round(time.time() - started, 1),
    }


def run_pretrain(ctx: Context) -> dict[str, Any]:
    return _pretrain_run(ctx, ctx.cfg.pretrain, "pretrain")


def run_anneal(ctx: Context) -> dict[str, Any]:
    start = ctx.path(ctx.done["pretrain"]["checkpoint"])
    ingredients = [
        _pretrain_run(ctx, ctx.cfg.anneal, f"anneal-{i}", (i, start))
        for i in range(1, ctx.cfg.anneal_ingredients + 1)
    ]
    return {"ingredients": ingredients}


def run_soup(ctx: Context) -> dict[str, Any]:
    from base_model.soup import heldout_loss, soup

    ingredients = [ctx.path(r["checkpoint"]) for r in ctx.done["anneal"]["ingredients"]]
    base = ctx.path("base")
    if len(ingredients) == 1:  # nothing to average: the single anneal is the base model
        import shutil

        shutil.copytree(ingredients[0], base, dirs_exist_ok=True)
    else:
        soup(ingredients, base)
    loss = heldout_loss(base, [ctx.path("tokens", "val", "pretrain.tokens.bin")], seq_len=256, max_chunks=64)
    return {"checkpoint": "base", "heldout_loss": loss, **_evaluate_checkpoint(ctx, base)}


def _point_stage(
    cfg: StageConfig,
    ctx: Context,
    name: str,
    init_from: str | Path,
    train: Sequence[Path] | None,
    eval_files: Sequence[str],
) -> None:
    """Points a post-training stage's config into the pipeline's run directory: its start, its training
    data at `train` (None: the stage config's) and its held-out sets at the synthetic suite's (unless
    the stage configs name the data)."""
    _place(cfg, ctx, name)
    cfg.init_from = str(init_from)
    if train is not None:
        cfg.data.train = [str(path) for path in train]
    if ctx.cfg.data_source == "synthetic":
        for split in eval_files:
            setattr(cfg.eval, split, str(ctx.path("data", f"{split}.jsonl")))


def _synthetic(ctx: Context, filename: str) -> list[Path] | None:
    """A file of the synthetic suite a stage trains on; None when the stage configs name the data."""
    return [ctx.path("data", filename)] if ctx.cfg.data_source == "synthetic" else None


def _evaluate_checkpoint(ctx: Context, checkpoint: Path) -> dict[str, Any]:
    """A policy checkpoint's held-out figures, measured as the SFT stage measures its own (the base and
    the PPO models have no such evaluation of their own, so every stage reads off one measure)."""
    from rlvr.algos.common import load_causal_lm, load_chat_tokenizer
    from rlvr.algos.evaluation import evaluate_policy
    from rlvr.algos.sft import SFTConfig
    from rlvr.train.precision import autocast_dtype

    cfg = load_config(SFTConfig, ctx.cfg.sft.config)
    _point_stage(cfg, ctx, "eval", checkpoint, None, ["rlvr_test", "prefs_test"])
    cfg = with_overrides(cfg, ctx.cfg.sft.overrides)
    if not (cfg.eval.rlvr_test or cfg.eval.prefs_test):
        return {}  # the sft config names no held-out sets: nothing to measure
    model = load_causal_lm(str(checkpoint), cfg.train.attention)
    autocast = autocast_dtype(cfg.train.precision, next(model.parameters()).device)
    return evaluate_policy(
        model, load_chat_tokenizer(str(checkpoint)), cfg.eval, cfg.data.max_length, autocast
    )


def _post_train(
    ctx: Context,
    stage: str,
    init_from: str | Path,
    train: Sequence[Path] | None,
    eval_files: Sequence[str],
    all_rows: bool = False,
) -> dict[str, Any]:
    """One `rlvr sft|dpo|rm` run inside the pipeline's run directory; its checkpoint and held-out
    figures. `all_rows`: train on every row of `train` (the stage config's `data.limit` sizes its own
    data, not a file the pipeline made)."""
    from rlvr.algos import dpo, reward_model, sft
    from rlvr.algos.common import run_stage

    config_cls, trainer_cls = {
        "sft": (sft.SFTConfig, sft.SFTTrainer),
        "dpo": (dpo.DPOConfig, dpo.DPOTrainer),
        "rm": (reward_model.RewardModelConfig, reward_model.RewardModelTrainer),
    }[stage]
    stage_file: StageFile = getattr(ctx.cfg, stage)
    cfg = load_config(config_cls, stage_file.config)
    _point_stage(cfg, ctx, stage, init_from, train, eval_files)
    if all_rows:
        cfg.data.limit = None
    cfg = with_overrides(cfg, stage_file.overrides, f"{stage_file.config} + overrides")
    result = run_stage(trainer_cls, cfg)
    figures = {k: v for k, v in result.evaluation.items() if k != "step"}
    return {"checkpoint": str(result.checkpoint.relative_to(ctx.run_dir)), "steps": result.steps, **figures}


def run_sft(ctx: Context) -> dict[str, Any]:
    base = ctx.base or ctx.cfg.base or ctx.path(ctx.done["soup"]["checkpoint"])
    return _post_train(ctx, "sft", base, _synthetic(ctx, "sft_train.jsonl"), ["rlvr_test", "prefs_test"])


def run_prefs(ctx: Context) -> dict[str, Any]:
    """`rlvr prefs`: the SFT model answers the RLVR training prompts; pairs judged by their verifiers."""
    from dataclasses import replace

    from rlvr.prefs import PrefsConfig, run

    cfg = load_config(PrefsConfig, ctx.cfg.prefs.config, ctx.cfg.prefs.overrides)
    sft = str(ctx.path(ctx.done["sft"]["checkpoint"]))
    cfg = replace(
        cfg,
        data=[str(ctx.path("data", "rlvr_train.jsonl"))] if ctx.cfg.data_source == "synthetic" else cfg.data,
        out_dir=str(ctx.path("prefs")),
        seed=ctx.cfg.seed,
        # on-policy: the first model, and every other entry naming the same checkpoint (e.g. its greedy
        # answer beside its samples), is this run's SFT model
        models=[
            replace(m, model=sft, name=m.name or "sft") if m.model == cfg.models[0].model else m
            for m in cfg.models
        ],
    )
    report = run(cfg)
    return {"dir": "prefs", **{k: report[k] for k in ("pairs", "prompts", "prompts_without_pair", "seconds")}}


def _dpo_pairs(ctx: Context) -> Path:
    """The dpo stage's training file: the prefs stage's pairs plus `synthetic_ratio` × as many synthetic
    near-miss pairs (the first of prefs_train.jsonl), shuffled together with the pipeline's seed."""
    import random

    from rlvr.data import DataError, read_jsonl, write_jsonl

    on_policy = [row for _, row in read_jsonl(ctx.path("prefs", "prefs.jsonl"))]
    if not on_policy:
        raise DataError(
            f"the prefs stage made no pair ({ctx.done['prefs']['prompts_without_pair']}): sample more answers "
            "per prompt (--prefs.overrides), or train DPO on its config's data (--dpo_data.on_policy=false)"
        )
    wanted = round(ctx.cfg.dpo_data.synthetic_ratio * len(on_policy))
    synthetic = []
    if wanted:
        for _, row in read_jsonl(ctx.path("data", "prefs_train.jsonl")):
            if len(synthetic) == wanted:
                break
            synthetic.append(row)
    rows = on_policy + synthetic
    random.Random(ctx.cfg.seed).shuffle(rows)
    path = ctx.path("prefs", "dpo_train.jsonl")
    write_jsonl(rows, path)
    print(f"pipeline: dpo: {len(on_policy):,} on-policy + {len(synthetic):,} synthetic pairs -> {path}",
          file=sys.stderr)  # fmt: skip
    return path


def run_dpo(ctx: Context) -> dict[str, Any]:
    sft = ctx.path(ctx.done["sft"]["checkpoint"])
    evals = ["rlvr_test", "prefs_test"]
    if not ctx.cfg.dpo_data.on_policy:
        return _post_train(ctx, "dpo", sft, _synthetic(ctx, "prefs_train.jsonl"), evals)
    return _post_train(ctx, "dpo", sft, [_dpo_pairs(ctx)], evals, all_rows=True)


def run_rm(ctx: Context) -> dict[str, Any]:
    train = _synthetic(ctx, "prefs_train.jsonl")
    if ctx.cfg.rm_data.on_policy and train is not None:
        if ctx.done["prefs"]["pairs"]:
            train.append(ctx.path("prefs", "prefs.jsonl"))
        else:
            print("pipeline: rm: the prefs stage made no pair; the RM trains on the synthetic pairs only",
                  file=sys.stderr)  # fmt: skip
    return _post_train(ctx, "rm", ctx.path(ctx.done["sft"]["checkpoint"]), train, ["prefs_test"])


def run_ppo(ctx: Context) -> dict[str, Any]:
    """`rlvr ppo` from the DPO model with the value model from the reward model; figures as for SFT/DPO."""
    from rlvr.algos.ppo.config import PPOConfig
    from rlvr.algos.ppo.trainer import train

    cfg = load_config(PPOConfig, ctx.cfg.ppo.config)
    _place(cfg, ctx, "ppo")
    cfg.policy = str(ctx.path(ctx.done["dpo"]["checkpoint"]))
    cfg.reward_model = str(ctx.path(ctx.done["rm"]["checkpoint"]))
    if ctx.cfg.data_source == "synthetic":
        # no test prompts: the policy is measured below, on the same prompts and settings as every other stage
        cfg.data.train, cfg.data.test = [str(ctx.path("data", "rlvr_train.jsonl"))], []
    cfg = with_overrides(cfg, ctx.cfg.ppo.overrides, f"{ctx.cfg.ppo.config} + overrides")
    policy = train(cfg) / "policy"
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    return {
        "checkpoint": str(policy.relative_to(ctx.run_dir)),
        "steps": metrics[-1]["step"],
        "episodes": metrics[-1]["episodes"],
        **_evaluate_checkpoint(ctx, policy),
    }


POLICY_STAGES = {"base": "soup", "sft": "sft", "dpo": "dpo", "ppo": "ppo"}
"""Checkpoint name in the eval record -> the stage whose record holds it."""


def run_eval(ctx: Context) -> dict[str, Any]:
    """`rlvr eval` of every finished policy stage's checkpoint: pass@1 / pass@k / maj@k per data file."""
    from rlvr.eval import evaluate_checkpoints

    e = ctx.cfg.evaluation
    synthetic = (
        [("rlvr_test", ctx.path("data", "rlvr_test.jsonl"), None)]
        if ctx.cfg.data_source == "synthetic"
        else []
    )
    sources = [*synthetic, *((Path(f).stem, Path(f), e.extra_limit) for f in e.extra_data)]
    if not sources:
        raise ValueError("the eval stage has nothing to evaluate: set evaluation.extra_data")
    checkpoints: dict[str, str | Path] = {
        name: ctx.path(ctx.done[stage]["checkpoint"])
        for name, stage in POLICY_STAGES.items()
        if stage in ctx.done
    }
    if ctx.cfg.base:  # a released base model (path or hub name) stands in for the soup stage's
        checkpoints = {"base": ctx.base or ctx.cfg.base, **checkpoints}
    results: dict[str, dict[str, Any]] = {name: {} for name in checkpoints}
    for label, source, limit in sources:  # one engine per file, its weights swapped per checkpoint
        jobs = [
            (checkpoint, source, ctx.path("eval", name, label)) for name, checkpoint in checkpoints.items()
        ]
        all_metrics = evaluate_checkpoints(
            jobs, n=e.n, temperature=e.temperature, max_tokens=e.max_tokens, limit=limit, seed=ctx.cfg.seed,
            backend=e.backend, vllm={"gpu_memory_utilization": e.gpu_memory_utilization},
        )  # fmt: skip
        for name, (_, _, out_dir), metrics in zip(checkpoints, jobs, all_metrics, strict=True):
            results[name][label] = {
                "dir": str(out_dir.relative_to(ctx.run_dir)),
                "prompts": metrics["overall"]["prompts"],
                **{k: v for k, v in metrics["overall"].items() if k.startswith(("pass@", "maj@"))},
                "stop_rate": metrics["overall"]["stop_rate"],
                "accuracy_by_verifier": metrics["accuracy_by_verifier"],
            }
    return {"n": e.n, "temperature": e.temperature, "checkpoints": results}


STAGES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "data": run_data,
    "tokenizer": run_tokenizer,
    "tokens": run_tokens,
    "pretrain": run_pretrain,
    "anneal": run_anneal,
    "soup": run_soup,
    "sft": run_sft,
    "prefs": run_prefs,
    "dpo": run_dpo,
    "rm": run_rm,
    "ppo": run_ppo,
    "eval": run_eval,
}
BASE_STAGES = ("data", "tokenizer", "tokens", "pretrain", "anneal", "soup")
"""The stages that make the base model (their seconds add up to the base model's in summary.json)."""


def _save_state(path: Path, done: dict[str, dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"done": done}, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written record


def run_pipeline(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    from rlvr.checkpoints import resolve_model

    # first: a wrong base (path or hub name) fails now, not after the stages before SFT
    base = resolve_model(cfg.base, "causal_lm", "base") if cfg.base else None
    run_dir = prepare_run_dir(cfg)
    state_path = run_dir / "pipeline.json"
    done = json.loads(state_path.read_text())["done"] if state_path.exists() else {}
    ctx = Context(cfg, run_dir, done, base)
    for stage in cfg.stages:
        if stage in done:
            print(f"pipeline: {stage}: done earlier, skipped", file=sys.stderr)
            continue
        print(f"pipeline: {stage}: running", file=sys.stderr)
        started = time.time()
        record = STAGES[stage](ctx)
        record.setdefault("seconds", round(time.time() - started, 1))
        done[stage] = record
        _save_state(state_path, done)
        print(f"pipeline: {stage}: finished in {record['seconds']:.0f} s", file=sys.stderr)
    from rlvr.report import write_report

    print(f"pipeline: report: {write_report(run_dir)}", file=sys.stderr)
    return done


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["report"]:  # `rlvr pipeline report --run runs/<name>`: rebuild a run's report
        from rlvr.report import main as report_main

        return report_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="rlvr pipeline",
        description="Run the recipe's stages from one config.",
        epilog="rlvr pipeline report --run runs/<name>: rebuild a run's summary.json, report.md and plots/.",
    )
    parser.add_argument("--config", required=True, help="e.g. configs/pipeline/tiny.yaml")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(PipelineConfig, args.config, overrides)
    done = run_pipeline(cfg)
    print(json.dumps(done, indent=2))
    return 0
