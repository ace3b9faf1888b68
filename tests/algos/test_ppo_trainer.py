"""The PPO / GRPO loop end to end on a tiny model (transformers engine): it learns from the verifier
rewards it logs, GRPO runs through the same loop, and a killed run resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.ppo.sampler import Sampler
from rlvr.algos.ppo.trainer import PPOTrainer, train
from rlvr.config import from_dict, merge
from rlvr.tracking import read_metrics
from rlvr.train.checkpoint import list_checkpoints


def ppo_cfg(
    tmp_path: Path, suite: Path, base_checkpoint: Path, updates: dict[str, Any] | None = None
) -> PPOConfig:
    base = {
        "name": "ppo",
        "runs_root": str(tmp_path / "runs"),
        "policy": str(base_checkpoint),
        "value_init": "policy",
        "log": {"wandb": False, "progress": False, "every": 1000},
        "data": {"train": [str(suite / "rlvr_test.jsonl")], "test": [str(suite / "rlvr_test.jsonl")],
                 "max_prompt_tokens": 96},
        "rollout": {"backend": "hf", "prompts_per_step": 4, "samples_per_prompt": 2, "max_response_tokens": 12,
                    "max_total_tokens": 128, "temperature": 1.0},
        "loss": {"epochs": 2, "minibatches": 2},
        "optim": {"lr": 1e-4},
        "train": {"total_episodes": 32, "micro_batch_size": 3, "attention": "eager", "save_every": 2,
                  "eval_every": 2, "eval_max_tokens": 8},
    }  # fmt: skip
    return from_dict(PPOConfig, merge(base, updates or {}))


def response_kl(policy: Path, reference: Path, prompts: list[Any], samples: list[Any]) -> float:
    """Mean over responses of Σ_t log π(y_t) − log π_ref(y_t): the k1 KL the trainer logs (temperature 1)."""
    from transformers import AutoModelForCausalLM

    per_prompt = len(samples) // len(prompts)
    totals = []
    for path in (policy, reference):
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=torch.float32, attn_implementation="eager"
        )
        sums = []
        for i, sample in enumerate(samples):
            prompt = prompts[i // per_prompt].ids
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt + sample.token_ids])).logits[0]
            logps = torch.log_softmax(logits[len(prompt) - 1 : -1].double(), dim=-1)
            sums.append(float(logps.gather(1, torch.tensor(sample.token_ids).unsqueeze(1)).sum()))
        totals.append(sums)
    return sum(p - r for p, r in zip(*totals, strict=True)) / len(samples)


def test_ppo_logs_every_metric_and_saves_policy_and_value(
    tmp_path: Path, suite: Path, base_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[int, tuple[list[Any], Any]] = {}  # step → (its prompts, its rollout)
    real_draw = Sampler.draw

    def recording(self: Sampler, prompts: Any, step: int, upcoming: Any) -> Any:
        drawn[step] = (list(prompts), real_draw(self, prompts, step, upcoming))
        return drawn[step][1]

    monkeypatch.setattr(Sampler, "draw", recording)
    cfg = ppo_cfg(tmp_path, suite, base_checkpoint)
    final = train(cfg)
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]
    assert set(metrics.pop(0)) == {
        "step",
        "time",
        "eval/accuracy",
        "eval/accuracy/gsm8k",
        "eval/accuracy/ifeval",
        "eval/accuracy/math",
    }  # the starting policy, evaluated once
    for key in ("reward", "correct_rate", "kl", "entropy", "policy_loss", "value_loss", "clipfrac", "vf_clipfrac",
                "approx_kl", "ratio_mean", "stop_rate", "response_length", "logprob_gap_mean",
                "gen_tokens_per_s", "train_tokens_per_s", "grad_norm/policy", "grad_norm/value"):  # fmt: skip
        assert all(key in m for m in metrics), key
    assert all(m["ratio_min"] <= m["ratio_mean"] <= m["ratio_max"] for m in metrics)
    assert metrics[0]["kl"] == 0.0  # the policy starts as the reference
    # ... and moves away from it: step 3's batch was sampled by the policy after two updates (the step-2
    # checkpoint); its KL (k1, summed over each response, averaged over responses) recomputed here
    prompts, rollout = drawn[2]
    step2 = next(p for p in list_checkpoints(cfg.run_dir / "checkpoints") if p.name.startswith("step2-"))
    expected = response_kl(step2 / "policy", base_checkpoint, prompts, rollout.samples)
    assert abs(expected) > 1e-2  # far from 0: the policy has moved
    assert metrics[2]["kl"] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert metrics[0]["logprob_gap_max"] < 1e-4  # the transformers engine samples from the policy itself
    assert "eval/accuracy" in metrics[1] and "eval/accuracy" in metrics[3]
    assert metrics[-1]["episodes"] == 32
    assert (final / "policy" / "model.safetensors").is_file() and (
        final / "value" / "model.safetensors"
    ).is_file()
    saved = (cfg.run_dir / "config.yaml").read_text()
    assert "estimator: k1" in saved and "placement: reward" in saved


def test_grpo_is_the_same_loop_without_a_value_model(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    cfg = ppo_cfg(tmp_path, suite, base_checkpoint,
                  {"algo": "grpo", "kl": {"estimator": "k3", "placement": "loss", "beta": 0.1}})  # fmt: skip
    trainer = PPOTrainer(cfg)
    assert trainer.value is None and list(trainer.train_engines) == ["policy"]
    final = trainer.fit()
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]
    assert all("kl_loss" in m and "value_loss" not in m for m in metrics if m["step"] > 0)
    assert not (final / "value").exists()
    with pytest.raises(ValueError, match="group size"):
        ppo_cfg(tmp_path, suite, base_checkpoint, {"algo": "grpo", "rollout": {"samples_per_prompt": 1}})


@pytest.mark.parametrize("async_steps", [0, 1])
def test_killed_run_resumes_exactly(
    tmp_path: Path, suite: Path, base_checkpoint: Path, monkeypatch, async_steps: int
) -> None:
    """With async_steps 1 the checkpoint at step 2 holds the look-ahead batch sampled for step 2."""
    rollout = {"rollout": {"async_steps": async_steps}}
    straight = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "straight", **rollout})
    train(straight)
    interrupted = ppo_cfg(tmp_path, suite, base_checkpoint, {"name": "interrupted", **rollout})
    real_step = PPOTrainer.train_step

    def dies_at_step_3(self: PPOTrainer) -> dict[str, float]:
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(PPOTrainer, "train_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted)
    monkeypatch.setattr(PPOTrainer, "train_step", real_step)
    final = train(interrupted)
    expected = read_metrics(straight.run_dir / "metrics.jsonl")
    resumed = read_metrics(interrupted.run_dir / "metrics.jsonl")
    assert [m["step"] for m in resumed] == [0, 1, 2, 3, 4]
    for key in ("reward", "policy_loss", "value_loss", "kl", "response_length", "eval/accuracy"):
        want = {m["step"]: m[key] for m in expected if key in m}
        assert len(want) >= 3, key  # every step, or every other one (eval/accuracy)
        assert {m["step"]: m[key] for m in resumed if key in m} == pytest.approx(want, rel=1e-5), key
    for part in ("policy", "value"):
        got = load_file(str(final / part / "model.safetensors"))
        want = load_file(str(straight.run_dir / "checkpoints" / final.name / part / "model.safetensors"))
        for name, tensor in want.items():
            torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("async_steps", [0, 1])
def test_async_steps_sample_each_batch_one_update_behind(
    tmp_path: Path, suite: Path, base_checkpoint: Path, monkeypatch, async_steps: int
) -> None:
    drawn: list[tuple[int, int]] = []  # (step the batch is for, policy step of the engine's weights)
    engine_step = [-1]  # as of the trainer's last sync
    real_sample, real_sync = Sampler._timed_sample, PPOTrainer.sync_engine

    def recording(self: Sampler, prompts: Any, step: int) -> Any:
        drawn.append((step, engine_step[0]))
        return real_sample(self, prompts, step)

    def syncing(self: PPOTrainer) -> dict[str, float]:
        metrics = real_sync(self)
        engine_step[0] = self.engine_step
        return metrics

    monkeypatch.setattr(Sampler, "_timed_sample", recording)
    monkeypatch.setattr(PPOTrainer, "sync_engine", syncing)
    cfg = ppo_cfg(tmp_path, suite, base_checkpoint, {"rollout": {"async_steps": async_steps},
                                                     "train": {"eval_every": 100, "eval_at_start": False}})  # fmt: skip
    train(cfg)
    steps = range(4)
    behind = [max(step - 1, 0) for step in steps] if async_steps else list(steps)
    assert drawn == list(zip(steps, behind, strict=True))
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    # the engine's sampling seconds, from its throughput: the wait holds them whenever the step samples
    # its own batch — every step on-policy, only the first with the look-ahead
    sampling = [m["response_length"] * 8 / m["gen_tokens_per_s"] for m in metrics]
    waited = [m["rollout_wait_seconds"] for m in metrics]
    own = list(zip(waited, sampling, strict=True))[: 1 if async_steps else None]
    assert len(metrics) == 4 and all(s > 0 for s in sampling)
    assert all(w >= s * (1 - 1e-6) for w, s in own), (waited, sampling)


def test_long_prompts_are_counted_and_unknown_verifiers_stop_the_run(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    trainer_cfg = ppo_cfg(tmp_path, suite, base_checkpoint, {"data": {"max_prompt_tokens": 30}})
    trainer = PPOTrainer(trainer_cfg)
    assert trainer.too_long > 0 and all(len(p.ids) <= 30 for p in trainer.prompts)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}], "ground_truth": "1", "dataset": "no_such"}\n'
    )
    with pytest.raises(Exception, match="no_such"):
        PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"data": {"train": [str(bad)]}}))


def test_grpo_single_pass_reuses_the_update_forward_as_old_logprobs(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    """One epoch, one minibatch, KL in the loss: skipping the separate old-policy forward changes nothing."""
    updates = {"algo": "grpo", "kl": {"estimator": "k3", "placement": "loss"},
               "loss": {"epochs": 1, "minibatches": 1}, "data": {"test": []}}  # fmt: skip
    runs = []
    for name, reuse in (("reuse", True), ("separate", False)):
        trainer = PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"name": name, **updates}))
        assert trainer.old_from_update
        trainer.old_from_update = reuse
        metrics = []
        for step in range(2):
            trainer.step = step
            metrics.append(trainer.train_step())
        runs.append(metrics)
    for key in ("policy_loss", "kl", "kl_loss", "logprob_gap_mean", "ratio_mean", "reward"):
        assert [m[key] for m in runs[0]] == pytest.approx([m[key] for m in runs[1]], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize(("value_init", "same_body"), [("policy", True), ("fresh", False)])
def test_value_model_starts_from_the_policy_or_fresh(
    tmp_path: Path, suite: Path, base_checkpoint: Path, value_init: str, same_body: bool
) -> None:
    trainer = PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"value_init": value_init}))
    assert trainer.value is not None
    body = trainer.value.model.embed_tokens.weight
    assert torch.equal(body, trainer.policy.model.embed_tokens.weight) is same_body
    assert trainer.value.score.weight.shape == (1, trainer.policy.config.hidden_size)


def test_value_model_starts_from_the_reward_model(tmp_path: Path, suite: Path, base_checkpoint: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    reward_model = AutoModelForSequenceClassification.from_pretrained(str(base_checkpoint), num_labels=1)
    torch.nn.init.constant_(reward_model.score.weight, 0.25)
    reward_model.save_pretrained(str(tmp_path / "rm"))
    trainer = PPOTrainer(
        ppo_cfg(
            tmp_path,
            suite,
            base_checkpoint,
            {"value_init": "reward_model", "reward_model": str(tmp_path / "rm")},
        )
    )
    assert trainer.value is not None and bool((trainer.value.score.weight == 0.25).all())


def test_compile_needs_the_vllm_engine_and_the_plain_pytorch_engine(
    tmp_path: Path, suite: Path, base_checkpoint: Path
) -> None:
    with pytest.raises(ValueError, match=r"needs rollout\.backend vllm"):
        ppo_cfg(tmp_path, suite, base_checkpoint, {"train": {"compile": True}})
    with pytest.raises(ValueError, match="async_steps 1 samples"):
        ppo_cfg(tmp_path, suite, base_checkpoint, {"rollout": {"async_steps": 1, "vllm": {"sleep": True}}})
    with pytest.raises(ValueError, match="sharding none or ddp"):
        ppo_cfg(tmp_path, suite, base_checkpoint, {"rollout": {"backend": "vllm"},
                                                   "train": {"compile": True, "sharding": "zero2"}})  # fmt: skip


@pytest.mark.slow
def test_compiled_models_train_as_the_eager_ones(tmp_path: Path, suite: Path, base_checkpoint: Path) -> None:
    """`train.compile` (vLLM engine): the same rewards, losses and synced weights as the eager run."""
    pytest.importorskip("vllm")
    runs = {}
    for compiled in (False, True):
        cfg = ppo_cfg(tmp_path / str(compiled), suite, base_checkpoint,
                      {"rollout": {"backend": "vllm", "vllm": {"gpu_memory_utilization": 0.05, "max_model_len": 128}},
                       "train": {"compile": compiled, "total_episodes": 16, "eval_every": 100}})  # fmt: skip
        final = train(cfg)
        runs[compiled] = (
            read_metrics(cfg.run_dir / "metrics.jsonl"),
            load_file(final / "policy/model.safetensors"),
        )
    (eager, eager_weights), (compiled, compiled_weights) = runs[False], runs[True]
    assert [m["step"] for m in compiled] == [m["step"] for m in eager]
    for a, b in zip(eager, compiled, strict=True):
        assert a.get("reward") == b.get("reward")  # the same samples: the engines hold the same weights
        for key in ("policy_loss", "value_loss", "kl"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key
    assert compiled_weights.keys() == eager_weights.keys()
    for name, tensor in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], tensor, rtol=0, atol=1e-4)
