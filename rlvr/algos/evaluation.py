"""Held-out figures of a policy: verifiable accuracy and preference accuracy.

- verifiable accuracy: greedy responses for the `rlvr_test` prompts from a rollout `Engine` (the
  transformers engine on the model in training, as `rlvr eval` and PPO sample through the same
  protocol), scored by the verifiers (`rlvr.rewards.score_batch`); the mean score overall and per
  verifier.
- preference accuracy: the share of `prefs_test` pairs where the policy gives the chosen answer a
  higher length-normalised log-probability (mean per-token log-prob of the final assistant turn)
  than the rejected one — reference-free, so base, SFT and DPO models are compared on one scale.

The same functions score the base model in the pipeline, so base → SFT → DPO read off one measure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rlvr.algos.common import EvalConfig, ExampleT, PostTrainer
from rlvr.algos.encoding import EncodedPair, encode_pairs, pad_right
from rlvr.data import load_rows
from rlvr.generation import chat_prompt
from rlvr.logprobs import sequence_logps
from rlvr.rollout import Engine, HFEngine
from rlvr.train.precision import autocast as autocast_context

Forward = Callable[[torch.Tensor], torch.Tensor]


def pair_batch(pairs: Sequence[EncodedPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One right-padded batch: the chosen sides, then the rejected sides (one forward for both)."""
    return pad_right([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)


@torch.no_grad()
def pair_logps(
    forward: Forward,
    pairs: Sequence[EncodedPair],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast: torch.dtype | None,
) -> torch.Tensor:
    """`(len(pairs), 4)` float64: chosen sum, rejected sum, chosen tokens, rejected tokens."""
    rows = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        ids, labels = pair_batch(chunk, pad_id)
        context = autocast_context(autocast, device)
        with context:
            logits = forward(ids.to(device))
        sums, counts = sequence_logps(logits, labels.to(device))
        n = len(chunk)
        rows.append(torch.stack([sums[:n], sums[n:], counts[:n], counts[n:]], dim=1).double().cpu())
    return torch.cat(rows)


def preference_accuracy(logps: torch.Tensor) -> dict[str, float]:
    """From `pair_logps` rows: share with a higher mean per-token log-prob for chosen, and the mean gap."""
    chosen = logps[:, 0] / logps[:, 2].clamp(min=1)
    rejected = logps[:, 1] / logps[:, 3].clamp(min=1)
    return {
        "preference_accuracy": float((chosen > rejected).double().mean()),
        "preference_margin": float((chosen - rejected).mean()),
    }


def verifier_key(row: dict[str, Any]) -> str:
    """The name a row's score is reported under: its verifier, or several joined by '+' (lower case,
    as verifier names are matched)."""
    names = row["dataset"] if isinstance(row["dataset"], list) else [row["dataset"]]
    return "+".join(str(name).lower() for name in names)


def mean_by_verifier(rows: Sequence[dict[str, Any]], values: Sequence[float]) -> dict[str, float]:
    """The mean of `values` over the rows of each verifier (`verifier_key`), sorted by name."""
    groups: dict[str, list[float]] = {}
    for row, value in zip(rows, values, strict=True):
        groups.setdefault(verifier_key(row), []).append(value)
    return {name: sum(group) / len(group) for name, group in sorted(groups.items())}


def verifiable_accuracy(
    engine: Engine,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    max_new_tokens: int,
    workers: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Greedy responses from `engine` for `rows`, scored by their verifiers: `(figures, one record per row)`."""
    from rlvr.rewards import score_batch

    prompts = [tokenizer(chat_prompt(row["messages"]), add_special_tokens=False)["input_ids"] for row in rows]
    completions = [group[0] for group in engine.sample(prompts, 1, max_new_tokens, temperature=0.0, seed=0)]
    texts = [tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in completions]
    results = score_batch(
        [{**row, "prediction": text} for row, text in zip(rows, texts, strict=True)], workers=workers
    )
    records = []
    for row, completion, text, result in zip(rows, completions, texts, results, strict=True):
        records.append(
            {
                "prompt": row["messages"][-1]["content"],
                "response": text,
                "finished": completion.finished,
                "dataset": verifier_key(row),
                "score": result.score,
                "timed_out": result.timed_out,
            }
        )
    scores = [r["score"] for r in records]
    figures = {
        "accuracy": sum(scores) / len(scores),
        "accuracy_by_verifier": mean_by_verifier(rows, scores),
        "finished": sum(c.finished for c in completions) / len(completions),
        "timed_out": sum(r.timed_out for r in results),
        "prompts": len(rows),
    }
    return figures, records


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    cfg: EvalConfig,
    max_length: int,
    autocast: torch.dtype | None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Both held-out figures for a causal LM (whichever test files `cfg` names); generations go to
    `out_dir/eval_generations.jsonl` for reading."""
    figures: dict[str, Any] = {}
    device = next(model.parameters()).device
    if cfg.rlvr_test:
        rows = load_rows(cfg.rlvr_test, "rlvr", limit=cfg.max_prompts)
        engine = HFEngine(model, tokenizer, autocast, batch_size=cfg.batch_size)
        verifiable, records = verifiable_accuracy(engine, tokenizer, rows, cfg.max_new_tokens, cfg.workers)
        figures.update(verifiable)
        if out_dir is not None:
            with (out_dir / "eval_generations.jsonl").open("w") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
    if cfg.prefs_test:
        pairs, report = encode_pairs(
            tokenizer,
            load_rows(cfg.prefs_test, "prefs", limit=cfg.max_prompts),
            max_length,
            "truncate",
            cfg.prefs_test,
        )
        was_training = model.training
        model.eval()

        def forward(ids: torch.Tensor) -> torch.Tensor:
            return model(input_ids=ids, use_cache=False).logits

        logps = pair_logps(forward, pairs, tokenizer.pad_token_id, cfg.batch_size, device, autocast)
        model.train(was_training)
        figures.update(preference_accuracy(logps))
        figures["preference_pairs"] = len(pairs)
        figures["preference_pairs_skipped"] = len(report.skipped)
    return figures


class PolicyTrainer(PostTrainer[ExampleT]):
    """A stage that trains the policy itself (SFT, DPO): its held-out figures are `evaluate_policy`'s."""

    def evaluate(self, model: torch.nn.Module) -> dict[str, Any]:
        return evaluate_policy(
            model,
            self.tokenizer,
            self.cfg.eval,
            self.cfg.data.max_length,
            self.core.autocast_dtype,
            out_dir=self.cfg.run_dir,
        )
