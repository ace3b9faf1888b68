"""The shared loop through all three stages: exact resume, split-invariant batches, checkpoints."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.algos.common import PostTrainer, load_causal_lm, run_stage
from rlvr.algos.dpo import REFERENCE_FILE, DPOConfig, DPOTrainer
from rlvr.algos.reward_model import RewardModelConfig, RewardModelTrainer
from rlvr.algos.sft import SFTConfig, SFTTrainer
from rlvr.chat import render_chat
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import checkpoint_step, list_checkpoints, read_state_dict
from rlvr.train.engines import enable_activation_checkpointing

StageCfg = Callable[..., Any]
STAGES = {
    "sft": (SFTConfig, SFTTrainer, ("loss", "token_loss", "lr", "grad_norm")),
    "dpo": (DPOConfig, DPOTrainer, ("loss", "rewards/margin", "rewards/accuracy", "lr", "grad_norm")),
    "rm": (RewardModelConfig, RewardModelTrainer, ("loss", "accuracy", "margin", "lr", "grad_norm")),
}


def curve(cfg: Any) -> list[dict[str, Any]]:
    return [r for r in read_metrics(cfg.run_dir / "metrics.jsonl") if "loss" in r]


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_run_resumes_with_the_same_curve(
    stage: str, stage_cfg: StageCfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill after the step-3 checkpoint, at step 5; the restarted run must match an uninterrupted one."""
    config_cls, trainer_cls, keys = STAGES[stage]
    updates = {"train": {"max_steps": 7, "save_every": 3}}
    straight = stage_cfg(config_cls, {"name": "straight", **updates})
    expected_final = run_stage(trainer_cls, straight).checkpoint

    interrupted = stage_cfg(config_cls, {"name": "interrupted", **updates})
    real_step = PostTrainer.train_step

    def dies_at_step_5(self: PostTrainer[Any]) -> dict[str, float]:
        if self.step == 5:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(PostTrainer, "train_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_stage(trainer_cls, interrupted)
    assert [checkpoint_step(p) for p in list_checkpoints(interrupted.run_dir / "checkpoints")] == [3]
    monkeypatch.setattr(PostTrainer, "train_step", real_step)

    final = run_stage(trainer_cls, interrupted).checkpoint
    expected, resumed = curve(straight), curve(interrupted)
    assert [r["step"] for r in resumed] == list(range(1, 8))
    for key in keys:
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in expected], rel=1e-5, abs=1e-7), key
    assert final.name == expected_final.name
    reference = read_state_dict(expected_final)
    for key, tensor in read_state_dict(final).items():
        torch.testing.assert_close(tensor, reference[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stage", list(STAGES))
def test_one_micro_batch_equals_four(stage: str, stage_cfg: StageCfg) -> None:
    config_cls, trainer_cls, keys = STAGES[stage]
    runs = []
    for name, micro in (("one", 8), ("four", 2)):
        cfg = stage_cfg(config_cls, {"name": name, "train": {"max_steps": 2, "micro_batch_size": micro}})
        final = run_stage(trainer_cls, cfg).checkpoint
        runs.append((curve(cfg), read_state_dict(final)))
    (curve_a, weights_a), (curve_b, weights_b) = runs
    # Accuracies compare rewards that start at 0 up to rounding, which differs with the padding width.
    for key in (k for k in keys if "accuracy" not in k):
        assert [r[key] for r in curve_a] == pytest.approx([r[key] for r in curve_b], rel=1e-4, abs=1e-6), key
    for key, tensor in weights_a.items():  # Adam divides by √v: near-zero gradients amplify rounding
        torch.testing.assert_close(tensor, weights_b[key], rtol=1e-4, atol=5e-5)


def test_activation_checkpointing_gives_the_same_updates(stage_cfg: StageCfg) -> None:
    """Recomputing each layer in the backward pass changes memory, not the numbers."""
    runs = []
    for name, checkpointing in (("stored", False), ("recomputed", True)):
        train = {"max_steps": 2, "activation_checkpointing": checkpointing}
        cfg = stage_cfg(SFTConfig, {"name": name, "train": train})
        final = run_stage(SFTTrainer, cfg).checkpoint
        runs.append((curve(cfg), read_state_dict(final)))
    (curve_a, weights_a), (curve_b, weights_b) = runs
    assert [r["loss"] for r in curve_a] == pytest.approx([r["loss"] for r in curve_b], rel=1e-6)
    for key, tensor in weights_a.items():
        torch.testing.assert_close(tensor, weights_b[key], rtol=1e-6, atol=1e-7)
    model = load_causal_lm(cfg.init_from)
    enable_activation_checkpointing(model)
    assert model.model.gradient_checkpointing and model.is_gradient_checkpointing


def test_sft_checkpoint_is_a_chat_model_the_next_stage_loads(stage_cfg: StageCfg) -> None:
    cfg = stage_cfg(SFTConfig, {"train": {"max_steps": 2}})
    result = run_stage(SFTTrainer, cfg)
    model = AutoModelForCausalLM.from_pretrained(str(result.checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(str(result.checkpoint))
    messages = [{"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == render_chat(
        messages, add_generation_prompt=True
    )
    assert type(model).__name__ == "Olmo2ForCausalLM"
    assert (cfg.run_dir / "config.yaml").is_file() and (cfg.run_dir / "data_report.json").is_file()
    assert {"loss", "token_loss", "lr", "grad_norm", "tokens_per_s", "epoch"} <= curve(cfg)[-1].keys()
    # a finished run is not retrained
    assert run_stage(SFTTrainer, cfg).checkpoint == result.checkpoint
    assert len(curve(cfg)) == 2


def test_sft_reductions_differ_and_packing_fills_sequences(stage_cfg: StageCfg) -> None:
    losses = {}
    for reduction in ("sum", "mean"):
        cfg = stage_cfg(
            SFTConfig, {"name": reduction, "sft": {"reduction": reduction}, "train": {"max_steps": 1}}
        )
        run_stage(SFTTrainer, cfg)
        record = curve(cfg)[0]
        losses[reduction] = record
    # same batch, same token loss; the summed reduction is the mean times the label tokens per sequence
    assert losses["sum"]["token_loss"] == pytest.approx(losses["mean"]["token_loss"], rel=1e-6)
    assert losses["sum"]["loss"] == pytest.approx(
        losses["mean"]["loss"] * losses["mean"]["label_tokens"] / 8, rel=1e-6
    )
    packed = SFTTrainer(stage_cfg(SFTConfig, {"name": "packed", "sft": {"packing": True}}))
    plain = SFTTrainer(stage_cfg(SFTConfig, {"name": "plain"}))
    assert len(packed.examples) < 0.75 * len(plain.examples)
    assert sum(len(e) for e in packed.examples) == sum(len(e) for e in plain.examples)
    assert sum(e.num_labels for e in packed.examples) == sum(e.num_labels for e in plain.examples)
    assert max(len(e) for e in packed.examples) <= 192


def test_dpo_reference_is_computed_once_and_read_back(
    stage_cfg: StageCfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = stage_cfg(DPOConfig, {"train": {"max_steps": 2}})
    trainer = DPOTrainer(cfg)
    assert trainer.reference is not None and (cfg.run_dir / REFERENCE_FILE).is_file()
    assert torch.all(trainer.reference[:, 0] < 0) and torch.all(trainer.reference[:, 2] > 0)
    calls = []
    monkeypatch.setattr("rlvr.algos.dpo.pair_logps", lambda *a, **k: calls.append(1))
    again = DPOTrainer(cfg)
    assert not calls and torch.equal(again.reference, trainer.reference)
    # the first step starts at the reference: log-ratios 0, loss ln 2
    run_stage(DPOTrainer, cfg)
    first = curve(cfg)[0]
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3) and first["rewards/margin"] == pytest.approx(
        0, abs=1e-4
    )


def test_dpo_nll_weight_adds_the_chosen_nll_to_the_loss(stage_cfg: StageCfg) -> None:
    cfg = stage_cfg(DPOConfig, {"dpo": {"nll_weight": 0.5}, "train": {"max_steps": 1}})
    run_stage(DPOTrainer, cfg)
    first = curve(cfg)[0]
    # at the reference the DPO term is ln 2; the chosen answers of a random model cost ≈ ln 512 a token
    assert first["chosen_nll"] == pytest.approx(math.log(512), abs=0.3)
    assert first["loss"] == pytest.approx(math.log(2) + 0.5 * first["chosen_nll"], rel=1e-4)


def test_simpo_needs_no_reference(stage_cfg: StageCfg) -> None:
    cfg = stage_cfg(DPOConfig, {"dpo": {"loss_type": "simpo", "beta": 2.0}, "train": {"max_steps": 1}})
    run_stage(DPOTrainer, cfg)
    assert not (cfg.run_dir / REFERENCE_FILE).exists()
    first = curve(cfg)[0]
    # The random model gives every answer about the same mean log-prob, ≈ −ln 512 (rewards: β × that), so
    # the loss is what SimPO's target margin γ = β · 0.3 = 0.6 alone makes: ln(1 + e^0.6) ≈ 1.04 (ln 2 without).
    assert first["rewards/chosen"] == pytest.approx(-2.0 * math.log(512), abs=0.3)
    assert first["loss"] == pytest.approx(math.log1p(math.exp(0.6)), abs=0.02)


def test_reward_model_checkpoint_scores_like_the_verifier(stage_cfg: StageCfg, suite: Path) -> None:
    from rlvr.rewards.reward_model import RewardModelScorer

    cfg = stage_cfg(
        RewardModelConfig,
        {"train": {"max_steps": 3}, "eval": {"prefs_test": str(suite / "prefs_test.jsonl")}},
    )
    trainer = RewardModelTrainer(cfg)
    result = trainer.fit()
    assert {"pairwise_accuracy", "margin", "pairs"} <= result.evaluation.keys()
    scorer = RewardModelScorer(result.checkpoint)
    assert type(scorer.model).__name__ == "Olmo2ForSequenceClassification"
    pairs = trainer.examples[:3]
    module = trainer.engine.module.eval()
    with torch.no_grad():
        chosen, _ = trainer._rewards(pairs, lambda ids: module(input_ids=ids).logits)
    from rlvr.data import load_rows

    rows = load_rows(cfg.data.train[0], "prefs")[:3]
    prompts = [row["chosen"][0]["content"] for row in rows]
    answers = [row["chosen"][1]["content"] for row in rows]
    assert scorer.rewards(prompts, answers) == pytest.approx(chosen.tolist(), rel=1e-4, abs=1e-5)


def test_lora_trains_adapters_and_saves_a_merged_model(
    stage_cfg: StageCfg, base_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    updates = {
        "lora": {"enabled": True, "r": 4, "alpha": 8},
        "optim": {"lr": 1e-2},
        "train": {"max_steps": 4},
    }
    cfg = stage_cfg(SFTConfig, updates)
    trainer = SFTTrainer(cfg)
    final = trainer.fit().checkpoint
    assert (final / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(final)).eval()
    ids = torch.tensor([trainer.examples[0].input_ids])
    with torch.no_grad():
        expected = trainer.engine.module.eval()(input_ids=ids).logits
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
    base, tuned = read_state_dict(base_checkpoint), read_state_dict(final)
    assert not torch.equal(
        base["model.layers.0.self_attn.q_proj.weight"], tuned["model.layers.0.self_attn.q_proj.weight"]
    )
    torch.testing.assert_close(
        base["model.embed_tokens.weight"], tuned["model.embed_tokens.weight"]
    )  # not adapted

    # resuming puts the adapter back: a run killed after step 2 ends where the straight one did
    resumed_cfg = stage_cfg(
        SFTConfig, {"name": "lora-resumed", **updates, "train": {"max_steps": 4, "save_every": 2}}
    )
    real_step = PostTrainer.train_step

    def dies_at_step_3(self: PostTrainer[Any]) -> dict[str, float]:
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(PostTrainer, "train_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run_stage(SFTTrainer, resumed_cfg)
    monkeypatch.setattr(PostTrainer, "train_step", real_step)
    resumed = read_state_dict(run_stage(SFTTrainer, resumed_cfg).checkpoint)
    for key, tensor in tuned.items():
        torch.testing.assert_close(resumed[key], tensor, rtol=1e-5, atol=1e-6)


def test_configuration_errors_are_clear(stage_cfg: StageCfg) -> None:
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size"):
        SFTTrainer(stage_cfg(SFTConfig, {"train": {"batch_size": 6, "micro_batch_size": 4}}))
    with pytest.raises(ValueError, match="init_from is empty"):
        SFTTrainer(stage_cfg(SFTConfig, {"init_from": ""}))
    with pytest.raises(ValueError, match=r"data\.train is empty"):
        DPOTrainer(stage_cfg(DPOConfig, {"data": {"train": []}}))
    with pytest.raises(ValueError, match="no sft examples left"):
        SFTTrainer(stage_cfg(SFTConfig, {"data": {"max_length": 8}}))


def test_rows_left_out_are_counted_in_the_run_directory(
    stage_cfg: StageCfg, suite: Path, tmp_path: Path
) -> None:
    import json

    rows = (suite / "prefs_train.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    identical = json.dumps({"chosen": first["chosen"], "rejected": first["chosen"]})
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join([*rows[:10], identical, '{"chosen": []}']) + "\n")
    cfg = stage_cfg(
        RewardModelConfig, {"data": {"train": [str(path)], "on_bad_row": "skip"}, "train": {"max_steps": 1}}
    )
    trainer = RewardModelTrainer(cfg)
    assert len(trainer.examples) == 10
    report = json.loads((cfg.run_dir / "data_report.json").read_text())
    assert report["kept"] == 10 and "2 skipped" in report["invalid"][0] and "line 11" in report["invalid"][0]
