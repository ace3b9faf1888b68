import itertools
import math

import pytest
import torch

from base_model.config import OptimConfig
from base_model.data import IGNORE_INDEX
from base_model.loss import lm_loss
from base_model.model import ModelConfig, build_model
from rlvr.train.optim import ScheduleConfig, build_optimizer, lr_at, param_groups


def test_cosine_with_warmup_decays_to_ten_percent() -> None:
    cfg = ScheduleConfig(kind="cosine", warmup_steps=10, final_lr_ratio=0.1)
    lrs = [lr_at(s, 1.0, 100, cfg) for s in range(100)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # the first update already moves
    assert lrs[10] == pytest.approx(1.0)
    assert lr_at(55, 1.0, 100, cfg) == pytest.approx(0.55)  # halfway down the cosine: mean of peak and floor
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lr_at(100, 1.0, 100, cfg) == pytest.approx(0.1)
    assert min(lrs[10:]) > 0.1


def test_stage2_linear_to_zero_without_warmup() -> None:
    cfg = ScheduleConfig(kind="linear", warmup_steps=0, final_lr_ratio=0.0)
    assert lr_at(0, 2e-4, 50, cfg) == pytest.approx(2e-4)
    assert lr_at(25, 2e-4, 50, cfg) == pytest.approx(1e-4)
    assert lr_at(50, 2e-4, 50, cfg) == 0.0
    diffs = [lr_at(s, 2e-4, 50, cfg) - lr_at(s + 1, 2e-4, 50, cfg) for s in range(49)]
    assert diffs == pytest.approx([4e-6] * 49)


def test_constant_schedule() -> None:
    assert lr_at(7, 0.5, 10, ScheduleConfig(kind="constant")) == 0.5


def test_no_weight_decay_on_embeddings_and_norms_by_flag() -> None:
    model = build_model(ModelConfig(d_model=64, n_layers=1, n_heads=2, mlp_hidden=64, vocab_size=64))
    embedding = model.model.embed_tokens.weight
    norm = model.model.norm.weight

    def decayed(cfg: OptimConfig) -> set[int]:
        return {id(p) for g in param_groups(model, cfg) if g["weight_decay"] > 0 for p in g["params"]}

    recipe = decayed(OptimConfig())  # OLMo 2: everything but the embedding
    assert id(embedding) not in recipe
    assert id(norm) in recipe and id(model.lm_head.weight) in recipe
    gpt = decayed(OptimConfig(decay_norms=False))
    assert id(norm) not in gpt and id(model.lm_head.weight) in gpt
    groups = param_groups(model, OptimConfig())
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = build_optimizer(model, OptimConfig())
    assert optimizer.defaults["betas"] == (0.9, 0.95) and optimizer.defaults["eps"] == 1e-8


def test_loss_sums_and_ignores_masked_labels() -> None:
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[0, 2] = IGNORE_INDEX
    ce_sum, z_sum, n = lm_loss(logits, labels)
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert n == 7
    assert ce_sum.item() == pytest.approx(reference.item(), rel=1e-6)
    lse = torch.logsumexp(logits[:, :-1], -1)
    keep = labels[:, 1:] != IGNORE_INDEX
    assert z_sum.item() == pytest.approx((lse[keep] ** 2).sum().item(), rel=1e-6)


def test_z_loss_reaches_the_gradient() -> None:
    """d/dlogits of w·lse² is 2w·lse·softmax: the regulariser pushes every logit, not only the target."""
    torch.manual_seed(0)
    logits = (torch.randn(1, 4, 9) * 3).requires_grad_()
    labels = torch.randint(0, 9, (1, 4))
    w = 0.1
    ce_sum, z_sum, n = lm_loss(logits, labels)
    ((ce_sum + w * z_sum) / n).backward()
    with torch.no_grad():
        x = logits[:, :-1]
        p = x.softmax(-1)
        onehot = torch.nn.functional.one_hot(labels[:, 1:], 9).float()
        lse = torch.logsumexp(x, -1, keepdim=True)
        expected = (p - onehot + 2 * w * lse * p) / n
    assert torch.allclose(logits.grad[:, :-1], expected, atol=1e-6)
    assert torch.count_nonzero(logits.grad[:, -1]) == 0  # the last position has no next token
    assert not math.isclose(w * 2 * lse.abs().max().item(), 0.0)
