"""`rlvr plan`: the byte formulas against hand-computed values, the presets' verdicts, the search, the
start-up check and the command's errors. scripts/plan_check.py checks the formulas against measured
memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.cli import main as rlvr_main
from rlvr.config import ConfigError
from rlvr.plan import DoesNotFit, check_fits
from rlvr.plan.devices import Plan, build_plan
from rlvr.plan.memory import (
    GB,
    DeepSpeedSizes,
    activations,
    layer_activations,
    numerics,
    trained_state,
    vllm_engine,
    weight_casts,
)
from rlvr.plan.search import smallest_fitting
from rlvr.plan.shapes import OLMO2_SHAPES, ModelShape, model_shape
from rlvr.plan.workload import Layout, Workload, load_stage_config, read_layout, read_workload

ROOT = Path(__file__).resolve().parents[1]
PPO_13B = ROOT / "configs/ppo/olmo2_13b_rlvr.yaml"
DDP = ["--train.sharding=ddp", "--train.activation_checkpointing=false"]
"""The PPO preset's layout before sharding: every process holds the three models whole."""
SMALL = ModelShape(hidden=4, intermediate=8, layers=2, heads=2, kv_heads=2, vocab=10)
"""Small enough to count by hand: head size 2, key/value width 4."""
FP32 = numerics("ddp", bf16=False)
DS = DeepSpeedSizes()


def test_parameter_counts() -> None:
    # tiny preset: per layer q, k, v, o 4·256², QK-norm 256 + 256, SwiGLU 3·256·768, two norms 2·256;
    # embedding and LM head 1024·256 each, final norm 256
    tiny = ModelShape(256, 768, 4, 4, 4, 1024)
    assert tiny.layer_params == 4 * 256**2 + 512 + 3 * 256 * 768 + 512 == 852_992
    assert tiny.params("lm") == 4 * 852_992 + 2 * 1024 * 256 + 256 == 3_936_512
    assert tiny.params("score") == 4 * 852_992 + 1024 * 256 + 256 + 256
    # the 13B release: its safetensors index holds 54,864,793,600 bytes of float32
    assert OLMO2_SHAPES["13B"].params("lm") * 4 == 54_864_793_600
    assert OLMO2_SHAPES["7B"].params("lm") == 32 * 202_391_552 + 2 * 100_352 * 4096 + 4096


def test_built_in_shapes_are_the_repository_presets() -> None:
    from base_model.model import PRESETS, num_params

    for size, shape in OLMO2_SHAPES.items():
        preset = PRESETS[f"olmo2_{size.lower()}"]()
        assert (shape.hidden, shape.intermediate, shape.layers, shape.heads, shape.vocab) == (
            preset.d_model, preset.mlp_hidden, preset.n_layers, preset.n_heads, preset.vocab_size)  # fmt: skip
        assert shape.params("lm") == num_params(preset)


