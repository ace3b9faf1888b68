"""The `rlvr eval` run: config, prompt encoding, sampling, scoring, outputs, command line."""

from __future__ import annotations

import json
import string
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from rlvr.algos.evaluation import verifier_key
from rlvr.config import from_dict, save_config
from rlvr.data import DataError, write_jsonl
from rlvr.eval.data import Format, Item, build_messages, load_items, read_fewshot
from rlvr.eval.metrics import ANSWER_EXTRACTORS, format_table, summarize
from rlvr.generation import chat_prompt
from rlvr.rewards import VerifierResult, resolve
from rlvr.rollout import Engine, HFEngine, Sample
from rlvr.tracking import progress
from rlvr.vllm_engine import VLLMConfig, VLLMEngine


@dataclass
class EvalConfig:
    model: str
    """A Hugging Face checkpoint folder, a run directory (its newest checkpoint) or a hub name
    `org/name[@revision]` (fetched into the local Hugging Face cache; `rlvr.checkpoints`)."""
    data: list[str] | str
    """Files (.jsonl/.parquet) or hub names (`org/name`, `org/name:split`, `org/name:config:split`)."""
    format: Format = "auto"
    """How rows are read: auto picks per file from the first row's keys (see `detect_format`)."""
    split: str = "test"
    """The split of a hub data set named without one."""
    limit: int | None = None
    """Evaluate at most this many readable rows per source."""
    on_bad_row: Literal["error", "skip"] = "error"
    n: int = 4
    """Samples per prompt."""
    ks: list[int] | None = None
    """The k of pass@k and maj@k (each ≤ n); default: the powers of two up to n."""
    temperature: float = 1.0
    max_tokens: int = 1024
    """Response budget; it shrinks for prompts whose length plus this exceeds the context."""
    seed: int = 0
    template: str = "{question}"
    """The user turn, a format string with {question}."""
    system: str | None = None
    """A system turn before everything else."""
    fewshot: str | None = None
    """A .jsonl of examples (question/answer, problem/solution or a user+assistant `messages` pair)
    rendered as chat turns before the question, with the same template."""
    backend: Literal["vllm", "hf"] = "vllm"
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    """`vllm.max_model_len` is the context for both backends, capped at the model's own."""
    batch_size: int = 128
    """Prompts per engine call (hf pads a call's prompts × n into one batch)."""
    workers: int = 1
    """Processes scoring the responses."""
    verifier_options: dict[str, dict] = field(default_factory=dict)
    """Per-verifier options, e.g. {ifeval: {mode: loose}}."""
    out_dir: str | None = None
    """Default: runs/eval/<model>/<data file stems>."""

    def __post_init__(self) -> None:
        self.data = [self.data] if isinstance(self.data, str) else list(self.data)
        if not self.model or not self.data:
            raise ValueError("model and data must be set, e.g. --model=runs/tiny/dpo --data=test.jsonl")
        if self.n < 1 or self.max_tokens < 1 or self.batch_size < 1:
            raise ValueError("n, max_tokens and batch_size must be ≥ 1")
        if self.temperature <= 0 and self.n > 1:
            raise ValueError("temperature 0 (greedy) gives n identical samples: use n=1 or temperature > 0")
        if self.ks is None:
            self.ks = [2**i for i in range(self.n.bit_length()) if 2**i <= self.n]
        if not self.ks or any(not 1 <= k <= self.n for k in self.ks):
            raise ValueError(f"ks must be a non-empty list of values in 1..n={self.n}, got {self.ks}")
        self.ks = sorted(set(self.ks))
        fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        if fields != {"question"}:
            raise ValueError(f"template must use {{question}} and no other field, got {sorted(fields)}")


@dataclass
class Prompt:
    item: Item
    text: str
    """The rendered prompt as the model sees it."""
    ids: list[int]
    budget: int
    """Response tokens allowed: max_tokens, or what the context leaves after the prompt."""


def render(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The tokenizer's own chat template with the generation prompt (rlvr checkpoints carry rlvr's);
    rlvr's template for a tokenizer without one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return chat_prompt(messages)


