"""`rlvr <command> --config FILE [--key.sub=value ...]` — one command per stage.

Each command is a `main(argv) -> int` function in the module that owns the stage; this file only
routes to it (imported lazily, so `rlvr --help` stays fast). A stage that is not built yet says so
and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rlvr.config import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Command:
    help: str
    target: str | None
    """`module:function` taking the remaining argv; None while the stage is not built."""
    issue: int | None = None


COMMANDS: dict[str, Command] = {
    "data": Command("make the synthetic suite; validate data files", "rlvr.cli:data_main"),
    "pretrain": Command("pretrain an OLMo 2 base model (tokenizer, prepare, soup)", "base_model.cli:main", 3),
    "sft": Command("supervised fine-tuning, loss on assistant tokens", "rlvr.algos.sft:main", 5),
    "dpo": Command("preference tuning: dpo_norm, dpo, ipo, simpo", "rlvr.algos.dpo:main", 5),
    "rm": Command("train a Bradley-Terry reward model", "rlvr.algos.reward_model:main", 5),
    "ppo": Command("PPO / GRPO with verifiable rewards, vLLM rollouts", "rlvr.algos.ppo.trainer:main", 6),
    "eval": Command("sample, verify, report pass@1 / pass@k / maj@k", "rlvr.eval:main", 7),
    "prefs": Command("on-policy preference pairs: sample, judge, pick chosen/rejected", "rlvr.prefs:main"),
    "verify": Command("score predictions with the verifiers", "rlvr.rewards.cli:main", 4),
    "pipeline": Command("every stage from one config (what make demo runs)", "rlvr.pipeline:main", 7),
    "plan": Command("per-device memory of a config's layout, and the smallest that fits", "rlvr.plan:main"),
}


def _resolve(command: Command) -> Callable[[list[str]], int] | None:
    if command.target is None:
        return None
    module_name, _, function = command.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            return None  # the stage's module has not been written yet
        raise
    return getattr(module, function)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="Post-training with verifiable rewards: the OLMo 2 Instruct recipe end to end.",
        epilog="Every stage: rlvr <command> --config FILE [--key.sub=value ...]; rlvr <command> --help for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command '{name}'; choose from {', '.join(COMMANDS)}")
    command = COMMANDS[name]
    run = _resolve(command)
    if run is None:
        where = f" (issue #{command.issue})" if command.issue else ""
        print(f"rlvr {name}: this stage is not built yet{where}.", file=sys.stderr)
        return 3
    # `kill` (SIGTERM) unwinds like Ctrl-C, so `finally` blocks run: a vLLM engine's worker processes
    # are shut down with it instead of being left spinning, and the metrics log is closed
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return int(run(rest) or 0)
    except ConfigError as err:  # a model path (`rlvr.checkpoints.ModelPathError`) says what it is itself
        label = getattr(err, "label", "config error")
        print(f"rlvr {name}: {label + ': ' if label else ''}{err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from rlvr.rollout import RolloutError

        if not isinstance(err, RolloutError):
            raise
        print(f"rlvr {name}: rollout engine failure: {err}. The run stopped with its saved checkpoints "
              "kept; a training command re-run the same way resumes from the last one.", file=sys.stderr)  # fmt: skip
        return 1


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def config_command(
    argv: Sequence[str], cls: type[T], run: Callable[[T], object], prog: str, description: str, epilog: str
) -> int:
    """`prog [--config FILE] [--key=value ...]`: the settings as `cls`, then `run` on them; a data
    error (a missing file, no readable row) is one line and exit code 2."""
    from rlvr.config import load_config
    from rlvr.data import DataError

    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config", type=Path, help=f"YAML with {cls.__name__} fields (optional)")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(cls, args.config, overrides)
    try:
        run(cfg)
    except DataError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    return 0


def data_main(argv: Sequence[str]) -> int:
    """`rlvr data synth --out DIR [--config FILE] [--key=value ...]` and `rlvr data validate`."""
    from rlvr.config import load_config
    from rlvr.data import KINDS, main_validate

    parser = argparse.ArgumentParser(prog="rlvr data")
    sub = parser.add_subparsers(dest="action", required=True)
    synth = sub.add_parser("synth", help="write the synthetic task suite (deterministic for a seed)")
    synth.add_argument("--out", required=True, type=Path, help="output directory")
    synth.add_argument("--config", type=Path, help="YAML SynthConfig (default: built-in defaults)")
    validate = sub.add_parser("validate", help="check data files against a schema, report every bad row")
    validate.add_argument("--kind", required=True, choices=KINDS)
    validate.add_argument("paths", nargs="+", help="local .jsonl/.parquet files or hub names")
    args, overrides = parser.parse_known_args(argv)
    if args.action == "validate":
        if overrides:
            parser.error(f"unexpected arguments: {' '.join(overrides)}")
        return main_validate(args.paths, args.kind)
    from rlvr.synth import SynthConfig, write_suite

    cfg = load_config(SynthConfig, args.config, overrides)
    counts = write_suite(cfg, args.out)
    for filename, rows in counts.items():
        print(f"{args.out / filename}: {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
