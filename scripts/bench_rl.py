"""GRPO speed, rlvr vs TRL, and rollout speed, vLLM engine vs transformers engine — one run, side by side.

    .venv/bin/python scripts/bench_rl.py [--steps 5] [--prompts 4] [--group 8] [--max-tokens 128]
                                         [--repeats 3] [--engine-prompts N] [--threads N] [--bf16]
                                         [--async-steps 0|1] [--engine-compile] [--train-compile]
                                         [--trl-threads N] [--checkpoint PATH] [--json OUT]

What is measured (issue #6, "Speed"):

1. **GRPO episodes/s**: rlvr's `PPOTrainer` (`algo: grpo`, vLLM engine with verified weight sync)
   against TRL's `GRPOTrainer` (transformers generation: its colocated vLLM mode fails on CPU), on
   the same checkpoint, the same prompts in the same order, `--prompts` × `--group` completions per
   step, at most `--max-tokens` completion tokens at temperature 1, one optimisation epoch (one
   optimizer step per rollout batch, no gradient accumulation on either side), the same learning
   rate and the same KL term (k3 estimator in the loss, beta `BETA`), fp32 (or `--bf16` autocast on both
   sides), the same verifier
   reward (TRL's reward function calls rlvr's `BatchScorer`). An episode is one sampled
   completion; episodes/s = completions / wall-clock seconds of the timed steps, generation,
   scoring, forwards, backward, optimizer and (rlvr) weight sync included; start-up and the first
   (warm-up) step are excluded. Completion tokens per step are counted on both sides (a random
   model rarely emits EOS, so both normally generate the full budget).
2. **Rollout tokens/s**: `VLLMEngine.sample` vs `HFEngine.sample` (rlvr's two engines) on the same
   prompts and shape, `--repeats` timed calls each after one warm-up call; medians. `--engine-prompts N`
   adds the same comparison on a larger batch (N prompts × group), where vLLM's batching pays more.

`--async-steps 1` runs rlvr with `rollout.async_steps: 1`: the vLLM worker samples the next batch
while the trainer updates on this one (one step off-policy, as open-instruct's async mode). With
`--threads 1` the trainer and the vLLM worker each get one of the two cores (vLLM's scheduler process
shares its worker's core: `VLLMConfig.scheduler_on_worker_cores`). `--engine-compile` and
`--train-compile` turn on rlvr's torch.compile of the engine (`rollout.vllm.enforce_eager: false`) and
of the trainer's models (`train.compile`); their compiling falls in start-up and the warm-up step,
which neither side's figure counts. `--trl-threads` gives TRL its own thread count (it runs alone).

Default model: a randomly initialised ≈11M-parameter OLMo 2 (d_model 384, 6 layers, 6 heads, SwiGLU
1024, vocab 1024) with a byte-level BPE trained on the synthetic suite; `--checkpoint` uses a trained
one instead (its tokenizer must be rlvr's chat tokenizer). The two trainers run one after the other
(TRL first) with torch's default thread count (`--threads N` sets it for this process: TRL, the rlvr
trainer and the transformers engine; vLLM's CPU worker always binds itself to one core, reserving the
other for its scheduler). On a CPU shared with other jobs, two torch threads on two cores stall at
every parallel region while another process holds a core, which slows the many small kernels of
token-by-token `generate` far more than vLLM's single pinned thread — compare with `--threads 1`. The
load average is printed; ratios from one run are more trustworthy than absolute rates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from base_model.data import iter_texts
from base_model.model import ModelConfig, build_model, describe
from base_model.tokenizer import train_tokenizer
from rlvr.algos.common import load_causal_lm
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.trainer import PPOTrainer
from rlvr.config import from_dict
from rlvr.generation import chat_prompt
from rlvr.rewards import BatchScorer
from rlvr.rollout import Engine, HFEngine
from rlvr.synth import SynthConfig, write_suite
from rlvr.train.checkpoint import save_model

MODEL = ModelConfig(d_model=384, n_layers=6, n_heads=6, mlp_hidden=1024, vocab_size=1024, max_seq_len=512)
LR = 1e-6
BETA = 0.04
VERIFICATION_REWARD = 10.0
ATTENTION = "eager"  # rlvr's CPU presets use it (faster than sdpa for short sequences); both sides get it
MAX_PROMPT_TOKENS = 256
RLVR_PHASES = ("sample", "score", "forward_batch", "optimize", "sync")
"""The step's timed parts: the trainer's forwards and updates, its sampler's sampling, scoring and sync."""