def encode(
    items: Sequence[Item], tokenizer: Any, cfg: EvalConfig, fewshot: Sequence[tuple[str, str]], context: int
) -> tuple[list[Prompt], list[tuple[Item, int]]]:
    """The prompts that leave room to answer within `context` tokens, and `(item, length)` of the rest."""
    texts = [render(tokenizer, build_messages(item, cfg.template, cfg.system, fewshot)) for item in items]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    prompts, too_long = [], []
    for item, text, ids in zip(items, texts, encoded, strict=True):
        if len(ids) >= context:
            too_long.append((item, len(ids)))
        else:
            prompts.append(Prompt(item, text, ids, min(cfg.max_tokens, context - len(ids))))
    return prompts, too_long


def within_budget(sample: Sample, budget: int) -> Sample:
    """`sample` cut to `budget` tokens (then unfinished, unless its EOS fell within the budget)."""
    if len(sample.token_ids) <= budget:
        return sample
    return Sample(sample.token_ids[:budget], False, sample.logprobs[:budget])


def model_context(model: str, cap: int) -> int:
    """`cap`, or the model's own context (`max_position_embeddings`) when that is shorter."""
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", None)
    return min(cap, limit) if limit else cap


def build_engine(cfg: EvalConfig, model: str, tokenizer: Any, context: int) -> Engine:
    if cfg.backend == "hf":
        import torch

        from rlvr.algos.common import load_causal_lm

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return HFEngine(load_causal_lm(model).to(device), tokenizer)
    return VLLMEngine(model, replace(cfg.vllm, max_model_len=context), seed=cfg.seed)


def sample_all(engine: Engine, prompts: Sequence[Prompt], cfg: EvalConfig) -> list[list[Sample]]:
    """`cfg.n` samples per prompt, each within its prompt's budget, `cfg.batch_size` prompts a call."""
    starts = range(0, len(prompts), cfg.batch_size)
    out: list[list[Sample]] = []
    for index, start in enumerate(progress(starts, total=len(starts), desc="eval: sampling")):
        chunk = prompts[start : start + cfg.batch_size]
        groups = engine.sample(
            [p.ids for p in chunk],
            cfg.n,
            max(p.budget for p in chunk),
            cfg.temperature,
            seed=cfg.seed + index,
        )
        out += [[within_budget(s, p.budget) for s in group] for p, group in zip(chunk, groups, strict=True)]
    return out


def _parts(result: VerifierResult) -> list[VerifierResult]:
    return result.parts or [result]


def generation_record(
    prompt: Prompt, texts: Sequence[str], samples: Sequence[Sample], results: Sequence[VerifierResult]
) -> dict[str, Any]:
    """One line of `generations.jsonl`: the prompt, its label, the n responses and their verdicts."""
    item = prompt.item
    record: dict[str, Any] = {
        "source": item.source,
        "line": item.line,
        "dataset": verifier_key({"dataset": item.dataset}),
        "question": item.question,
        "prompt": prompt.text,
        "ground_truth": item.ground_truth,
        "responses": list(texts),
        "scores": [r.score for r in results],
        "finished": [s.finished for s in samples],
        "response_tokens": [len(s.token_ids) for s in samples],
        "timed_out": sum(r.timed_out for r in results),
        "verifier_errors": [p.details["error"] for r in results for p in _parts(r) if "error" in p.details],
    }
    extractor = ANSWER_EXTRACTORS.get(resolve(item.dataset)) if isinstance(item.dataset, str) else None
    if extractor is not None:
        record["answers"] = [extractor(text) for text in texts]
    verdicts = [
        [v for p in _parts(r) if p.verifier == "ifeval" for v in p.details.get("instructions", ())]
        for r in results
    ]
    if any(verdicts):
        record["ifeval"] = verdicts
    return record


def default_out_dir(model: str, data: Sequence[str]) -> Path:
    """runs/eval/<model>/<data>: the checkpoint folder's name (`stepN-policy` for a PPO checkpoint's
    policy/) and the data files' stems joined by '+'."""
    path = Path(model)
    label = f"{path.parent.name}-{path.name}" if path.name == "policy" else path.name
    stems = "+".join(Path(d).stem.replace(":", "_") for d in data)
    return Path("runs") / "eval" / label / stems


MAX_SKIPS_SHOWN = 20


