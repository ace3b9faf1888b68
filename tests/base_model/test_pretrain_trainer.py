from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from base_model.config import PretrainConfig
from base_model.trainer import Trainer, pretrain
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import checkpoint_step, list_checkpoints, read_state_dict

MakeCfg = Callable[..., PretrainConfig]


def losses(cfg: PretrainConfig) -> list[float]:
    return [r["loss"] for r in read_metrics(cfg.run_dir / "metrics.jsonl")]


def test_accumulation_1x8_equals_8x1(make_cfg: MakeCfg) -> None:
    runs = []
    for name, micro in (("one-pass", 8), ("eight-micro", 1)):
        cfg = make_cfg(
            {"name": name, "train": {"max_steps": 3, "global_batch_size": 8, "micro_batch_size": micro}}
        )
        final = pretrain(cfg)
        runs.append((losses(cfg), read_state_dict(final)))
    (loss_a, weights_a), (loss_b, weights_b) = runs
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for key, tensor in weights_a.items():
        torch.testing.assert_close(tensor, weights_b[key], rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_with_the_same_curve(make_cfg: MakeCfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill at step 5 (after the step-3 checkpoint), restart: steps 4..8 must match an uninterrupted run."""
    updates = {"train": {"max_steps": 8, "save_every": 3, "eval_every": 4}}
    straight = make_cfg({"name": "straight", **updates})
    pretrain(straight)

    interrupted = make_cfg({"name": "interrupted", **updates})
    real_step = Trainer.train_step

    def dies_at_step_5(self: Trainer) -> dict[str, float]:
        if self.step == 5:
            raise KeyboardInterrupt  # the process is killed mid-run
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        pretrain(interrupted)
    assert [checkpoint_step(p) for p in list_checkpoints(interrupted.run_dir / "checkpoints")] == [3]
    assert len(losses(interrupted)) == 5  # steps 4 and 5 ran and were logged before the kill
    monkeypatch.setattr(Trainer, "train_step", real_step)

    final = pretrain(interrupted)
    expected = read_metrics(straight.run_dir / "metrics.jsonl")
    resumed = read_metrics(interrupted.run_dir / "metrics.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, 9))  # the killed run's steps 4-5 were replaced
    for key in ("loss", "z_loss", "lr", "grad_norm"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in expected], rel=1e-6), key
    evals = {r["step"]: r["eval_loss"] for r in expected if "eval_loss" in r}
    assert evals.keys() == {4, 8}
    assert {r["step"]: r["eval_loss"] for r in resumed if "eval_loss" in r} == pytest.approx(evals, rel=1e-6)
    weights = read_state_dict(final)
    for key, tensor in read_state_dict(straight.run_dir / "checkpoints" / final.name).items():
        torch.testing.assert_close(weights[key], tensor, rtol=1e-6, atol=1e-7)


def test_finished_run_is_not_retrained(make_cfg: MakeCfg) -> None:
    cfg = make_cfg({"train": {"max_steps": 2, "save_every": 2}})
    first = pretrain(cfg)
    assert pretrain(cfg) == first
    assert len(losses(cfg)) == 2


def test_z_loss_weight_changes_the_update(make_cfg: MakeCfg) -> None:
    finals = []
    for name, weight in (("no-z", 0.0), ("big-z", 0.05)):
        cfg = make_cfg({"name": name, "optim": {"z_loss": weight}, "train": {"max_steps": 1}})
        finals.append(read_state_dict(pretrain(cfg)))
        if weight:
            record = read_metrics(cfg.run_dir / "metrics.jsonl")[0]
            assert record["z_loss"] > 0
    assert not torch.allclose(finals[0]["model.embed_tokens.weight"], finals[1]["model.embed_tokens.weight"])


def test_checkpoints_are_hugging_face_models(make_cfg: MakeCfg) -> None:
    cfg = make_cfg({"train": {"max_steps": 3, "save_every": 3}})
    final = pretrain(cfg)
    assert final.name == "step3-tokens0B"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(final))
    tok = AutoTokenizer.from_pretrained(str(final))
    assert type(model).__name__ == "Olmo2ForCausalLM"
    assert model.config.rope_parameters["rope_theta"] == 500_000.0 and model.config.rms_norm_eps == 1e-6
    assert model.config.eos_token_id == tok.eos_token_id
    ids = tok("Tom has 3", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape == (1, ids.shape[1] + 4)
    record = read_metrics(cfg.run_dir / "metrics.jsonl")[-1]
    assert {"loss", "eval_loss", "tokens_per_s", "mfu", "lr", "grad_norm"} <= record.keys()
    assert record["tokens"] == 3 * 8 * 64


def test_bf16_autocast_trains(make_cfg: MakeCfg) -> None:
    cfg = make_cfg({"train": {"max_steps": 8, "precision": "auto", "save_every": 8}, "optim": {"lr": 1e-2}})
    trainer = Trainer(cfg)
    if trainer.core.autocast_dtype is None:
        pytest.skip("no native bf16 on this machine")
    trainer.fit()
    curve = losses(cfg)
    assert curve[-1] < curve[0] - 1.0


def test_stage2_continues_from_stage1_on_another_mix(make_cfg: MakeCfg, token_dir: Path) -> None:
    stage1 = make_cfg({"name": "stage1", "train": {"max_steps": 6, "save_every": 6}})
    stage1_final = pretrain(stage1)
    train = [
        {"name": "corpus", "paths": [str(token_dir / "corpus.tokens.bin")], "weight": 1.0},
        {"name": "held-out", "paths": [str(token_dir / "val" / "corpus.tokens.bin")], "weight": 1.0},
    ]
    stage2 = make_cfg(
        {
            "name": "stage2-ingredient2",
            "seed": 2,
            "stage": 2,
            "ingredient": 2,
            "init_from": str(stage1_final),
            "optim": {"lr": 1e-3},
            "schedule": {"kind": "linear", "warmup_steps": 0, "final_lr_ratio": 0.0},
            "data": {"train": train},
            "train": {"max_steps": 4, "save_every": 2},
        }
    )
    final = pretrain(stage2)
    names = [p.name for p in list_checkpoints(stage2.run_dir / "checkpoints")]
    assert names == ["stage2-ingredient2-step2-tokens0B", "stage2-ingredient2-step4-tokens0B"]
    assert final.name == names[-1]
    records = read_metrics(stage2.run_dir / "metrics.jsonl")
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert (
        records[0]["loss"] < losses(stage1)[0] - 1.0
    )  # it starts from the trained weights, not from scratch


def test_configuration_errors_are_clear(make_cfg: MakeCfg) -> None:
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size"):
        Trainer(make_cfg({"train": {"global_batch_size": 6, "micro_batch_size": 4}}))
    with pytest.raises(ValueError, match=r"raise model\.vocab_size"):
        Trainer(make_cfg({"model": {"vocab_size": 64}}))
    with pytest.raises(ValueError, match="set init_from"):
        Trainer(make_cfg({"stage": 2}))
    with pytest.raises(ValueError, match=r"data\.train is empty"):
        Trainer(make_cfg({"data": {"train": []}}))
