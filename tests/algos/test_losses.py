"""Every loss against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algos.dpo import chosen_nll, dpo_loss, ipo_loss, preference_loss, simpo_loss
from rlvr.algos.encoding import IGNORE_INDEX
from rlvr.algos.reward_model import bradley_terry_loss, init_score_head, pairwise_figures
from rlvr.algos.sft import loss_units, sft_loss
from rlvr.logprobs import label_logprobs

X = IGNORE_INDEX
LN2, LN3 = math.log(2.0), math.log(3.0)


def logits_for(probabilities: list[list[list[float]]]) -> torch.Tensor:
    """Logits whose softmax is the given distributions (log of probabilities)."""
    return torch.tensor(probabilities).log()


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# Two sequences over a 3-token vocabulary. Position t's distribution predicts label t+1.
LOGITS = logits_for(
    [
        [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]],
        [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]],
    ]
)
# Sequence 1 trains on its last two tokens (ids 0 then 1): p = 0.5, then 0.5.
# Sequence 2 trains on its second token only (id 2): p = 0.25; its last position is padding.
LABELS = torch.tensor([[X, 0, 1], [X, 2, X]])


def test_token_logprobs_pick_the_label_and_mask_the_rest() -> None:
    logps, mask = label_logprobs(LOGITS, LABELS)
    assert mask.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(logps, torch.tensor([[-LN2, -LN2], [-2 * LN2, 0.0]]))


def test_sft_sum_and_mean_reductions_by_hand() -> None:
    # NLL: sequence 1 = 2 ln2, sequence 2 = 2 ln2; 3 label tokens, 2 sequences.
    assert loss_units(LABELS, "mean") == 3 and loss_units(LABELS, "sum") == 2
    assert float(sft_loss(LOGITS, LABELS, "mean")) == pytest.approx(4 * LN2 / 3)
    assert float(sft_loss(LOGITS, LABELS, "sum")) == pytest.approx(4 * LN2 / 2)


def test_masked_tokens_do_not_reach_the_loss() -> None:
    other = LOGITS.clone()
    other[1, 2] = torch.tensor([9.0, -9.0, 0.0])  # scores the padded position only
    other[0, 0] = torch.tensor([0.0, 7.0, 7.0])  # changes label 1 of sequence 1: must change the loss
    assert float(sft_loss(other[1:], LABELS[1:], "mean")) == pytest.approx(2 * LN2)
    assert float(sft_loss(other, LABELS, "mean")) != pytest.approx(4 * LN2 / 3)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_dpo_sigmoid_by_hand() -> None:
    # log-ratios: chosen -1 - (-2) = 1, rejected -3 - (-2) = -1; beta 0.5 -> rewards 0.5, -0.5.
    out = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5)
    assert out.chosen_rewards.tolist() == [0.5] and out.rejected_rewards.tolist() == [-0.5]
    assert out.losses.item() == pytest.approx(-log_sigmoid(1.0))


def test_dpo_norm_uses_average_logps() -> None:
    # columns: chosen sum, rejected sum, chosen tokens, rejected tokens
    policy = t(-4.0, -9.0, 4.0, 3.0).reshape(1, 4)  # averages -1, -3
    reference = t(-8.0, -6.0, 4.0, 3.0).reshape(1, 4)  # averages -2, -2
    out = preference_loss("dpo_norm", policy, reference, beta=5.0)
    assert out.chosen_rewards.item() == pytest.approx(5.0) and out.rejected_rewards.item() == pytest.approx(
        -5.0
    )
    assert out.losses.item() == pytest.approx(-log_sigmoid(10.0))
    summed = preference_loss("dpo", policy, reference, beta=0.1)  # sums: (−4+8) − (−9+6) = 7
    assert summed.losses.item() == pytest.approx(-log_sigmoid(0.7))


def test_ipo_by_hand() -> None:
    # h = (−1 − −2) − (−3 − −2) = 2; beta 0.25 -> target 1/(2·0.25) = 2 -> loss 0
    assert ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.25).losses.item() == pytest.approx(0.0)
    # beta 0.5 -> target 1 -> loss (2 − 1)² = 1
    assert ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5).losses.item() == pytest.approx(1.0)
    policy, reference = t(-1.0, -3.0, 1.0, 1.0).reshape(1, 4), t(-2.0, -2.0, 1.0, 1.0).reshape(1, 4)
    assert preference_loss("ipo", policy, reference, beta=0.5).losses.item() == pytest.approx(1.0)


def test_simpo_is_reference_free_with_a_margin() -> None:
    # beta 2, averages −1 and −2, gamma/beta 0.25 -> −logsigmoid(2·(−1) − 2·(−2) − 0.5) = −logsigmoid(1.5)
    out = simpo_loss(t(-1.0), t(-2.0), beta=2.0, gamma_beta_ratio=0.25)
    assert out.losses.item() == pytest.approx(-log_sigmoid(1.5))
    policy = t(-2.0, -6.0, 2.0, 3.0).reshape(1, 4)
    assert preference_loss(
        "simpo", policy, None, beta=2.0, gamma_beta_ratio=0.25
    ).losses.item() == pytest.approx(-log_sigmoid(1.5))
    with pytest.raises(ValueError, match="needs reference"):
        preference_loss("dpo_norm", policy, None, beta=2.0)


def test_chosen_nll_is_the_mean_token_nll_of_the_chosen_answer() -> None:
    # rows: chosen sum, rejected sum, chosen tokens, rejected tokens
    policy = torch.tensor([[-6.0, -2.0, 3.0, 1.0], [-1.5, -9.0, 5.0, 4.0]])
    assert chosen_nll(policy).tolist() == pytest.approx([2.0, 0.3])


def test_preference_losses_have_gradients_towards_the_chosen_answer() -> None:
    policy = t(-3.0, -3.0, 2.0, 2.0).reshape(1, 4).requires_grad_()
    reference = t(-3.0, -3.0, 2.0, 2.0).reshape(1, 4)
    for loss_type in ("dpo_norm", "dpo", "ipo", "simpo"):
        policy.grad = None
        preference_loss(loss_type, policy, reference, beta=1.0).losses.sum().backward()
        assert policy.grad[0, 0] < 0 < policy.grad[0, 1], (
            loss_type
        )  # descending raises chosen, lowers rejected


def test_bradley_terry_by_hand() -> None:
    losses = bradley_terry_loss(t(2.0, 0.0, 1.0), t(1.0, 0.0, 3.0))
    torch.testing.assert_close(losses, t(-log_sigmoid(1.0), LN2, -log_sigmoid(-2.0)))
    assert pairwise_figures(t(2.0, 0.0, 1.0), t(1.0, 0.0, 3.0)) == pytest.approx(
        {"pairwise_accuracy": 1 / 3, "margin": (1.0 + 0.0 - 2.0) / 3}
    )


def test_score_head_init_std() -> None:
    from transformers import Olmo2Config, Olmo2ForSequenceClassification

    config = Olmo2Config(
        vocab_size=64,
        hidden_size=255,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_labels=1,
        pad_token_id=1,
    )
    model = Olmo2ForSequenceClassification(config)
    model.score = torch.nn.Linear(255, 4000, bias=False)  # many rows: a tight estimate of the std
    init_score_head(model, seed=0)
    assert model.score.weight.std().item() == pytest.approx(1 / math.sqrt(256), rel=0.02)
    assert model.score.weight.mean().item() == pytest.approx(0.0, abs=3e-4)
