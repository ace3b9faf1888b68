"""`rlvr plan`: the memory each GPU needs for a config's layout, before anything runs.

For every stage (pretrain, sft, dpo, rm, ppo/grpo) the planner counts, per device, the bytes of the
trained models' weights, gradients and optimizer states under the config's `train.sharding`, the
activations of one micro-batch (with or without checkpointing), PPO's reference and value models,
the rollout copy and the vLLM engine's weights and KV cache on the GPUs it occupies — then says
whether the largest device fits, and searches the smallest layout that does when it does not.

- `shapes`: model shapes from config.json or the built-in OLMo 2 sizes;
- `memory`: the byte formulas (pure functions);
- `workload`: a config's stage, models and sizes, and the layout knobs;
- `devices`: the per-device plan and its phases;
- `search`: the smallest fitting layout and `check_fits`, the trainers' start-up check;
- `cli`: the command.

docs/plan.md has the formulas, how to read the output and the measured validation.
"""

from rlvr.plan.cli import main
from rlvr.plan.search import DoesNotFit, check_fits

__all__ = ["DoesNotFit", "check_fits", "main"]