def prepare(work: Path, checkpoint: str | None) -> tuple[Path, str]:
    """The synthetic suite (for prompts) and the checkpoint: `checkpoint`, or a fresh random model."""
    suite = work / "suite"
    write_suite(from_dict(SynthConfig, {}), suite)
    if checkpoint:
        return suite / "rlvr_train.jsonl", checkpoint
    texts = iter_texts([str(suite / "pretrain.jsonl"), str(suite / "sft_train.jsonl")])
    tokenizer = train_tokenizer(texts, work / "tokenizer", vocab_size=MODEL.vocab_size)
    model = build_model(MODEL, tokenizer.eos_token_id, tokenizer.pad_token_id, seed=0, attention=ATTENTION)
    save_model(model, tokenizer, work / "model")
    print(f"model: random OLMo 2, {describe(MODEL)} ({sum(p.numel() for p in model.parameters()):,})")
    return suite / "rlvr_train.jsonl", str(work / "model")


# ----------------------------------------------------------------------------- rlvr


def rlvr_trainer(args: argparse.Namespace, work: Path, prompts_file: Path, checkpoint: str) -> PPOTrainer:
    episodes = args.prompts * args.group
    total_tokens = MAX_PROMPT_TOKENS + args.max_tokens
    cfg = from_dict(PPOConfig, {
        "name": "bench-grpo", "runs_root": str(work / "runs"), "seed": 0, "algo": "grpo", "policy": checkpoint,
        "log": {"wandb": False, "progress": False, "every": 10**9},
        "data": {"train": [str(prompts_file)], "max_prompt_tokens": MAX_PROMPT_TOKENS},
        "rollout": {"backend": "vllm", "prompts_per_step": args.prompts, "samples_per_prompt": args.group,
                    "max_response_tokens": args.max_tokens, "max_total_tokens": total_tokens, "temperature": 1.0,
                    "vllm": {"gpu_memory_utilization": 0.1, "max_model_len": total_tokens,
                             "enforce_eager": not args.engine_compile},
                    "async_steps": args.async_steps},
        "reward": {"verification_reward": VERIFICATION_REWARD},
        "kl": {"beta": BETA, "estimator": "k3", "placement": "loss"},
        "loss": {"epochs": 1, "minibatches": 1},
        "optim": {"lr": LR, "warmup_ratio": 0.0},
        "train": {"total_episodes": (args.steps + 1) * episodes, "micro_batch_size": episodes,
                  "precision": "bf16" if args.bf16 else "fp32",
                  "attention": ATTENTION, "save_every": 10**9, "eval_every": 10**9, "compile": args.train_compile},
    })  # fmt: skip
    return PPOTrainer(cfg)


def time_phases(trainer: PPOTrainer) -> dict[str, list[float]]:
    """Wrap the step's parts on this instance so each call's seconds are recorded (negligible overhead)."""
    seconds: dict[str, list[float]] = {name: [] for name in RLVR_PHASES}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                seconds[name].append(time.perf_counter() - start)

        return run

    assert trainer.sampler is not None  # one process: the trainer is the main one
    for name in RLVR_PHASES:
        owner = trainer if hasattr(trainer, name) else trainer.sampler
        setattr(owner, name, timed(name, getattr(owner, name)))
    return seconds


def bench_rlvr(trainer: PPOTrainer, steps: int) -> dict[str, Any]:
    phases = time_phases(trainer)
    step_seconds, tokens = [], []
    for _ in range(steps + 1):
        start = time.perf_counter()
        metrics = trainer.train_step()
        step_seconds.append(time.perf_counter() - start)
        trainer.step += 1
        tokens.append(metrics["response_length"] * trainer.episodes_per_step)
    profile = {name: statistics.mean(values[1:]) for name, values in phases.items()}
    return summary("rlvr GRPO (vLLM)", trainer.episodes_per_step, step_seconds[1:], tokens[1:]) | {
        "profile_seconds": profile
    }


