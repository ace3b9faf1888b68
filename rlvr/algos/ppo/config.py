"""`rlvr ppo` configuration. Defaults are the OLMo 2 13B Instruct RLVR settings (docs/recipe.md,
"PPO with verifiable rewards"); `configs/ppo/olmo2_13b_rlvr.yaml` writes them out and
`configs/ppo/tiny.yaml` scales them to 2 CPU cores.

The KL estimator and where the KL enters (`kl.estimator`, `kl.placement`) are explicit fields, so
every run's saved `config.yaml` states them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvr.algos.common import OptimConfig
from rlvr.algos.ppo.losses import KLEstimator
from rlvr.tracking import RunConfig
from rlvr.train.config import CoreConfig
from rlvr.vllm_engine import VLLMConfig


@dataclass
class PromptDataConfig:
    train: list[str] = field(default_factory=list)
    """RLVR prompt rows (`messages`, `ground_truth`, `dataset`): local .jsonl/.parquet or hub names."""
    test: list[str] = field(default_factory=list)
    """Held-out prompts for the periodic greedy evaluation (empty: no evaluation)."""
    max_prompt_tokens: int = 2048
    """Longer prompts are left out, counted and reported at start-up."""
    on_bad_row: Literal["error", "skip"] = "error"
    limit: int | None = None
    """Read at most this many valid rows per source (quick trials)."""
    test_limit: int | None = None


@dataclass
class RolloutConfig:
    backend: Literal["vllm", "hf"] = "vllm"
    """vllm: an in-process engine whose weights are replaced (and verified) after every step; hf:
    transformers `generate` on the policy itself (tests, machines without vLLM)."""
    prompts_per_step: int = 512
    samples_per_prompt: int = 1
    """PPO: 1. GRPO: the group size (advantages are relative within each prompt's group)."""
    max_response_tokens: int = 2048
    max_total_tokens: int = 2048
    """Prompt + response; the response budget shrinks for long prompts so the sum fits."""
    temperature: float = 1.0
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    sync_tolerance: float | None = None
    """Max per-token log-prob gap between the engines and the trainer on the probe after a sync. None:
    measured when the engines start — twice their gap on the checkpoint they loaded themselves, at
    least 1e-3 (`rlvr.rollout.measured_tolerance`): 1e-3 with fp32 engines, the run's own rounding
    gap with bf16 ones."""
    probe: str = "The quick brown fox jumps over the lazy dog. 12 + 30 = 42."
    """The fixed text whose log-probs are compared after every weight sync."""
    async_steps: Literal[0, 1] = 0
    """0: each batch is sampled with the current weights (on-policy). 1: the engine samples the next
    batch while this one trains, so generation and training overlap and each batch is one optimizer
    step stale (the ratio's old log-probs are still the trainer's at the start of the update). The
    transformers backend then samples from its own copy of the policy."""


@dataclass
class RewardConfig:
    verification_reward: float = 10.0
    """Reward for a verifier score of 1 (scores in [0, 1] scale it)."""
    no_eos_penalty: float = -10.0
    """Reward for a response that hit the length limit without EOS (replaces the verifier reward)."""
    rm_multiplier: float = 0.0
    """Weight of the reward model's score: reward = `verification_reward` × verifier score + this × the
    raw RM score (the score head's logit, untransformed, as open-instruct adds it), replaced by
    `no_eos_penalty` for a response without EOS. Needs `reward_model`; the OLMo 2 runs used 0 (then
    the reward model is not loaded for scoring). Logged as `rm_score` (the batch's mean raw score)."""
    workers: int = 1
    """Processes scoring responses (`rlvr.rewards.BatchScorer`)."""
    verifier_options: dict[str, dict] = field(default_factory=dict)
    """Per-verifier options, e.g. {ifeval: {mode: loose}, math: {timeout: 5}}."""


@dataclass
class KLConfig:
    beta: float = 0.03
    estimator: KLEstimator = "k1"
    """k1 = log p − log p_ref (the reference's default), k3 = the non-negative low-variance estimator."""
    placement: Literal["reward", "loss"] = "reward"
    """reward: −beta·kl_t enters each token's reward (PPO); loss: beta·mean kl is added to the loss (GRPO)."""


@dataclass
class PPOLossConfig:
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 0.1
    epochs: int = 4
    """Optimisation passes over each rollout batch."""
    minibatches: int = 1
    """Optimizer steps per pass (each over 1/minibatches of the batch)."""
    whiten_advantages: bool = True


@dataclass
class PPOTrainConfig(CoreConfig):
    total_episodes: int = 100_000
    """Responses sampled over the whole run; steps = total_episodes / (prompts_per_step · samples_per_prompt)."""
    micro_batch_size: int = 8
    """Sequences per forward pass per process (gradient accumulation inside a minibatch)."""
    precision: Literal["auto", "bf16", "fp32"] = "fp32"
    """fp32 keeps trainer log-probs comparable with the engine's; bf16 autocast where memory needs it."""
    save_every: int = 50
    eval_every: int = 25
    eval_max_tokens: int = 256
    eval_at_start: bool = True
    """Also evaluate the starting policy (logged at step 0), so one run shows the gain."""
    compile: bool = False
    """torch.compile the policy, reference and value models (dynamic shapes: rollout lengths vary). On
    CPU ≈15 % less forward/update time (scripts/bench_rl.py) after a minute or two of compiling in the
    first steps; `train.sharding` none or ddp only."""
    threads: int | None = None
    """torch threads of the trainer (None: torch's default). On a CPU with `rollout.async_steps: 1`,
    1 leaves the other core to the vLLM worker that samples meanwhile."""
    dist_timeout: float = 3600.0
    """Seconds a process may wait in a collective under `torchrun`: the others wait for the main
    process while it samples, scores and evaluates (NCCL's default, 10 minutes, can be too short)."""


@dataclass
class PPOConfig(RunConfig):
    algo: Literal["ppo", "grpo"] = "ppo"
    policy: str = ""
    """The checkpoint RL starts from (the DPO model): a folder, a run directory (its newest checkpoint)
    or a hub name `org/name[@revision]` (`rlvr.checkpoints.resolve_model`)."""
    reward_model: str | None = None
    """The reward-model checkpoint: seeds the value model (`value_init: reward_model`) and scores the RM term."""
    value_init: Literal["reward_model", "policy", "fresh"] = "reward_model"
    """Where the value model's weights come from (PPO only): the reward model (the recipe), the policy's
    body with a new score head, or a freshly initialised model of the policy's shape (OLMo 2 init)."""
    data: PromptDataConfig = field(default_factory=PromptDataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    loss: PPOLossConfig = field(default_factory=PPOLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=4e-7, warmup_ratio=0.0))
    train: PPOTrainConfig = field(default_factory=PPOTrainConfig)

    def __post_init__(self) -> None:
        if self.algo == "grpo" and self.rollout.samples_per_prompt < 2:
            raise ValueError("algo grpo needs rollout.samples_per_prompt ≥ 2 (the group size)")
        if self.rollout.vllm.sleep and self.rollout.async_steps:
            raise ValueError(
                "rollout.vllm.sleep frees the engines' memory during the update, when async_steps 1 samples: "
                "use one of them"
            )
        if self.train.compile and self.rollout.backend != "vllm":
            raise ValueError(
                "train.compile needs rollout.backend vllm: transformers' generate through a compiled policy "
                "recompiles as its cache grows"
            )
        if self.train.compile and self.train.sharding not in ("none", "ddp"):
            raise ValueError("train.compile works with train.sharding none or ddp")
        if self.reward.rm_multiplier and not self.reward_model:
            raise ValueError("reward.rm_multiplier is set but reward_model is empty")
        rm_option = self.reward.verifier_options.get("reward_model", {}).get("model")
        if rm_option is not None and rm_option != self.reward_model:
            raise ValueError(
                "reward.verifier_options.reward_model.model differs from reward_model: PPO scores the "
                "reward_model verifier with reward_model; drop the option"
            )
        if self.algo == "ppo" and self.value_init == "reward_model" and not self.reward_model:
            raise ValueError(
                "value_init is reward_model but reward_model is empty; set it, or value_init: policy"
            )