def test_states_per_sharding_mode() -> None:
    p = SMALL.params("lm")
    alone = trained_state(SMALL, "lm", "ddp", 1, False, FP32, DS)
    assert (alone.weights, alone.grads, alone.optimizer, alone.buckets) == (4 * p, 4 * p, 8 * p, 0)
    assert trained_state(SMALL, "lm", "ddp", 2, False, FP32, DS).buckets == 4 * p  # DDP's gradient buckets
    one = trained_state(SMALL, "lm", "fsdp2", 1, False, FP32, DS)
    two = trained_state(SMALL, "lm", "fsdp2", 2, False, FP32, DS)
    assert (two.weights, two.grads, two.optimizer) == (one.weights // 2, one.grads // 2, one.optimizer // 2)
    assert two.in_backward == one.in_backward  # gathered units do not shrink with more devices
    zero2 = trained_state(SMALL, "lm", "zero2", 4, False, FP32, DS)
    assert (zero2.weights, zero2.grads, zero2.optimizer) == (4 * p, p, 3 * p)  # + DeepSpeed's fp32 master
    offloaded = trained_state(SMALL, "lm", "fsdp2", 2, True, FP32, DS)
    assert (offloaded.weights, offloaded.grads, offloaded.optimizer, offloaded.host) == (0, 0, 0, 8 * p)


def test_activations_by_hand() -> None:
    # fp32, sdpa, 3 positions. Per position: the layer input 4h, QK-norm 8h + 8kv, v 4kv, q and k after
    # RoPE 4h + 4kv, attention output 4h, log-sum-exp 4a, post-attention norm 8h, the MLP input 4h,
    # SwiGLU 4·4i, post-MLP norm 8h = 40h + 16kv + 16i + 4a = 160 + 64 + 128 + 8 = 360 bytes
    assert layer_activations(SMALL, 3, 3, FP32, "sdpa") == 3 * 360
    full = activations(SMALL, "lm", 3, 3, FP32, "sdpa", checkpointing=False)
    # head: final norm 8h + LM head input 4h; loss: fp32 logits and two temporaries, 12 bytes × V
    assert (full.layers, full.head, full.loss) == (2 * 1080, 3 * 12 * 4, 3 * 12 * 10)
    assert full.peak == full.at_loss == 2160 + 144 + 360
    ckpt = activations(SMALL, "lm", 3, 3, FP32, "sdpa", checkpointing=True)
    # each layer keeps its fp32 input (4h a position); the backward recomputes one layer whole
    assert (ckpt.layers, ckpt.recompute) == (2 * 3 * 16, 1080)
    assert ckpt.peak == max(96 + 144 + 360, 96 + 1080) < full.peak
    # bf16 autocast: each projection keeps a 2-byte copy of its fp32 input; eager keeps the s² scores
    bf16 = numerics("ddp", bf16=True)
    assert layer_activations(SMALL, 3, 3, bf16, "sdpa") < layer_activations(SMALL, 3, 3, FP32, "sdpa")
    eager = layer_activations(SMALL, 3, 3, FP32, "eager") - layer_activations(SMALL, 3, 3, FP32, "sdpa")
    assert eager == 3 * (2 * 3 * 4 - 4 * 2)  # a·s fp32 probabilities in place of a fp32 log-sum-exp


def test_autocast_weight_copies() -> None:
    # a layer's matrices: 176 parameters less 16 of norms; the LM head 10 × 4; 2 bytes each
    assert (SMALL.layer_params, weight_casts(SMALL, "lm", numerics("ddp", bf16=True))) == (176, (320, 80))
    assert weight_casts(SMALL, "lm", numerics("fsdp2", bf16=True)) == (0, 0)  # gathered in bf16 already
    bf16 = numerics("zero2", bf16=True)
    full = activations(SMALL, "lm", 3, 3, bf16, "sdpa", checkpointing=False)
    assert full.casts_at_loss == full.casts_in_backward == 2 * 320 + 80
    ckpt = activations(SMALL, "lm", 3, 3, bf16, "sdpa", checkpointing=True, loss_in_autocast=False)
    assert (ckpt.casts_at_loss, ckpt.casts_in_backward) == (80, 320 + 80)


def test_vllm_engine_share() -> None:
    shape = OLMO2_SHAPES["13B"]
    engine = vllm_engine(shape, 2, 4, 0.5, 80 * GB)
    assert engine.weights == -(-shape.params("lm") * 2 // 4)
    assert engine.weights + engine.kv_cache == engine.budget == 40 * GB
    # a token's keys and values: 2 × 40 layers × 10 of 40 heads × 128 × 2 bytes on each GPU
    assert engine.kv_tokens == engine.kv_cache // (2 * 40 * 10 * 128 * 2)


def plan_of(path: Path, gpus: int, memory_gb: float, *overrides: str) -> tuple[Workload, Layout, Plan]:
    stage, cfg = load_stage_config(path, list(overrides))
    w, layout = read_workload(cfg, stage), read_layout(cfg, stage, gpus)
    return w, layout, build_plan(w, layout, int(memory_gb * GB), 2 * GB)


@pytest.mark.parametrize(("preset", "gpus"), [("olmo2_13b_rlvr", 16), ("olmo2_7b_rlvr", 8)])
def test_ppo_presets_fit_80gb_gpus_and_ddp_would_not(preset: str, gpus: int) -> None:
    path = ROOT / "configs" / "ppo" / f"{preset}.yaml"
    w, layout, plan = plan_of(path, gpus, 80)
    assert plan.fits and layout.sharding == "fsdp2"
    w, layout, plan = plan_of(
        path, gpus, 80, "--train.sharding=ddp", "--train.activation_checkpointing=false"
    )
    assert not plan.fits
    # every process holds the fp32 policy, reference and value whole, with gradients and AdamW states
    rank0 = plan.groups[0]
    assert rank0.label.startswith("GPU 0") and rank0.total > 16 * w.trained[0].params
    best = smallest_fitting(w, layout, 80 * GB)
    assert best is not None and best.fits and best.layout.gpus == gpus
    assert best.layout.sharding in ("fsdp2", "zero3")


@pytest.mark.parametrize(
    "preset",
    ["sft/tulu3_8b", "sft/olmo2_13b", "dpo/olmo2_7b", "dpo/olmo2_13b", "rm/tulu3_8b", "rm/olmo2_13b",
     "pretrain/olmo2_1b", "pretrain/olmo2_7b", "pretrain/olmo2_13b"],
)  # fmt: skip
def test_training_presets_fit_one_node_of_80gb_gpus(preset: str) -> None:
    *_, plan = plan_of(ROOT / "configs" / f"{preset}.yaml", 8, 80)
    assert plan.fits, preset


def test_rank0_carries_the_engine_and_the_rollout_copy_only_for_transformers_sampling() -> None:
    w, _, plan = plan_of(PPO_13B, 16, 80, "--rollout.vllm.tensor_parallel_size=4")
    rank0, engine_gpus, rest = plan.groups
    assert not any(r.label.startswith("rollout copy") for r in rank0.held)  # vLLM: weights streamed, no copy
    assert (rank0.count, engine_gpus.count, rest.count) == (1, 3, 12)  # vLLM TP 4 on GPUs 0–3
    assert any(r.label.startswith("vLLM") for r in engine_gpus.held)
    assert not any(r.label.startswith("vLLM") for r in rest.held)
    # 2 engines of TP 4 on GPUs 0–7; 3 of TP 4 do not fit beside 8 training ranks; Ray places them elsewhere
    *_, plan = plan_of(PPO_13B, 16, 80, "--rollout.vllm.tensor_parallel_size=4", "--rollout.vllm.engines=2")
    assert [g.count for g in plan.groups] == [1, 7, 8]
    *_, plan = plan_of(PPO_13B, 16, 80, "--rollout.vllm.tensor_parallel_size=4", "--rollout.vllm.engines=3")
    assert any("3 vLLM engine(s) × tensor_parallel_size 4 need 12 GPUs" in p for p in plan.problems)
    *_, plan = plan_of(PPO_13B, 16, 80, "--rollout.vllm.placement=ray", "--rollout.vllm.engines=3")
    assert not plan.problems and not any(r.label.startswith("vLLM") for g in plan.groups for r in g.held)
    w, _, plan = plan_of(PPO_13B, 16, 80, "--rollout.backend=hf")
    copy = next(r.bytes for r in plan.groups[0].held if r.label.startswith("rollout copy"))
    assert copy == 4 * w.trained[0].params


def test_sharding_and_checkpointing_shrink_a_7b_sft_plan() -> None:
    sft = ROOT / "configs/sft/tulu3_8b.yaml"
    *_, zero2 = plan_of(sft, 8, 80, "--train.sharding=zero2")
    *_, fsdp2 = plan_of(sft, 8, 80, "--train.sharding=fsdp2")
    *_, ckpt = plan_of(sft, 8, 80, "--train.sharding=fsdp2", "--train.activation_checkpointing=true")
    assert zero2.worst.total > fsdp2.worst.total > ckpt.worst.total
    assert ckpt.fits


def test_dpo_reference_pass_is_a_phase_without_optimizer_states() -> None:
    *_, plan = plan_of(ROOT / "configs/dpo/olmo2_7b.yaml", 8, 80)
    phase = next(p for p in plan.groups[0].phases if p.name.startswith("reference log-probs, 8 pairs"))
    assert phase.absent == ("gradients", "optimizer states")


def test_check_fits_refuses_and_can_be_told_not_to() -> None:
    _, cfg = load_stage_config(PPO_13B, DDP)
    with pytest.raises(DoesNotFit, match="smallest layout that fits: 16 GPUs"):
        check_fits(cfg, 16, 80 * GB)
    cfg.train.skip_plan_check = True
    check_fits(cfg, 16, 80 * GB)
    _, small = load_stage_config(ROOT / "configs/ppo/olmo2_1b_rlvr_cluster.yaml", [])
    check_fits(small, 8, 80 * GB)


def test_stage_detection(tmp_path: Path) -> None:
    assert load_stage_config(ROOT / "configs/rm/tulu3_8b.yaml", [])[0] == "rm"  # by its folder
    assert load_stage_config(ROOT / "configs/sft/tiny.yaml", [])[0] == "sft"  # by its sft section
    assert load_stage_config(ROOT / "configs/pretrain/olmo2_7b.yaml", [])[0] == "pretrain"
    with pytest.raises(ConfigError, match="pipeline config"):
        load_stage_config(ROOT / "configs/pipeline/olmo2_7b.yaml", [])
    elsewhere = tmp_path / "rm.yaml"
    elsewhere.write_text((ROOT / "configs/rm/tulu3_8b.yaml").read_text())
    with pytest.raises(ConfigError, match="--stage"):
        load_stage_config(elsewhere, [])
    assert load_stage_config(elsewhere, [], "rm")[0] == "rm"


def test_model_shapes(tmp_path: Path) -> None:
    assert model_shape("allenai/OLMo-2-1124-13B-DPO", "policy") == OLMO2_SHAPES["13B"]
    with pytest.raises(ConfigError, match="no built-in shape"):
        model_shape("someone/unknown-model", "policy")
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "vocab_size": 300, "torch_dtype": "bfloat16"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")
    shape = model_shape(str(tmp_path), "init_from")
    assert (shape.hidden, shape.kv_dim, shape.dtype_bytes) == (64, 32, 2)


def test_command_prints_a_plan_and_rejects_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert rlvr_main(["plan", "--config", str(PPO_13B), "--gpus", "16", "--gpu-memory", "80", *DDP]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "smallest layout that fits: 16 GPUs" in out
    assert (
        rlvr_main(["plan", "--config", str(tmp_path / "missing.yaml"), "--gpus", "8", "--gpu-memory", "80"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert (
        rlvr_main(["plan", "--config", str(PPO_13B), "--gpus", "12", "--gpu-memory", "80", "--nodes", "5"])
        == 2
    )
    assert "nodes" in capsys.readouterr().err


def test_the_training_core_checks_the_plan_on_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On CUDA devices `TrainCore` refuses a layout that cannot fit, before loading any model."""
    import torch

    from rlvr.train import core

    class Props:
        total_memory = 80 * 10**9

    monkeypatch.setattr(core, "init_distributed", lambda *a, **k: core.Dist(0, 16, torch.device("cuda", 0)))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    _, cfg = load_stage_config(PPO_13B, [f"--runs_root={tmp_path}", *DDP])
    with pytest.raises(DoesNotFit, match="skip_plan_check"):
        core.TrainCore(cfg, cfg.train)
    cfg.train.skip_plan_check = True
    assert core.TrainCore(cfg, cfg.train).dist.world == 16
