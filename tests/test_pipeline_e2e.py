"""`rlvr pipeline` end to end on a shrunken tiny config: synthetic data → tokenizer → tokens →
pretrain → anneal ×2 → soup → SFT → prefs → DPO → RM → PPO → eval, then the report; a re-run skips every
stage. Minutes of work, so `slow` (`make test-all`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.config import load_config
from rlvr.pipeline import POLICY_STAGES, PipelineConfig, main, run_pipeline

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pipeline" / "tiny.yaml"
SIZES = "{rlvr_train: 40, rlvr_test: 8, sft_train: 120, prefs_train: 40, prefs_test: 8}"
PRETRAIN = ["--train.max_steps=20", "--train.eval_every=10", "--train.save_every=20", "--train.sample_prompts=[]",
            "--schedule.warmup_steps=5", "--log.progress=false"]  # fmt: skip
POST = ["--train.max_steps=3", "--eval.max_new_tokens=16", "--log.progress=false"]
PPO = ["--rollout.prompts_per_step=4", "--rollout.max_response_tokens=16", "--train.total_episodes=8",
       "--log.progress=false"]  # fmt: skip


@pytest.mark.slow
def test_shrunken_pipeline_runs_every_stage_and_reports(tmp_path: Path) -> None:
    cfg = load_config(
        PipelineConfig,
        CONFIG,
        [
            f"--runs_root={tmp_path}",
            "--log.wandb=false",
            "--synth.pretrain.docs=1500",
            *(f"--synth.{task}={SIZES}" for task in ("gsm8k", "math", "ifeval")),
            f"--pretrain.overrides={json.dumps(PRETRAIN)}",
            f"--anneal.overrides={json.dumps(['--train.max_steps=5', *PRETRAIN[1:]])}",
            *(f"--{stage}.overrides={json.dumps(POST)}" for stage in ("sft", "dpo", "rm")),
            f"--ppo.overrides={json.dumps(PPO)}",
            f"--prefs.overrides={json.dumps(['--max_tokens=16', '--models=[{model: sft, n: 2}]'])}",
            # a 25-step model answers no prompt right: DPO trains on the synthetic pairs
            "--dpo_data.on_policy=false",
            "--evaluation.n=2",
            "--evaluation.max_tokens=16",
        ],
    )
    done = run_pipeline(cfg)
    run_dir = cfg.run_dir
    assert list(done) == cfg.stages
    evaluated = done["eval"]["checkpoints"]
    assert set(evaluated) == set(POLICY_STAGES)
    for name, files in evaluated.items():
        figures = files["rlvr_test"]
        # n = 2 samples of each of 24 prompts: pass@1 counts the right samples of 48, pass@2 the prompts
        # with at least one
        p1, p2 = figures["pass@1"], figures["pass@2"]
        assert figures["prompts"] == 24 and p1 <= p2 <= min(2 * p1, 1.0), name
        assert round(48 * p1, 9).is_integer() and round(24 * p2, 9).is_integer(), name
        assert (run_dir / figures["dir"] / "generations.jsonl").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["stages"]) == {"base", "sft", "prefs", "dpo", "rm", "ppo"}
    prefs = summary["stages"]["prefs"]
    assert prefs["prompts"] == 120 and prefs["pairs"] + sum(prefs["prompts_without_pair"].values()) == 120
    assert summary["stages"]["ppo"]["steps"] == 2 and summary["stages"]["ppo"]["episodes"] == 8
    for stage in ("base", "sft", "dpo", "ppo"):
        entry = summary["stages"][stage]
        assert entry["accuracy"] == done["soup" if stage == "base" else stage]["accuracy"], stage
        # 8 test prompts per verifier: the overall accuracy is the mean of the three
        assert entry["accuracy"] == pytest.approx(sum(entry["accuracy_by_verifier"].values()) / 3), stage
    report = (run_dir / "report.md").read_text()
    assert "Sampled evaluation" in report and (run_dir / "plots" / "accuracy.png").is_file()

    # a re-run skips every finished stage and leaves the record as it was
    assert main(["--config", str(CONFIG), f"--runs_root={tmp_path}", "--log.wandb=false"]) == 0
    assert json.loads((run_dir / "pipeline.json").read_text())["done"] == done
