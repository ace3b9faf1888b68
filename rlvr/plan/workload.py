"""What a config asks of the devices: its stage, its models and their shapes, its sequence sizes
(`Workload`), and the knobs the planner may turn (`Layout`).

The stage of a config file is found, in order, from: `--stage`; a key only one stage has (`rollout`,
`policy` or `algo`: ppo; `model`: pretrain; `dpo`; `sft`); the folder it sits in
(`configs/<stage>/`). A reward-model config has no section of its own, so outside `configs/rm/` it
needs `--stage rm`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rlvr.config import ConfigError, load_config, read_yaml
from rlvr.plan.memory import DeepSpeedSizes, lora_params
from rlvr.plan.shapes import DTYPE_BYTES, Head, ModelShape, model_shape
from rlvr.train.config import Sharding

Stage = Literal["pretrain", "sft", "dpo", "rm", "ppo"]
STAGES: tuple[Stage, ...] = get_args(Stage)
NODE = 8
"""GPUs per node when the caller does not say: the planner adds GPUs in whole nodes of 8."""


def config_class(stage: Stage) -> type:
    """The dataclass a stage's config file is read into (imported on demand: each pulls in torch)."""
    if stage == "pretrain":
        from base_model.config import PretrainConfig

        return PretrainConfig
    if stage == "ppo":
        from rlvr.algos.ppo.config import PPOConfig

        return PPOConfig
    if stage == "sft":
        from rlvr.algos.sft import SFTConfig

        return SFTConfig
    if stage == "dpo":
        from rlvr.algos.dpo import DPOConfig

        return DPOConfig
    from rlvr.algos.reward_model import RewardModelConfig

    return RewardModelConfig


def detect_stage(path: Path, data: dict[str, Any]) -> Stage:
    """The stage a config file configures (the module docstring's rules)."""
    if "stages" in data or "data_source" in data:
        raise ConfigError(
            f"{path} is a pipeline config; plan each stage's own file (its sft/dpo/rm/ppo `config:` entries)"
        )
    if data.keys() & {"rollout", "policy", "algo"}:
        return "ppo"
    if "model" in data:
        return "pretrain"
    for stage in ("dpo", "sft"):
        if stage in data:
            return stage  # type: ignore[return-value]
    folder = path.resolve().parent.name
    if folder in STAGES:
        return folder  # type: ignore[return-value]
    raise ConfigError(
        f"cannot tell which stage {path} configures (no stage-only key, not under configs/<stage>/); "
        f"pass --stage {'|'.join(STAGES)}"
    )


def load_stage_config(path: Path, overrides: list[str], stage: Stage | None = None) -> tuple[Stage, Any]:
    """`(stage, config)` of a config file with `--key=value` overrides, checked as its trainer checks it."""
    data = read_yaml(path)
    stage = stage or detect_stage(path, data)
    return stage, load_config(config_class(stage), path, overrides)


def stage_of(cfg: Any) -> Stage:
    """The stage of a loaded config object (what a trainer holds)."""
    for stage in STAGES:
        if isinstance(cfg, config_class(stage)):
            return stage
    raise TypeError(f"rlvr plan does not know the config type {type(cfg).__name__}")


@dataclass(frozen=True)
class Model:
    role: str
    """policy, value, reference, reward model, or model (the single model of pretrain/sft/dpo/rm)."""
    name: str
    """The config's value: a path or hub name (pretraining: the model section)."""
    shape: ModelShape
    head: Head
    lora: int = 0
    """Trained adapter parameters when LoRA is on (the base weights are then frozen)."""

    @property
    def params(self) -> int:
        return self.shape.params(self.head)


@dataclass(frozen=True)
class Engine:
    """The vLLM rollout engines rank 0 starts (PPO, `rollout.backend: vllm`)."""

    dtype: str
    dtype_bytes: int
    max_model_len: int
    count: int = 1
    """`rollout.vllm.engines`, each over `tensor_parallel_size` GPUs."""
    separate: bool = False
    """`placement: ray`: the engines run on GPUs of their own, outside the training layout."""


