"""rlvr.report on a pipeline run directory written here (pipeline.json, metrics files, a checkpoint),
on the real runs/tiny when it exists, and the real-scale pipeline presets (loaded, never run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from rlvr.config import ConfigError, load_config
from rlvr.pipeline import Context, PipelineConfig, _point_stage, _synthetic, run_pipeline
from rlvr.pipeline import main as pipeline_main
from rlvr.report import count_parameters, summarize, write_report

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _policy(
    checkpoint: str, accuracy: float, gsm8k: float, math: float, preference: float, seconds: float
) -> dict[str, Any]:
    return {
        "checkpoint": checkpoint,
        "steps": 3,
        "accuracy": accuracy,
        "accuracy_by_verifier": {"gsm8k": gsm8k, "math": math},
        "finished": 1.0,
        "prompts": 8,
        "preference_accuracy": preference,
        "preference_margin": 0.1,
        "seconds": seconds,
    }


DONE: dict[str, Any] = {
    "data": {"dir": "data", "rows": {"pretrain.jsonl": 10}, "seconds": 1.0},
    "tokenizer": {"dir": "tokenizer", "vocab": 512, "seconds": 2.0},
    "tokens": {"dir": "tokens", "tokens": {"pretrain.tokens.bin": 1000}, "seconds": 3.0},
    "pretrain": {
        "checkpoint": "pretrain/checkpoints/step4-tokens0B",
        "steps": 4,
        "tokens": 400,
        "heldout_loss": 2.0,
        "seconds": 10.0,
    },
    "anneal": {
        "ingredients": [
            {
                "checkpoint": f"anneal-{i}/checkpoints/stage2-ingredient{i}-step2-tokens0B",
                "steps": 2,
                "tokens": 100,
                "heldout_loss": 1.8,
                "seconds": 3.0,
            }
            for i in (1, 2)
        ],
        "seconds": 6.0,
    },
    "soup": {**_policy("base", 0.25, 0.5, 0.0, 0.6, 4.0), "heldout_loss": 1.5},
    "sft": _policy("sft/checkpoints/step3-tokens0B", 0.5, 0.75, 0.25, 0.7, 20.0),
    "prefs": {
        "dir": "prefs",
        "pairs": 5,
        "prompts": 8,
        "prompts_without_pair": {"all_equal_scores": 3},
        "seconds": 5.0,
    },
    "dpo": _policy("dpo/checkpoints/step3-tokens0B", 0.45, 0.7, 0.2, 0.8, 30.0),
    "rm": {
        "checkpoint": "rm/checkpoints/step3-tokens0B",
        "steps": 3,
        "pairwise_accuracy": 0.9,
        "margin": 1.0,
        "pairs": 8,
        "seconds": 15.0,
    },
    "ppo": {**_policy("ppo/checkpoints/step4/policy", 0.6, 0.8, 0.4, 0.8, 40.0), "steps": 4, "episodes": 16},
}

EXPECTED = {
    "total_seconds": 136.0,
    "stages": {
        "base": {
            "checkpoint": "base",
            "params": 17,
            "tokens": 600,
            "seconds": 26.0,
            "heldout_loss": 1.5,
            "accuracy": 0.25,
            "accuracy_by_verifier": {"gsm8k": 0.5, "math": 0.0},
        },
        "sft": {
            "checkpoint": "sft/checkpoints/step3-tokens0B",
            "seconds": 20.0,
            "accuracy": 0.5,
            "accuracy_by_verifier": {"gsm8k": 0.75, "math": 0.25},
            "preference_accuracy": 0.7,
        },
        "prefs": {
            "dir": "prefs",
            "seconds": 5.0,
            "pairs": 5,
            "prompts": 8,
            "prompts_without_pair": {"all_equal_scores": 3},
        },
        "dpo": {
            "checkpoint": "dpo/checkpoints/step3-tokens0B",
            "seconds": 30.0,
            "accuracy": 0.45,
            "accuracy_by_verifier": {"gsm8k": 0.7, "math": 0.2},
            "preference_accuracy": 0.8,
        },
        "rm": {"checkpoint": "rm/checkpoints/step3-tokens0B", "seconds": 15.0, "pairwise_accuracy": 0.9},
        "ppo": {
            "checkpoint": "ppo/checkpoints/step4/policy",
            "seconds": 40.0,
            "accuracy": 0.6,
            "accuracy_by_verifier": {"gsm8k": 0.8, "math": 0.4},
            "preference_accuracy": 0.8,
            "steps": 4,
            "episodes": 16,
        },
    },
}


def _write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(root: Path, done: dict[str, Any] = DONE) -> Path:
    """A run directory as `rlvr pipeline` leaves it, with the figures above and a 17-parameter base."""
    run = root / "run"
    run.mkdir(parents=True)
    (run / "pipeline.json").write_text(json.dumps({"done": done}))
    (run / "base").mkdir()
    save_file({"a": np.zeros((3, 4), np.float32)}, str(run / "base" / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros(5, np.float32)}, str(run / "base" / "model-00002-of-00002.safetensors"))
    pretrain = [{"step": s, "loss": 7.0 / s, "tokens": 100 * s} for s in range(1, 5)]
    for record, step in ((pretrain[1], 2), (pretrain[3], 4)):
        record["eval_loss"] = 8.0 / step
    _write_metrics(run / "pretrain", pretrain)
    for i in (1, 2):
        _write_metrics(run / f"anneal-{i}", [{"step": s, "loss": 1.5, "eval_loss": 1.8} for s in (1, 2)])
    for stage in ("sft", "dpo", "rm"):
        steps = [{"step": s, "loss": 0.7 - 0.1 * s} for s in (1, 2, 3)]
        _write_metrics(run / stage, [*steps, {"step": 3, "eval/accuracy": 0.5}])  # the closing eval record
    ppo = [
        {
            "step": s,
            "reward": s,
            "total_reward": s - 0.1,
            "correct_rate": 0.1 * s,
            "kl": 0.01 * s,
            "episodes": 4 * s,
        }
        for s in range(1, 5)
    ]
    _write_metrics(run / "ppo", [{"step": 0, "eval/accuracy": 0.4}, *ppo, {"step": 4, "eval/accuracy": 0.6}])
    return run


def test_summary_has_the_agreed_shape_and_the_run_s_figures(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert count_parameters(run / "base") == 17
    assert summarize(run) == EXPECTED


def test_report_writes_summary_plots_and_a_markdown_report(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    report = write_report(run)
    assert report == run / "report.md"
    assert json.loads((run / "summary.json").read_text()) == EXPECTED
    for name in ("loss", "ppo", "accuracy"):
        assert (run / "plots" / f"{name}.png").read_bytes().startswith(PNG)
    text = report.read_text()
    for image in ("plots/loss.png", "plots/ppo.png", "plots/accuracy.png"):
        assert f"]({image})" in text
    assert "136.0 s" in text  # total time
    assert (
        "DPO pairs (prefs stage, `prefs/`): 5 pairs from 8 prompts in 5.0 s; prompts without a pair: "
        "all_equal_scores 3." in text
    )
    assert "| prefs |" not in text  # pairs, not a model: no row in the stage table
    assert "| base | `base` | 26.0 | 25.0 % | 50.0 % | 0.0 % | 60.0 % | — |" in text
    assert "| rm | `rm/checkpoints/step3-tokens0B` | 15.0 | — | — | — | — | 90.0 % |" in text
    assert "**base → sft**: held-out accuracy 25.0 % → 50.0 % (+25.0 points)" in text
    assert "gsm8k 50.0 % → 75.0 % (+25.0 points)" in text
    assert "preference accuracy 60.0 % → 70.0 % (+10.0 points)" in text  # the base's from pipeline.json
    assert "**dpo → ppo**: held-out accuracy 45.0 % → 60.0 % (+15.0 points)" in text
    assert "17 parameters, 600 training tokens" in text and "4 steps, 16 episodes" in text


def test_stages_not_run_are_absent_and_unmeasured_figures_null(tmp_path: Path) -> None:
    done = {k: v for k, v in DONE.items() if k not in ("prefs", "dpo", "rm", "ppo")}
    done["sft"] = {"checkpoint": "sft/checkpoints/step3-tokens0B", "steps": 3, "seconds": 20.0}
    run = make_run(tmp_path, done)
    summary = summarize(run)
    assert list(summary["stages"]) == ["base", "sft"]
    assert summary["stages"]["sft"] == {
        "checkpoint": "sft/checkpoints/step3-tokens0B",
        "seconds": 20.0,
        "accuracy": None,
        "accuracy_by_verifier": None,
        "preference_accuracy": None,
    }
    text = write_report(run).read_text()
    assert not (run / "plots" / "ppo.png").exists()
    assert "**base → sft**: preference accuracy 60.0 % → —" not in text
    assert "**base → sft**: no figure measured on both sides." in text
    assert "dpo" not in text


def test_every_pipeline_run_writes_the_report_even_when_all_stages_were_done(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    stages = "--stages=[data, tokenizer, tokens, pretrain, anneal, soup, sft, prefs, dpo, rm, ppo]"
    cfg = load_config(
        PipelineConfig, None, [f"--runs_root={tmp_path}", "--name=run", "--log.wandb=false", stages]
    )
    assert run_pipeline(cfg) == DONE  # every stage skipped
    assert json.loads((run / "summary.json").read_text()) == EXPECTED
    assert (run / "report.md").is_file()


def test_pipeline_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path)
    out = tmp_path / "elsewhere"
    assert pipeline_main(["report", "--run", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    assert json.loads((out / "summary.json").read_text()) == EXPECTED
    assert (out / "plots" / "accuracy.png").read_bytes().startswith(PNG)
    assert not (run / "summary.json").exists()
    assert pipeline_main(["report", "--run", str(tmp_path / "missing")]) == 2


def test_report_of_the_real_tiny_run(tmp_path: Path) -> None:
    run = ROOT / "runs" / "tiny"
    if not (run / "pipeline.json").is_file():
        pytest.skip("runs/tiny has not been made (make demo)")
    done = json.loads((run / "pipeline.json").read_text())["done"]
    summary = summarize(run)
    policy = {"checkpoint", "seconds", "accuracy", "accuracy_by_verifier", "preference_accuracy"}
    shapes = {
        "base": {
            "checkpoint",
            "params",
            "tokens",
            "seconds",
            "heldout_loss",
            "accuracy",
            "accuracy_by_verifier",
        },
        "sft": policy,
        "prefs": {"dir", "seconds", "pairs", "prompts", "prompts_without_pair"},
        "dpo": policy,
        "rm": {"checkpoint", "seconds", "pairwise_accuracy"},
        "ppo": policy | {"steps", "episodes"},
    }
    assert set(summary) == {"total_seconds", "stages"}
    for stage, entry in summary["stages"].items():
        assert set(entry) == shapes[stage]
        assert (run / (entry["dir"] if stage == "prefs" else entry["checkpoint"])).is_dir()
        record = done["soup" if stage == "base" else stage]
        assert all(entry[k] == record[k] for k in entry if k not in ("params", "tokens", "seconds"))
    if "base" in summary["stages"]:
        assert summary["stages"]["base"]["params"] > 0 and summary["stages"]["base"]["tokens"] > 0
    assert summary["total_seconds"] == round(sum(r["seconds"] for r in done.values()), 1)
    write_report(run, tmp_path)  # into tmp_path: the run directory stays as the pipeline left it
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == sorted({"loss.png", "accuracy.png"} | ({"ppo.png"} if "ppo" in done else set()))
    for png in (tmp_path / "plots").glob("*.png"):
        assert png.read_bytes().startswith(PNG)
    assert "## Stages" in (tmp_path / "report.md").read_text()


# ------------------------------------------------------------------ real-scale presets (loaded only)


@pytest.mark.parametrize("size", ["7b", "13b"])
def test_real_scale_presets_load_with_their_stage_configs(size: str, tmp_path: Path) -> None:
    from base_model.config import PretrainConfig
    from rlvr.algos.dpo import DPOConfig
    from rlvr.algos.ppo.config import PPOConfig
    from rlvr.algos.reward_model import RewardModelConfig
    from rlvr.algos.sft import SFTConfig

    cfg = load_config(PipelineConfig, ROOT / "configs" / "pipeline" / f"olmo2_{size}.yaml")
    assert cfg.data_source == "stage_configs" and cfg.base == f"allenai/OLMo-2-1124-{size.upper()}"
    assert cfg.stages == ["sft", "dpo", "rm", "ppo", "eval"]
    load_config(PretrainConfig, ROOT / cfg.pretrain.config, cfg.pretrain.overrides)
    stages = {
        "sft": load_config(SFTConfig, ROOT / cfg.sft.config, cfg.sft.overrides),
        "dpo": load_config(DPOConfig, ROOT / cfg.dpo.config, cfg.dpo.overrides),
        "rm": load_config(RewardModelConfig, ROOT / cfg.rm.config, cfg.rm.overrides),
    }
    for stage in stages.values():
        assert stage.train.sharding == "fsdp2"
        assert all(not Path(source).suffix for source in stage.data.train)  # hub datasets, not files
    mix = f"allenai/olmo-2-1124-{size}-preference-mix"
    assert stages["dpo"].data.train == [mix] and stages["rm"].data.train == [mix]
    assert stages["dpo"].optim.lr == 5e-7 and stages["dpo"].dpo.beta == 5.0
    ppo = load_config(PPOConfig, ROOT / cfg.ppo.config, cfg.ppo.overrides)
    assert ppo.data.train == ["allenai/RLVR-GSM-MATH-IF-Mixed-Constraints"] and ppo.rollout.backend == "vllm"
    # the pipeline keeps each stage's own data: it only points paths and the start model
    ctx = Context(cfg, tmp_path, {})
    sft = load_config(SFTConfig, ROOT / cfg.sft.config)
    data, evals = sft.data.train, (sft.eval.rlvr_test, sft.eval.prefs_test)
    _point_stage(sft, ctx, "sft", cfg.base, _synthetic(ctx, "sft_train.jsonl"), ["rlvr_test"])
    assert sft.init_from == cfg.base and sft.run_dir == tmp_path / "sft"
    assert sft.data.train == data and (sft.eval.rlvr_test, sft.eval.prefs_test) == evals


def test_pipeline_config_rejects_stages_a_given_base_makes_moot() -> None:
    preset = ROOT / "configs" / "pipeline" / "olmo2_7b.yaml"
    with pytest.raises(ConfigError, match="needs base"):
        load_config(PipelineConfig, preset, ["--base=null"])
    with pytest.raises(ConfigError, match=r"\['tokens', 'pretrain'\] do not apply"):
        load_config(PipelineConfig, preset, ["--stages=[tokens, pretrain, sft]"])
    # a given base with the synthetic suite: the data stage still applies, pretraining does not
    load_config(PipelineConfig, None, ["--base=some/model", "--stages=[data, sft]"])
    with pytest.raises(ConfigError, match=r"\['soup'\] do not apply"):
        load_config(PipelineConfig, None, ["--base=some/model", "--stages=[data, soup, sft]"])


def test_a_bare_base_record_still_reports(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"soup": {"checkpoint": "base"}})  # as a test seeds pipeline.json by hand
    base = {"checkpoint": "base", "params": 17, "tokens": None, "seconds": 0.0}
    base |= {"heldout_loss": None, "accuracy": None, "accuracy_by_verifier": None}
    assert summarize(run) == {"total_seconds": 0.0, "stages": {"base": base}}
    text = write_report(run).read_text()
    assert "Base model: 17 parameters;" in text and "## Plots" not in text