def load_prompts(cfg: EvalConfig, tokenizer: Any, context: int) -> tuple[list[Prompt], list[dict[str, Any]]]:
    """Every source's rows as encoded prompts, and a record (source, line, kind, reason) of each row
    left out: `unreadable` (with `on_bad_row: skip`) or `too_long` (no room to answer in `context`)."""
    items: list[Item] = []
    skipped: list[dict[str, Any]] = []
    for source in cfg.data:
        loaded, bad = load_items(source, cfg.format, cfg.split, cfg.limit, cfg.on_bad_row)
        items += loaded
        skipped += [
            {"source": source, "line": line, "kind": "unreadable", "reason": reason} for line, reason in bad
        ]
    fewshot = read_fewshot(cfg.fewshot) if cfg.fewshot else []
    prompts, too_long = encode(items, tokenizer, cfg, fewshot, context)
    skipped += [
        {"source": i.source, "line": i.line, "kind": "too_long",
         "reason": f"a {n}-token prompt leaves no room in the {context}-token context"}
        for i, n in too_long
    ]  # fmt: skip
    for s in skipped[:MAX_SKIPS_SHOWN]:
        print(f"eval: left out {s['source']} line {s['line']}: {s['reason']}", file=sys.stderr)
    if len(skipped) > MAX_SKIPS_SHOWN:
        print(
            f"eval: … and {len(skipped) - MAX_SKIPS_SHOWN:,} more rows left out (all in metrics.json)",
            file=sys.stderr,
        )
    if not prompts:
        raise DataError(f"no prompt left to evaluate: {len(skipped)} row(s) left out")
    return prompts, skipped


def score(
    prompts: Sequence[Prompt], samples: Sequence[Sequence[Sample]], tokenizer: Any, cfg: EvalConfig
) -> list[dict[str, Any]]:
    """The responses decoded and scored by their verifiers: one generation record per prompt."""
    from rlvr.rewards import BatchScorer

    texts = [[tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in group] for group in samples]
    rows = [
        {"prediction": text, "ground_truth": p.item.ground_truth, "dataset": p.item.dataset,
         "prompt": p.item.question, **({"weights": p.item.weights} if p.item.weights else {})}
        for p, group in zip(prompts, texts, strict=True) for text in group
    ]  # fmt: skip
    with BatchScorer(cfg.workers, cfg.verifier_options) as scorer:
        results = scorer.score(rows)
    return [
        generation_record(p, group, sampled, results[i * cfg.n : (i + 1) * cfg.n])
        for i, (p, group, sampled) in enumerate(zip(prompts, texts, samples, strict=True))
    ]


@dataclass
class SharedEngine:
    """One engine for several runs (`evaluate_checkpoints`): built by the first, reloaded for another model."""

    engine: Engine | None = None
    model: str | None = None

    def engine_for(
        self, cfg: EvalConfig, model: str, tokenizer: Any, context: int, probe: list[int]
    ) -> Engine:
        if self.engine is None:
            self.engine = build_engine(cfg, model, tokenizer, context)
        elif self.model != model:
            if cfg.backend == "vllm" and cfg.vllm.dtype != "float32":
                raise ValueError("a shared engine's reloads are verified against fp32 weights: keep vllm.dtype "
                                 "float32, or evaluate the checkpoints one by one")  # fmt: skip
            load_into(self.engine, model, probe)
        self.model = model
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


SYNC_TOLERANCE = 1e-3
"""Max per-token log-prob gap between the engine and the checkpoint after a reload (fp32 both sides)."""


def load_into(engine: Engine, model: str, probe: list[int]) -> None:
    """`model`'s weights into a running engine (same shape and tokenizer), verified on `probe`."""
    from rlvr.algos.common import load_causal_lm
    from rlvr.rollout import Weights, trainer_logprobs, verify_sync

    module = load_causal_lm(model)
    engine.load_weights(Weights.of(module))
    verify_sync(engine, probe, trainer_logprobs(module, probe), SYNC_TOLERANCE)