@dataclass(frozen=True)
class Workload:
    stage: Stage
    trained: tuple[Model, ...]
    seq_len: int
    """Tokens per sequence at most: the longest micro-batch the data allows."""
    sequences_per_example: int
    """2 for DPO and RM (a pair's two sides run in one forward), else 1."""
    bf16: bool
    attention: Literal["sdpa", "eager"]
    batch: int
    """Examples per optimizer step over every process (PPO: episodes per step)."""
    batch_split: int = 1
    loss_len: int = 0
    """Positions of a sequence whose logits the loss reads (0: all; PPO: the response's)."""
    loss_in_autocast: bool = True
    """The trainer computes the loss inside the autocast region (SFT, DPO, RM), so autocast's weight
    copies live through it (`rlvr.plan.memory.activations`)."""
    """PPO: `loss.minibatches`; a step's batch splits into batch_split × processes equal shares."""
    deepspeed: DeepSpeedSizes = field(default_factory=DeepSpeedSizes)
    reference: Model | None = None
    """PPO's frozen reference (the policy's shape)."""
    scorer: Model | None = None
    """PPO's reward model on rank 0 when the RM term or the reward_model verifier needs it."""
    engine: Engine | None = None
    hf_rollout: tuple[int, int] | None = None
    """PPO with `rollout.backend: hf`: rank 0 generates `(sequences, new tokens)` with transformers."""
    dpo_reference_pass: bool = False
    """DPO computes its cached reference log-probs with the trained model before the first step."""


