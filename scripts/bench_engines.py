"""GRPO episodes per second with 1 and with 2 vLLM engines, launched one after the other.

    .venv/bin/python scripts/bench_engines.py [--policy runs/tiny/dpo] [--engines 1 2]
        [--episodes 320] [--out runs/bench_engines]

Each launch is `rlvr ppo --config configs/ppo/tiny_grpo.yaml --rollout.vllm.engines=N
--rollout.vllm.sync=collective --train.total_episodes=EPISODES` without evaluation; the figure is
episodes per step over the median `step_seconds` of the steps after the first (the first has no
sync and warms the engines). Also printed: the median sync seconds and the largest probe gap of any
engine, and whether the runs drew the same rewards (the engines serve the same seeded requests).
Written to `<out>/bench_engines.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from rlvr.tracking import read_metrics


def launch(policy: str, out: Path, engines: int, episodes: int) -> list[dict[str, float]]:
    name = f"engines{engines}"
    command = [
        sys.executable, "-m", "rlvr.cli", "ppo", "--config", "configs/ppo/tiny_grpo.yaml",
        f"--policy={policy}", f"--runs_root={out}", f"--name={name}", f"--rollout.vllm.engines={engines}",
        "--rollout.vllm.sync=collective", f"--train.total_episodes={episodes}", "--data.test=[]",
        "--train.resume=false", "--log.wandb=false", "--log.progress=false",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{engines} engine(s) failed:\n{done.stderr[-3000:]}")
    return [m for m in read_metrics(out / name / "metrics.jsonl") if "reward" in m]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default="runs/tiny/dpo")
    parser.add_argument("--engines", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--episodes", type=int, default=320)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_engines"))
    args = parser.parse_args()
    results, rewards = [], {}
    for engines in args.engines:
        steps = launch(args.policy, args.out, engines, args.episodes)
        episodes_per_step = steps[0]["episodes"]
        seconds = statistics.median(m["step_seconds"] for m in steps[1:])
        syncs = [m for m in steps if "sync_seconds" in m]
        row = {
            "engines": engines,
            "steps": len(steps),
            "episodes_per_s": episodes_per_step / seconds,
            "median_step_seconds": seconds,
            "median_sync_seconds": statistics.median(m["sync_seconds"] for m in syncs),
            "max_probe_gap": max(m["sync_probe_gap"] for m in syncs),
        }
        rewards[engines] = [m["reward"] for m in steps]
        results.append(row)
        print(
            f"{engines} engine(s): {row['episodes_per_s']:.2f} episodes/s (median step {seconds:.1f} s), "
            f"sync {row['median_sync_seconds']:.3f} s, max probe gap {row['max_probe_gap']:.2g}",
            flush=True,
        )
    same = len({tuple(r) for r in rewards.values()}) == 1
    print(f"the same rewards at every step across engine counts: {same}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_engines.json"
    path.write_text(
        json.dumps({"episodes": args.episodes, "results": results, "same_rewards": same}, indent=2) + "\n"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
