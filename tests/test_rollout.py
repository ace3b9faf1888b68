"""Rollout engines: sampled log-probs match the trainer's, and a stale engine is caught by the probe."""

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from base_model.tokenizer import load_tokenizer
from rlvr.logprobs import token_logprobs
from rlvr.rollout import (
    HFEngine,
    SyncError,
    Weights,
    max_abs_gap,
    measured_tolerance,
    start_limit,
    trainer_logprobs,
    verify_sync,
)

TEXTS = ["Sam has 12 cards. He sells 1. #### 11", "The quick brown fox jumps over the lazy dog."] * 20


@pytest.fixture(scope="module")
def checkpoint(make_tiny_checkpoint: Callable[[Sequence[str]], Path]) -> Path:
    return make_tiny_checkpoint(TEXTS)


def load(checkpoint: Path) -> tuple[torch.nn.Module, object]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(checkpoint), dtype=torch.float32, attn_implementation="eager"
    )
    return model, load_tokenizer(checkpoint)


def perturb(model: torch.nn.Module, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)


def test_hf_engine_logprobs_are_the_trainers_at_the_sampling_temperature(checkpoint: Path) -> None:
    model, tokenizer = load(checkpoint)
    engine = HFEngine(model, tokenizer)
    prompts = [tokenizer.encode("Sam has 12"), tokenizer.encode("The quick brown fox jumps")]
    samples = engine.sample(prompts, n=3, max_tokens=12, temperature=0.7, seed=0)
    assert [len(group) for group in samples] == [3, 3]
    for prompt, group in zip(prompts, samples, strict=True):
        for sample in group:
            assert 1 <= len(sample.token_ids) <= 12 and len(sample.logprobs) == len(sample.token_ids)
            assert sample.finished == (sample.token_ids[-1] == tokenizer.eos_token_id)
            ids = torch.tensor([prompt + sample.token_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(prompt) - 1 : -1]
            expected = token_logprobs(logits, torch.tensor(sample.token_ids), temperature=0.7)
            assert max_abs_gap(sample.logprobs, expected.tolist()) < 1e-4
    # the same seed draws the same samples
    again = engine.sample(prompts, n=3, max_tokens=12, temperature=0.7, seed=0)
    assert [[s.token_ids for s in g] for g in again] == [[s.token_ids for s in g] for g in samples]


def test_verify_sync_catches_a_stale_engine(checkpoint: Path) -> None:
    trainer, tokenizer = load(checkpoint)
    served, _ = load(checkpoint)
    engine = HFEngine(served, tokenizer)  # a separate copy, like a vLLM engine
    probe = tokenizer.encode(TEXTS[0])
    assert max(verify_sync(engine, probe, trainer_logprobs(trainer, probe), tolerance=1e-5)) < 1e-5
    perturb(trainer)
    with pytest.raises(SyncError, match="stale or partial"):
        verify_sync(engine, probe, trainer_logprobs(trainer, probe), tolerance=1e-3)
    engine.load_weights(Weights.of(trainer))
    assert max(verify_sync(engine, probe, trainer_logprobs(trainer, probe), tolerance=1e-5)) < 1e-5
    with pytest.raises(SyncError, match="lengths differ"):
        max_abs_gap([0.0], [0.0, 0.0])


def test_the_sync_tolerance_is_measured_from_the_engines_own_checkpoint() -> None:
    # fp32 engines differ from the trainer by ~1e-5: the floor holds
    assert measured_tolerance([1e-5, 2e-5]) == 1e-3
    # bf16 engines: twice the largest start gap (0.085 is the tiny model's bf16 vLLM-CPU gap)
    assert measured_tolerance([0.085, 0.06]) == pytest.approx(0.17)
    assert start_limit(torch.float32) == 1e-3 and start_limit(torch.bfloat16) == 1.0


ENGINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    from rlvr.rollout import Weights, trainer_logprobs, max_abs_gap, timed_sync
    from rlvr.vllm_engine import VLLMConfig, VLLMEngine

    if __name__ == "__main__":
        checkpoint, probe, prompt = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
        config = VLLMConfig(max_model_len=128, gpu_memory_utilization=0.1, enforce_eager=sys.argv[4] == "eager",
                            sync=sys.argv[5], engines=int(sys.argv[6]), placement=sys.argv[7])
        engine = VLLMEngine(checkpoint, config)
        import psutil
        # the engines' schedulers: this process's children, or (placement ray) its Ray workers' children
        cores = [p for p in psutil.Process().children(recursive=True) if p.name().startswith("VLLM::Engine")]
        result = {"affinity": [{"scheduler": core.cpu_affinity(),
                                "workers": sorted({c for w in core.children() for c in w.cpu_affinity()})}
                               for core in cores]}
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="eager")
        gaps = lambda: [max_abs_gap(served, trainer_logprobs(model, probe)) for served in engine.probe_logprobs(probe)]
        result["gaps_at_start"] = gaps()
        result["stale_gaps"], result["syncs"] = [], []
        for _ in range(2):  # a second sync reuses what the first set up (the collective's weight group)
            generator = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=generator) * 0.05)
            result["stale_gaps"].append(gaps())
            result["syncs"].append(timed_sync(engine, Weights.of(model), probe, trainer_logprobs(model, probe),
                                              tolerance=1e-3))
        samples = engine.sample([prompt, prompt], n=2, max_tokens=10, temperature=0.7, seed=3)
        result["samples"] = [[[s.token_ids, s.logprobs, s.finished] for s in group] for group in samples]
        if len(cores) > 1:  # a killed engine stops sampling with an error naming it
            from rlvr.rollout import EngineError
            cores[1].kill()
            cores[1].wait(30)
            try:
                engine.sample([prompt, prompt], n=1, max_tokens=4, temperature=0.7, seed=3)
            except EngineError as err:
                result["killed"] = str(err)
        engine.close()
        print("RESULT " + json.dumps(result))
    """
)


@pytest.mark.parametrize(
    ("mode", "sync", "engines", "placement"),
    [
        ("eager", "collective", 2, "local"),
        ("eager", "file", 1, "local"),
        ("compiled", "collective", 1, "local"),
        ("eager", "collective", 2, "ray"),
    ],
)
def test_vllm_engine_syncs_verifiably_and_samples_the_trainers_distribution(
    checkpoint: Path, tmp_path: Path, mode: str, sync: str, engines: int, placement: str
) -> None:
    """Both sync routes, one engine and two (each on its own core, every one verified after every
    sync), started here or placed as Ray actors; also compiled (`enforce_eager: false`): the new
    weights must reach the compiled model too."""
    pytest.importorskip("vllm")
    if placement == "ray":
        pytest.importorskip("ray")
    model, tokenizer = load(checkpoint)
    probe, prompt = tokenizer.encode(TEXTS[1]), tokenizer.encode("Sam has 12")
    script = tmp_path / "engine.py"
    script.write_text(ENGINE_SCRIPT)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(checkpoint),
            json.dumps(probe),
            json.dumps(prompt),
            mode,
            sync,
            str(engines),
            placement,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[0].removeprefix("RESULT "))
    # each scheduler shares its worker's cores (VLLMConfig.scheduler_on_worker_cores); engines do not share
    affinity = result["affinity"]
    assert len(affinity) == engines
    assert all(a["workers"] and a["scheduler"] == a["workers"] for a in affinity)
    assert len({c for a in affinity for c in a["workers"]}) == sum(len(a["workers"]) for a in affinity)
    assert len(result["gaps_at_start"]) == engines and max(result["gaps_at_start"]) < 1e-4
    for stale_gaps, synced in zip(result["stale_gaps"], result["syncs"], strict=True):
        assert min(stale_gaps) > 0.05  # the probe sees a changed model on every engine ...
        assert synced["sync_probe_gap"] < 1e-4  # ... and every synced engine serves it
        if engines > 1:
            assert [synced[f"sync_probe_gap/engine{e}"] for e in range(engines)] == pytest.approx(
                [synced["sync_probe_gap"]] * engines, abs=1e-4
            )
    if engines > 1:
        assert re.match(r"vLLM engine [01] of 2 failed to sample", result["killed"]), result.get("killed")
    # the two copies of the prompt (one per engine when there are two) carry the same seed: same samples
    first, second = result["samples"]
    assert [s[0] for s in first] == [s[0] for s in second]
    perturb(model)  # the same two perturbations the engine's trainer applied
    perturb(model)
    for group in result["samples"]:
        assert len(group) == 2
        for token_ids, logprobs, finished in group:
            assert finished == (token_ids[-1] == tokenizer.eos_token_id)
            ids = torch.tensor([prompt + token_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(prompt) - 1 : -1]
            expected = token_logprobs(logits, torch.tensor(token_ids), temperature=0.7)
            assert max_abs_gap(logprobs, expected.tolist()) < 1e-3


def test_placements_give_each_engine_its_own_devices() -> None:
    from rlvr.vllm_engine import placements

    cores = ["0", "1", "2", "3"]
    assert placements(2, 1, cores, cpu=True) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0,1"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2,3"},
    ]
    assert placements(2, 2, cores, cpu=True) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0|1"},
        {"VLLM_CPU_OMP_THREADS_BIND": "2|3"},
    ]
    assert placements(2, 2, ["4", "5", "6", "7"], cpu=False) == [
        {"CUDA_VISIBLE_DEVICES": "4,5"},
        {"CUDA_VISIBLE_DEVICES": "6,7"},
    ]
    assert placements(1, 2, ["0", "1"], cpu=False) == [{}]  # one engine: what the caller set
    assert placements(1, 1, cores, cpu=True) == [{}]
    with pytest.raises(
        ValueError, match=r"2 engine\(s\) × tensor_parallel_size 2 need 4 GPUs; 3 are visible"
    ):
        placements(2, 2, ["0", "1", "2"], cpu=False)


class RecordingLLM:
    """The `vllm.LLM` calls the fleet makes around sleep mode, recorded."""

    def __init__(self, calls: list[tuple[int, str]], e: int) -> None:
        self.calls, self.e = calls, e

    def sleep(self, level: int) -> None:
        self.calls.append((self.e, f"sleep{level}"))

    def wake_up(self) -> None:
        self.calls.append((self.e, "wake"))

    def reset_prefix_cache(self) -> bool:
        self.calls.append((self.e, "reset"))
        return True


def test_sleeping_engines_wake_before_their_next_use(checkpoint: Path) -> None:
    """`vllm.sleep` (colocated engines): sleep once after sampling, wake every engine before it serves."""
    pytest.importorskip("vllm")
    from concurrent.futures import ThreadPoolExecutor

    from rlvr.config import ConfigError
    from rlvr.vllm_engine import VLLMConfig, VLLMEngine

    calls: list[tuple[int, str]] = []
    engine = object.__new__(VLLMEngine)  # two recording engines in place of started ones
    engine.cfg, engine.asleep = VLLMConfig(engines=2, sleep=True), False
    engine.llms = [RecordingLLM(calls, e) for e in range(2)]
    engine._pool = ThreadPoolExecutor(2)
    engine.sleep()
    engine.sleep()  # already asleep: nothing
    assert sorted(calls) == [(0, "sleep1"), (1, "sleep1")]
    calls.clear()
    engine._on_each(lambda e, llm: llm.reset_prefix_cache(), "drop its prefix cache")
    assert sorted(calls[:2]) == [(0, "wake"), (1, "wake")]
    assert sorted(calls[2:]) == [(0, "reset"), (1, "reset")]
    from vllm.platforms import current_platform

    if not current_platform.is_sleep_mode_available():  # CPU builds: one line, before any engine starts
        with pytest.raises(ConfigError, match="sleep mode"):
            VLLMEngine(checkpoint, VLLMConfig(sleep=True))
