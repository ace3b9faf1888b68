import math

import yaml

from rlvr.tracking import LogConfig, MetricsLogger, RunConfig, format_metrics, prepare_run_dir, read_metrics


def test_run_dir_metrics_and_resume(tmp_path, capsys):
    cfg = RunConfig(name="t", runs_root=str(tmp_path), log=LogConfig(every=2, wandb=False))
    run_dir = prepare_run_dir(cfg)
    assert run_dir == tmp_path / "t"
    assert (run_dir / "checkpoints").is_dir()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["log"]["every"] == 2
    with MetricsLogger(run_dir, cfg) as logger:
        for step in range(1, 4):
            logger.log(step, {"loss": 1.0 / step, "bad": math.nan})
    with MetricsLogger(run_dir, cfg, resume=True) as logger:
        logger.log(4, {"loss": 0.25})
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert records[0]["bad"] == "nan"
    err = capsys.readouterr().err
    assert "step 2 | loss 0.5" in err and "step 1 |" not in err


def test_wandb_offline_writes_locally(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = RunConfig(name="w", runs_root=str(tmp_path), log=LogConfig(wandb=True))
    run_dir = prepare_run_dir(cfg)
    with MetricsLogger(run_dir, cfg) as logger:
        logger.log(1, {"loss": 1.0})
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_format_metrics():
    line = format_metrics({"loss": 2.31456, "lr": 3e-4, "tokens": 12345, "name": "x"})
    assert line == "loss 2.315 | lr 3.00e-04 | tokens 12,345 | name x"