@dataclass(frozen=True)
class Layout:
    """What the planner may change to make a workload fit."""

    gpus: int
    gpus_per_node: int
    sharding: Sharding
    activation_checkpointing: bool
    offload_optimizer: bool
    micro_batch_size: int
    engine_tp: int = 1
    engine_utilization: float = 0.0
    reference_batch_size: int = 0
    """DPO's pairs per forward of the reference pass."""

    @property
    def nodes(self) -> int:
        return -(-self.gpus // self.gpus_per_node)

    def describe(self) -> str:
        if self.gpus == 1:
            return "1 GPU"
        return f"{self.gpus} GPUs ({self.nodes} node{'s' if self.nodes > 1 else ''} × {self.gpus_per_node})"

    def overrides(self, base: Layout) -> list[str]:
        """The `--key=value` overrides that turn `base` into this layout."""
        engine = "rollout.vllm."
        keys = [("train.sharding", "sharding", str), ("train.activation_checkpointing", "activation_checkpointing", _yaml),
                ("train.offload_optimizer", "offload_optimizer", _yaml), ("train.micro_batch_size", "micro_batch_size", str),
                (engine + "tensor_parallel_size", "engine_tp", str), (engine + "gpu_memory_utilization", "engine_utilization", _share),
                ("dpo.reference_batch_size", "reference_batch_size", str)]  # fmt: skip
        return [f"--{key}={show(getattr(self, name))}" for key, name, show in keys
                if getattr(self, name) != getattr(base, name)]  # fmt: skip

    def launch(self) -> str:
        """How to start it: torchrun's process counts."""
        if self.nodes == 1:
            return f"torchrun --nproc_per_node {self.gpus}"
        return f"torchrun --nnodes {self.nodes} --nproc_per_node {self.gpus_per_node}"


def _yaml(value: bool) -> str:
    return "true" if value else "false"


def _share(value: float) -> str:
    return f"{value:.2f}"


def _bf16(precision: str, bf16_auto: bool) -> bool:
    return precision == "bf16" or (precision == "auto" and bf16_auto)


def read_workload(cfg: Any, stage: Stage, bf16_auto: bool = True) -> Workload:
    """The workload of a loaded stage config. `bf16_auto`: what `precision: auto` resolves to (GPUs
    with bf16: True)."""
    t = cfg.train
    common = {"stage": stage, "bf16": _bf16(t.precision, bf16_auto), "attention": t.attention,
              "deepspeed": DeepSpeedSizes.from_json(t.deepspeed)}  # fmt: skip
    if stage == "pretrain":
        m = cfg.model
        shape = ModelShape(m.d_model, m.mlp_hidden, m.n_layers, m.n_heads, m.n_kv_heads or m.n_heads, m.vocab_size,
                           source="the config's model section")  # fmt: skip
        return Workload(trained=(Model("model", "model section", shape, "lm"),), seq_len=cfg.data.seq_len,
                        sequences_per_example=1, batch=t.global_batch_size, loss_in_autocast=False, **common)  # fmt: skip
    if stage == "ppo":
        return _ppo_workload(cfg, common)
    head: Head = "score" if stage == "rm" else "lm"
    shape = model_shape(cfg.init_from, "init_from")
    lora = lora_params(shape, cfg.lora.r, cfg.lora.target_modules) if cfg.lora.enabled else 0
    return Workload(
        trained=(Model("model", cfg.init_from, shape, head, lora),),
        seq_len=cfg.data.max_length,
        sequences_per_example=1 if stage == "sft" else 2,
        batch=t.batch_size,
        dpo_reference_pass=stage == "dpo" and cfg.dpo.loss_type != "simpo",
        **common,
    )


def _ppo_workload(cfg: Any, common: dict[str, Any]) -> Workload:
    policy = Model("policy", cfg.policy, model_shape(cfg.policy, "policy"), "lm")
    trained = [policy]
    if cfg.algo == "ppo":
        source = cfg.reward_model if cfg.value_init == "reward_model" else cfg.policy
        shape = model_shape(source, "reward_model" if cfg.value_init == "reward_model" else "policy")
        trained.append(Model("value", source, shape, "score"))
    scorer = None
    if cfg.reward.rm_multiplier and cfg.reward_model:
        scorer = Model(
            "reward model", cfg.reward_model, model_shape(cfg.reward_model, "reward_model"), "score"
        )
    r = cfg.rollout
    episodes = r.prompts_per_step * r.samples_per_prompt
    engine = hf = None
    if r.backend == "vllm":
        dtype = r.vllm.dtype
        engine = Engine(dtype, DTYPE_BYTES.get(dtype, policy.shape.dtype_bytes), r.vllm.max_model_len,
                        r.vllm.engines, r.vllm.placement == "ray")  # fmt: skip
    else:
        hf = (episodes, min(r.max_response_tokens, r.max_total_tokens))
    return Workload(
        trained=tuple(trained),
        seq_len=r.max_total_tokens,
        sequences_per_example=1,
        batch=episodes,
        batch_split=cfg.loss.minibatches,
        loss_len=min(r.max_response_tokens, r.max_total_tokens),
        loss_in_autocast=False,
        reference=dataclasses.replace(policy, role="reference"),
        scorer=scorer,
        engine=engine,
        hf_rollout=hf,
        **common,
    )


def read_layout(cfg: Any, stage: Stage, gpus: int, nodes: int | None = None) -> Layout:
    """The layout a loaded config asks for on `gpus` GPUs spread evenly over `nodes` machines
    (default: as few as hold 8 each, or one when they do not split evenly)."""
    t = cfg.train
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: need at least 1 GPU")
    if nodes is None:
        nodes = -(-gpus // NODE)
        nodes = nodes if gpus % nodes == 0 else 1
    if nodes < 1 or gpus % nodes:
        raise ConfigError(f"{gpus} GPUs do not split evenly over {nodes} nodes")
    per_node = gpus // nodes
    extra = {}
    if stage == "ppo" and cfg.rollout.backend == "vllm":
        v = cfg.rollout.vllm
        extra = {"engine_tp": v.tensor_parallel_size, "engine_utilization": v.gpu_memory_utilization}
    if stage == "dpo":
        extra = {"reference_batch_size": cfg.dpo.reference_batch_size}
    return Layout(
        gpus,
        per_node,
        t.sharding,
        t.activation_checkpointing,
        t.offload_optimizer,
        t.micro_batch_size,
        **extra,
    )