def bench_engines(trainer: PPOTrainer, repeats: int, n_prompts: int) -> list[dict[str, Any]]:
    """rlvr's vLLM engine vs its transformers engine on the run's first `n_prompts` prompts."""
    assert trainer.sampler is not None
    cfg = trainer.cfg.rollout
    per_step = cfg.prompts_per_step
    prompts = [p.ids for step in range(-(-n_prompts // per_step)) for p in trainer.next_prompts(step)][
        :n_prompts
    ]
    engines: dict[str, Engine] = {
        "vLLM engine": trainer.sampler.engine,
        "transformers engine": HFEngine(eager_copy(trainer), trainer.tokenizer),
    }
    results = []
    for name, engine in engines.items():
        rates, tokens = [], []
        for seed in range(repeats + 1):  # seed 0 is the warm-up call
            start = time.perf_counter()
            groups = engine.sample(
                prompts, cfg.samples_per_prompt, cfg.max_response_tokens, cfg.temperature, seed
            )
            elapsed = time.perf_counter() - start
            count = sum(len(s.token_ids) for group in groups for s in group)
            if seed:
                rates.append(count / elapsed)
                tokens.append(count)
        results.append({"engine": name, "prompts": n_prompts, "calls": repeats, "tokens_per_call": statistics.mean(tokens),
                        "tokens_per_s": statistics.median(rates), "all_tokens_per_s": rates})  # fmt: skip
    return results


def eager_copy(trainer: PPOTrainer) -> torch.nn.Module:
    """The trainer's policy, uncompiled (`generate` through a compiled module recompiles as the cache grows)."""
    model = load_causal_lm(trainer.cfg.policy, ATTENTION)
    model.load_state_dict(trainer.policy.state_dict())
    return model


# ----------------------------------------------------------------------------- TRL


def bench_trl(
    args: argparse.Namespace, work: Path, rows: list[dict[str, Any]], checkpoint: str
) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tokens: list[float] = []
    step_ends: list[float] = []
    scorer = BatchScorer(1)  # rlvr's default `reward.workers`

    def verifier_reward(completions: list[str], completion_ids: list[list[int]], ground_truth: list[str],
                        dataset: list[str], **_: Any) -> list[float]:  # fmt: skip
        tokens.append(float(sum(len(ids) for ids in completion_ids)))
        results = scorer.score([{"prediction": c, "ground_truth": g, "dataset": d}
                                for c, g, d in zip(completions, ground_truth, dataset, strict=True)])  # fmt: skip
        return [VERIFICATION_REWARD * r.score for r in results]

    class StepClock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            step_ends.append(time.perf_counter())

    episodes = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(work / "trl"), seed=0, max_steps=args.steps + 1,
        # one rollout batch of `episodes` completions = one optimizer step, as in rlvr
        per_device_train_batch_size=episodes, gradient_accumulation_steps=1, steps_per_generation=1,
        num_generations=args.group, num_iterations=1, shuffle_dataset=False,
        max_completion_length=args.max_tokens, temperature=1.0, top_p=1.0, top_k=0,
        beta=BETA, epsilon=0.2, loss_type="dapo", scale_rewards="group", mask_truncated_completions=False,
        learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch_fused",
        use_cpu=True, bf16=args.bf16, fp16=False, gradient_checkpointing=False,
        model_init_kwargs={"dtype": "float32", "attn_implementation": ATTENTION},
        report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
        log_completions=False, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=checkpoint,
        reward_funcs=verifier_reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(checkpoint),
        callbacks=[StepClock()],
    )
    try:
        trainer.train()
    finally:
        scorer.close()
    step_seconds = [b - a for a, b in itertools.pairwise(step_ends)]
    return summary("TRL GRPOTrainer (transformers)", episodes, step_seconds, tokens[1:])


# ----------------------------------------------------------------------------- report


def summary(side: str, episodes: int, step_seconds: list[float], tokens: list[float]) -> dict[str, Any]:
    seconds = sum(step_seconds)
    return {"side": side, "steps": len(step_seconds), "episodes_per_s": episodes * len(step_seconds) / seconds,
            "completion_tokens_per_step": statistics.mean(tokens), "seconds_per_step": seconds / len(step_seconds),
            "all_step_seconds": step_seconds}  # fmt: skip


def report(trl: dict[str, Any], rlvr: dict[str, Any], engines: list[dict[str, Any]]) -> None:
    print(f"\n{'side':<34} {'steps':>5} {'episodes/s':>11} {'compl. tok/step':>16} {'s/step':>8}")
    for row in (rlvr, trl):
        print(f"{row['side']:<34} {row['steps']:>5} {row['episodes_per_s']:>11.2f} "
              f"{row['completion_tokens_per_step']:>16,.0f} {row['seconds_per_step']:>8.2f}")  # fmt: skip
    print(
        f"ratio rlvr / TRL episodes/s: {rlvr['episodes_per_s'] / trl['episodes_per_s']:.2f}x (target >= 2x)"
    )
    step = rlvr["seconds_per_step"]
    parts = ", ".join(f"{k} {v:.2f}s ({v / step:.0%})" for k, v in rlvr["profile_seconds"].items())
    print(f"rlvr step, mean per timed step: {parts}")
    print(f"\n{'engine':<34} {'prompts':>7} {'calls':>5} {'tokens/s':>11} {'tokens/call':>16}")
    for row in engines:
        print(f"{row['engine']:<34} {row['prompts']:>7} {row['calls']:>5} {row['tokens_per_s']:>11,.0f} "
              f"{row['tokens_per_call']:>16,.0f}")  # fmt: skip
    for vllm, hf in zip(engines[::2], engines[1::2], strict=True):
        print(f"ratio vLLM / transformers tokens/s at {vllm['prompts']} prompts × group: "
              f"{vllm['tokens_per_s'] / hf['tokens_per_s']:.2f}x (target >= 2x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up step)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (GRPO group size)")
    parser.add_argument("--max-tokens", type=int, default=128, help="max completion tokens")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per engine in the rollout benchmark"
    )
    parser.add_argument(
        "--engine-prompts",
        type=int,
        help="also time the engines on this many prompts × group (a larger batch)",
    )
    parser.add_argument("--threads", type=int, help="torch threads of this process (default: torch's choice)")
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast for both trainers (weights stay fp32)"
    )
    parser.add_argument(
        "--async-steps", type=int, choices=(0, 1), default=0,
        help="rlvr's rollout.async_steps: 1 samples the next batch while this one trains",
    )  # fmt: skip
    parser.add_argument(
        "--engine-compile", action="store_true",
        help="rlvr's vLLM engine with torch.compile (rollout.vllm.enforce_eager: false; ≈20 s more start-up)",
    )  # fmt: skip
    parser.add_argument(
        "--train-compile", action="store_true",
        help="rlvr's train.compile: torch.compile the policy and reference (compiling falls in start-up and warm-up)",
    )  # fmt: skip
    parser.add_argument(
        "--trl-threads", type=int, help="torch threads while TRL runs (default: --threads); TRL runs alone"
    )
    parser.add_argument("--checkpoint", help="a trained rlvr checkpoint instead of a random model")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        work = Path(tmp)
        prompts_file, checkpoint = prepare(work, args.checkpoint)
        trainer = rlvr_trainer(args, work, prompts_file, checkpoint)  # also starts the vLLM engine
        # TRL gets rlvr's prompts in rlvr's order (no shuffling), rendered with the same chat template
        rows = [{"prompt": chat_prompt(p.row["messages"]), "ground_truth": p.row["ground_truth"],
                 "dataset": p.row["dataset"]}
                for step in range(args.steps + 1) for p in trainer.next_prompts(step)]  # fmt: skip
        rlvr_threads = torch.get_num_threads()
        torch.set_num_threads(args.trl_threads or rlvr_threads)
        trl = bench_trl(args, work, rows, checkpoint)
        torch.set_num_threads(rlvr_threads)
        print(f"TRL done, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
        try:
            rlvr = bench_rlvr(trainer, args.steps)
            engines = [row for n in sorted({args.prompts, args.engine_prompts or args.prompts})
                       for row in bench_engines(trainer, args.repeats, n)]  # fmt: skip
        finally:
            trainer.close()
        print(f"rlvr done, load average {os.getloadavg()[0]:.2f}")
    report(trl, rlvr, engines)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "trl": trl, "rlvr": rlvr,
                                         "engines": engines}, indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