def run(cfg: EvalConfig, shared: SharedEngine | None = None) -> dict[str, Any]:
    """Load, sample, verify, aggregate; write generations.jsonl, metrics.json and config.yaml; print
    the table. Returns the metrics. With `shared`, the engine outlives the run (the caller closes it)."""
    from rlvr.checkpoints import resolve_model

    started = time.perf_counter()
    model = str(resolve_model(cfg.model, "causal_lm", "model"))
    from transformers import AutoTokenizer

    # a hub name's label is its own (`org/name` → name), not its cache snapshot's commit
    label = model if Path(cfg.model).expanduser().exists() else cfg.model
    out_dir = Path(cfg.out_dir) if cfg.out_dir else default_out_dir(label, cfg.data)
    tokenizer = AutoTokenizer.from_pretrained(model)
    context = model_context(model, cfg.vllm.max_model_len)
    prompts, skipped = load_prompts(cfg, tokenizer, context)
    capped = sum(p.budget < cfg.max_tokens for p in prompts)
    print(f"eval: {model}: {len(prompts):,} prompts × {cfg.n} samples, context {context} tokens ("
          f"{capped:,} prompts with less than max_tokens={cfg.max_tokens} left for the response)", file=sys.stderr)  # fmt: skip
    own = shared is None
    engine = (SharedEngine() if own else shared).engine_for(cfg, model, tokenizer, context, prompts[0].ids)
    sampling_started = time.perf_counter()
    try:
        samples = sample_all(engine, prompts, cfg)
    finally:
        if own:
            engine.close()
    sampling_seconds = time.perf_counter() - sampling_started
    generations = score(prompts, samples, tokenizer, cfg)
    tokens = sum(len(s.token_ids) for group in samples for s in group)
    metrics = {
        "model": model, "data": cfg.data, "backend": cfg.backend, "n": cfg.n, "ks": cfg.ks,
        "temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "context": context,
        **summarize(generations, cfg.ks),
        "skipped": {kind: sum(s["kind"] == kind for s in skipped) for kind in ("unreadable", "too_long")},
        "skipped_rows": skipped,
        "response_budget_capped": capped,
        "sampling_seconds": sampling_seconds,
        "generated_tokens_per_s": tokens / max(sampling_seconds, 1e-9),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(generations, out_dir / "generations.jsonl")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    save_config(cfg, out_dir / "config.yaml")
    print(format_table(metrics))
    print(f"\n{out_dir}/: generations.jsonl, metrics.json ({metrics['seconds']:.0f} s, "
          f"{metrics['generated_tokens_per_s']:,.0f} generated tokens/s)")  # fmt: skip
    return metrics


def evaluate(
    model: str | Path,
    data: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """`rlvr eval` in-process: `settings` are `EvalConfig` fields (nested ones as dicts), type-checked
    like the command line's; returns the metrics (`accuracy` is pass@1, `accuracy_by_verifier` per
    verifier)."""
    return run(_config(model, data, out_dir, settings))


def evaluate_checkpoints(
    jobs: Sequence[tuple[str | Path, str | Path, str | Path]], **settings: Any
) -> list[dict[str, Any]]:
    """`evaluate(model, data, out_dir, **settings)` for each job with ONE engine: built for the first
    model, then each other model's weights are loaded into it and verified on a probe (an fp32 engine:
    `settings` may not change `vllm.dtype`). For checkpoints of one model (same shape and tokenizer),
    e.g. a pipeline's stages: a vLLM start-up per checkpoint is what this saves."""
    shared = SharedEngine()
    try:
        return [run(_config(model, data, out_dir, settings), shared) for model, data, out_dir in jobs]
    finally:
        shared.close()


def _config(
    model: str | Path,
    data: str | Path | Sequence[str | Path],
    out_dir: str | Path | None,
    settings: dict[str, Any],
) -> EvalConfig:
    sources = [str(data)] if isinstance(data, str | Path) else [str(d) for d in data]
    values = {"model": str(model), "data": sources, "out_dir": None if out_dir is None else str(out_dir)}
    return from_dict(EvalConfig, {**values, **settings}, source="evaluate()")


EPILOG = """settings (EvalConfig in rlvr/eval/runner.py; --key=value or --key value):
  --model PATH            checkpoint folder, run directory or hub name (required)
  --data SOURCE           .jsonl/.parquet file or hub name; several as --data=[a.jsonl, b.jsonl] (required)
  --n 4 --temperature 1.0 --max-tokens 1024 --ks=[1,2,4] --seed 0
  --limit N               at most N rows per source
  --format auto           or rlvr, gsm8k, math, ifeval
  --template '{question}' --system TEXT --fewshot FILE
  --backend vllm          or hf; --vllm.max_model_len 2048 --vllm.gpu_memory_utilization 0.3
  --workers 1 --verifier_options='{ifeval: {mode: loose}}' --on_bad_row error|skip
  --out_dir DIR           default runs/eval/<model>/<data>
"""


def main(argv: Sequence[str]) -> int:
    from rlvr.cli import config_command

    return config_command(
        argv,
        EvalConfig,
        run,
        "rlvr eval",
        "Sample n answers per prompt, verify them, report pass@1 / pass@k / maj@k per data set.",
        EPILOG,
    )
