"""The sft → dpo → rm → ppo → eval stages of `rlvr pipeline`, on the tiny fixture model with the shipped
tiny presets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rlvr.config import from_dict
from rlvr.data import DataError
from rlvr.pipeline import Context, PipelineConfig, _evaluate_checkpoint, run_pipeline

SMALL = [
    "--train.max_steps=2",
    "--train.batch_size=8",
    "--train.micro_batch_size=4",
    "--train.precision=fp32",
    "--data.max_length=192",
    "--eval.max_new_tokens=8",
    "--log.progress=false",
]


PPO_SMALL = [
    "--rollout.backend=hf",
    "--rollout.prompts_per_step=4",
    "--rollout.max_response_tokens=8",
    "--data.max_prompt_tokens=96",
    "--train.total_episodes=8",
    "--train.precision=fp32",
    "--log.progress=false",
]


# the SFT model's greedy answer beside its samples: every entry naming the config's SFT path is the run's
PREFS_SMALL = [
    "--backend=hf",
    "--max_tokens=8",
    "--models=[{model: runs/tiny/sft, n: 2}, {model: runs/tiny/sft, n: 1, temperature: 0, name: greedy}]",
]


def pipeline_cfg(tmp_path: Path) -> PipelineConfig:
    stage = {"overrides": SMALL}
    return from_dict(
        PipelineConfig,
        {
            "name": "p",
            "runs_root": str(tmp_path),
            "log": {"wandb": False},
            "sft": {"config": "configs/sft/tiny.yaml", **stage},
            "dpo": {"config": "configs/dpo/tiny.yaml", **stage},
            "rm": {"config": "configs/rm/tiny.yaml", **stage},
            "ppo": {"config": "configs/ppo/tiny.yaml", "overrides": PPO_SMALL},
            "prefs": {"config": "configs/prefs/tiny.yaml", "overrides": PREFS_SMALL},
            # a random model's answers give no on-policy pair: DPO trains on the synthetic pairs here
            "dpo_data": {"on_policy": False},
            "evaluation": {"backend": "hf", "n": 2, "max_tokens": 8},
            "stages": ["soup", "sft", "prefs", "dpo", "rm", "ppo", "eval"],
        },
    )


def test_post_training_stages_record_checkpoints_and_figures(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    cfg = pipeline_cfg(tmp_path)
    run_dir = cfg.run_dir
    shutil.copytree(suite, run_dir / "data")
    shutil.copy(
        suite / "rlvr_test.jsonl", run_dir / "data" / "rlvr_train.jsonl"
    )  # the fixture has no RL train rows
    shutil.copytree(base_checkpoint, run_dir / "base")
    (run_dir / "pipeline.json").write_text(json.dumps({"done": {"soup": {"checkpoint": "base"}}}))

    done = run_pipeline(cfg)
    prefs = done["prefs"]  # every training prompt answered three times by the SFT model, each counted
    assert prefs["prompts"] == 24 and prefs["dir"] == "prefs"
    assert prefs["pairs"] + sum(prefs["prompts_without_pair"].values()) == 24
    for name in ("sft", "greedy"):
        samples = (run_dir / "prefs" / "samples" / f"{name}.jsonl").read_text().splitlines()
        assert len(samples) == 24
    sources = yaml.safe_load((run_dir / "prefs" / "config.yaml").read_text())["models"]
    assert [m["model"] for m in sources] == [str(run_dir / done["sft"]["checkpoint"])] * 2
    for stage in ("sft", "dpo"):
        record = done[stage]
        assert record["checkpoint"].startswith(f"{stage}/checkpoints/step2-")
        assert (run_dir / record["checkpoint"] / "model.safetensors").is_file()
        assert {"accuracy", "accuracy_by_verifier", "preference_accuracy", "seconds"} <= record.keys()
        assert set(record["accuracy_by_verifier"]) == {"gsm8k", "math", "ifeval"}
    assert {"pairwise_accuracy", "margin", "seconds"} <= done["rm"].keys()
    ppo = done["ppo"]
    assert ppo["checkpoint"].startswith("ppo/checkpoints/step2-") and ppo["checkpoint"].endswith("/policy")
    assert ppo["steps"] == 2 and ppo["episodes"] == 8
    assert {"accuracy", "accuracy_by_verifier", "preference_accuracy"} <= ppo.keys()
    ppo_cfg = yaml.safe_load((run_dir / "ppo" / "config.yaml").read_text())
    assert ppo_cfg["policy"] == str(run_dir / done["dpo"]["checkpoint"])
    assert ppo_cfg["reward_model"] == str(run_dir / done["rm"]["checkpoint"])
    assert json.loads((run_dir / "pipeline.json").read_text())["done"] == done
    # rlvr eval of every policy checkpoint on the synthetic test prompts
    evaluated = done["eval"]["checkpoints"]
    assert set(evaluated) == {"base", "sft", "dpo", "ppo"}
    for figures in (files["rlvr_test"] for files in evaluated.values()):
        # n = 2 samples of each of 24 prompts: pass@1 counts the right samples of 48, pass@2 the prompts
        # with at least one
        p1, p2 = figures["pass@1"], figures["pass@2"]
        assert figures["prompts"] == 24 and p1 <= p2 <= min(2 * p1, 1.0)
        assert round(48 * p1, 9).is_integer() and round(24 * p2, 9).is_integer()
        assert (run_dir / figures["dir"] / "metrics.json").is_file()
    # DPO and the reward model both start from the SFT checkpoint
    for stage in ("dpo", "rm"):
        stage_cfg = yaml.safe_load((run_dir / stage / "config.yaml").read_text())
        assert stage_cfg["init_from"] == str(run_dir / done["sft"]["checkpoint"])
        assert stage_cfg["data"]["train"] == [str(run_dir / "data" / "prefs_train.jsonl")]


def test_base_model_is_measured_like_the_sft_model(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    cfg = pipeline_cfg(tmp_path)
    shutil.copytree(suite, cfg.run_dir / "data")
    figures = _evaluate_checkpoint(Context(cfg, cfg.run_dir, {}), base_checkpoint)
    assert figures["prompts"] == 24 and set(figures["accuracy_by_verifier"]) == {"gsm8k", "math", "ifeval"}
    # 8 prompts per verifier: the overall accuracy is the mean of the three
    assert figures["accuracy"] == pytest.approx(sum(figures["accuracy_by_verifier"].values()) / 3)
    assert figures["preference_pairs"] == 24 and round(24 * figures["preference_accuracy"], 9).is_integer()


def test_dpo_trains_on_the_on_policy_pairs_mixed_with_synthetic_ones(tmp_path: Path, suite: Path) -> None:
    from rlvr.data import read_jsonl, write_jsonl
    from rlvr.pipeline import _dpo_pairs

    cfg = from_dict(PipelineConfig, {"runs_root": str(tmp_path), "dpo_data": {"synthetic_ratio": 0.5}})
    ctx = Context(cfg, cfg.run_dir, {"prefs": {"prompts_without_pair": {"all_equal_scores": 3}}})
    shutil.copytree(suite, cfg.run_dir / "data")
    synthetic = [row for _, row in read_jsonl(suite / "prefs_train.jsonl")]
    on_policy = [{**row, "chosen_model": "sft"} for row in synthetic[-10:]]
    write_jsonl(on_policy, cfg.run_dir / "prefs" / "prefs.jsonl")
    mixed = [row for _, row in read_jsonl(_dpo_pairs(ctx))]
    assert len(mixed) == 15 and sum("chosen_model" in row for row in mixed) == 10
    assert [row for row in mixed if "chosen_model" not in row] != synthetic[:5]  # shuffled together ...
    assert sorted(map(json.dumps, mixed)) == sorted(
        map(json.dumps, on_policy + synthetic[:5])
    )  # ... all kept
    write_jsonl([], cfg.run_dir / "prefs" / "prefs.jsonl")
    with pytest.raises(DataError, match=r"the prefs stage made no pair .*all_equal_scores"):
        _dpo_pairs(ctx)


@pytest.mark.parametrize(("pairs", "on_policy"), [(3, True), (0, True), (3, False)])
def test_the_reward_model_adds_the_on_policy_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: int, on_policy: bool
) -> None:
    from rlvr import pipeline

    cfg = from_dict(PipelineConfig, {"runs_root": str(tmp_path), "rm_data": {"on_policy": on_policy}})
    ctx = Context(cfg, cfg.run_dir, {"sft": {"checkpoint": "sft"}, "prefs": {"pairs": pairs}})
    seen = {}
    monkeypatch.setattr(
        pipeline, "_post_train", lambda ctx, stage, init, train, evals: seen.update(train=train)
    )
    pipeline.run_rm(ctx)
    on_policy_file = [ctx.path("prefs", "prefs.jsonl")] if pairs and on_policy else []
    assert seen["train"] == [ctx.path("data", "prefs_train.jsonl"), *on_policy_file]
