"""The pipeline's DPO stage (prefs + dpo) from one SFT model with several seeds: the DPO − SFT gain.

    .venv/bin/python scripts/dpo_seeds.py --run runs/tiny [--seeds 0 1 2] [--out runs/dpo-seeds]
        [--config configs/pipeline/tiny.yaml] [--key=value ...]

`--run` is a finished pipeline run with its data and sft stages (e.g. `make demo`'s runs/tiny). Each
seed runs the pipeline's `prefs` and `dpo` stages — the same code and configs as `make demo`, extra
`--key=value` pipeline overrides applied — in `<out>/seed-<s>/`, starting from that run's SFT model
(its data folder is linked, not copied). The seed drives the prefs sampling and the DPO data order.

Prints, per seed and as mean ± standard deviation over seeds, the held-out greedy accuracy gain of DPO
over SFT overall and per verifier, and the preference-accuracy gain; writes the figures as JSON to
`<out>/dpo_seeds.json`. Seeds already finished in `<out>` are read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rlvr.config import load_config
from rlvr.pipeline import PipelineConfig, run_pipeline


def seed_run(run: Path, out: Path, seed: int, config: str, overrides: list[str]) -> dict[str, Any]:
    """The prefs and dpo records of one seed's run (run now unless it finished earlier)."""
    done = json.loads((run / "pipeline.json").read_text())["done"]
    seed_dir = out / f"seed-{seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    if not (seed_dir / "data").exists():
        (seed_dir / "data").symlink_to((run / "data").resolve())
    state = seed_dir / "pipeline.json"
    if not state.exists():  # the SFT model of `run`, by absolute path
        sft = {**done["sft"], "checkpoint": str((run / done["sft"]["checkpoint"]).resolve())}
        state.write_text(json.dumps({"done": {"data": done["data"], "sft": sft}}, indent=2) + "\n")
    cfg = load_config(
        PipelineConfig,
        config,
        [f"--runs_root={out}", f"--name=seed-{seed}", f"--seed={seed}", "--stages=[prefs,dpo]", *overrides],
    )
    return run_pipeline(cfg)


def gains(sft: dict[str, Any], dpo: dict[str, Any]) -> dict[str, float]:
    """DPO − SFT in points: overall, per verifier, and preference accuracy."""
    out = {"accuracy": 100 * (dpo["accuracy"] - sft["accuracy"])}
    for name, value in sft["accuracy_by_verifier"].items():
        out[f"accuracy/{name}"] = 100 * (dpo["accuracy_by_verifier"][name] - value)
    out["preference_accuracy"] = 100 * (dpo["preference_accuracy"] - sft["preference_accuracy"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a pipeline run with data and sft stages")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/dpo-seeds"))
    parser.add_argument("--config", default="configs/pipeline/tiny.yaml")
    args, overrides = parser.parse_known_args()
    state = args.run / "pipeline.json"
    if not state.is_file() or "sft" not in json.loads(state.read_text())["done"]:
        print(f"dpo_seeds: {state} has no finished sft stage; run the pipeline first", file=sys.stderr)
        return 2
    sft = json.loads(state.read_text())["done"]["sft"]
    per_seed = {}
    for seed in args.seeds:
        done = seed_run(args.run, args.out, seed, args.config, overrides)
        per_seed[seed] = {
            "prefs": {k: done["prefs"][k] for k in ("pairs", "prompts", "prompts_without_pair", "seconds")},
            "dpo": {k: done["dpo"][k] for k in ("accuracy", "accuracy_by_verifier", "preference_accuracy")},
            "dpo_seconds": done["dpo"]["seconds"],
            "gain": gains(sft, done["dpo"]),
        }
    keys = list(next(iter(per_seed.values()))["gain"])
    summary = {
        k: {
            "mean": statistics.mean(s["gain"][k] for s in per_seed.values()),
            "std": statistics.stdev(s["gain"][k] for s in per_seed.values()) if len(per_seed) > 1 else 0.0,
        }
        for k in keys
    }
    result = {
        "run": str(args.run),
        "overrides": overrides,
        "sft": {k: sft[k] for k in ("accuracy", "accuracy_by_verifier", "preference_accuracy")},
        "seeds": per_seed,
        "gain_points": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dpo_seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nDPO − SFT, points (SFT: {100 * sft['accuracy']:.1f} % greedy held-out accuracy)")
    print(f"{'figure':<24}" + "".join(f"{'seed ' + str(s):>10}" for s in per_seed) + f"{'mean ± std':>16}")
    for k in keys:
        row = "".join(f"{s['gain'][k]:>+10.1f}" for s in per_seed.values())
        print(f"{k:<24}{row}{summary[k]['mean']:>+10.1f} ± {summary[k]['std']:.1f}")
    print(f"\n{args.out / 'dpo_seeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
