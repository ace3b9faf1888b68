"""PPO / GRPO pure pieces against hand-computed values (the arithmetic is in each comment)."""

import math

import pytest
import torch

from rlvr.algos.ppo.losses import (
    entropy_from_logits,
    gae_advantages,
    group_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    policy_loss,
    sequence_rewards,
    token_rewards,
    value_loss,
)
from rlvr.logprobs import token_logprobs


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def test_masked_mean():
    values, mask = t([[1, 2, 3], [4, 5, 6]]), t([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(values, mask).item() == pytest.approx(7 / 3)  # (1 + 2 + 4) / 3
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])


def test_masked_whiten_ignores_padding():
    # mean 2, unbiased variance (1 + 0 + 1) / 2 = 1: whitened [-1, 0, 1]; the padded 100 stays 0
    out = masked_whiten(t([[1, 2, 3, 100]]), t([[1, 1, 1, 0]]), eps=0.0)
    assert out.flatten().tolist() == pytest.approx([-1, 0, 1, 0])
    kept = masked_whiten(t([[1, 2, 3, 100]]), t([[1, 1, 1, 0]]), shift_mean=False, eps=0.0)
    assert kept.flatten().tolist() == pytest.approx([1, 2, 3, 0])


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("k1", math.log(2)),  # log p − log q = log 0.5 − log 0.25
        ("k2", 0.5 * math.log(2) ** 2),
        ("k3", 0.5 - 1 + math.log(2)),  # q/p − 1 − log(q/p) = 0.5 − 1 − log 0.5
    ],
)
def test_kl_estimators(estimator, expected):
    kl = kl_per_token(t([math.log(0.5)]), t([math.log(0.25)]), estimator)
    assert kl.item() == pytest.approx(expected)


def test_kl_estimators_vanish_when_policies_agree_and_unknown_name_is_an_error():
    logp = t([-0.3, -2.0])
    for estimator in ("k1", "k2", "k3"):
        assert kl_per_token(logp, logp, estimator).abs().max().item() == 0
    with pytest.raises(ValueError, match="k4"):
        kl_per_token(logp, logp, "k4")


def test_sequence_rewards_penalise_responses_without_eos():
    scores, stopped = t([1.0, 0.0, 0.5]), torch.tensor([True, True, False])
    assert sequence_rewards(scores, stopped, 10.0, -10.0).tolist() == [10.0, 0.0, -10.0]
    # RM term: 10 · score + 0.5 · 2; the penalty replaces both
    with_rm = sequence_rewards(scores, stopped, 10.0, -10.0, rm_scores=t([2, 2, 2]), rm_multiplier=0.5)
    assert with_rm.tolist() == [11.0, 1.0, -10.0]


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = t([[0.1, 0.2, 0.3], [0.5, 0.0, 9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards = token_rewards(t([10.0, 5.0]), kl, mask, beta=0.1)
    # row 0: −0.1·kl, last token + 10; row 1: last real token is index 1, padding stays 0
    assert rewards.flatten().tolist() == pytest.approx([-0.01, -0.02, 9.97, -0.05, 5.0, 0.0])


def test_gae_hand_values():
    # gamma 1, lam 0.95, V = [0.5, 0.6, 0.7], reward 1 at the end:
    # delta2 = 1 − 0.7 = 0.3; delta1 = 0.7 − 0.6 = 0.1; delta0 = 0.6 − 0.5 = 0.1
    # A2 = 0.3, A1 = 0.1 + 0.95·0.3 = 0.385, A0 = 0.1 + 0.95·0.385 = 0.46575; R = A + V
    adv, ret = gae_advantages(t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]]), t([[1, 1, 1]]), gamma=1.0, lam=0.95)
    assert adv.flatten().tolist() == pytest.approx([0.46575, 0.385, 0.3])
    assert ret.flatten().tolist() == pytest.approx([0.96575, 0.985, 1.0])


def test_gae_stops_at_the_end_of_each_response_and_discounts():
    # the padded value 9 must not leak in: V after the last real token is 0
    # delta1 = 1 − 0.6 = 0.4, delta0 = 0.6 − 0.5 = 0.1, A0 = 0.1 + 0.5·0.4 = 0.3
    adv, ret = gae_advantages(t([[0, 1, 0]]), t([[0.5, 0.6, 9.0]]), t([[1, 1, 0]]), gamma=1.0, lam=0.5)
    assert adv.flatten().tolist() == pytest.approx([0.3, 0.4, 0.0])
    assert ret.flatten().tolist() == pytest.approx([0.8, 1.0, 0.0])
    # gamma 0.9, lam 1, V = 0: A_t = 0.9^(2−t)
    adv, _ = gae_advantages(t([[0, 0, 1]]), t([[0, 0, 0]]), t([[1, 1, 1]]), gamma=0.9, lam=1.0)
    assert adv.flatten().tolist() == pytest.approx([0.81, 0.9, 1.0])


def test_group_advantages():
    # group 1: mean 0.75, unbiased std sqrt((3·0.25² + 0.75²)/3) = 0.5; group 2: all equal → 0
    scores = t([1, 0, 1, 1, 0, 0, 0, 0])
    assert group_advantages(scores, 4, eps=0.0)[:4].tolist() == pytest.approx([0.5, -1.5, 0.5, 0.5])
    assert group_advantages(scores, 4)[4:].tolist() == [0, 0, 0, 0]
    assert group_advantages(scores, 4, scale=False)[:4].tolist() == pytest.approx([0.25, -0.75, 0.25, 0.25])
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(scores, 3)


def test_policy_loss_clips_and_reports():
    old = t([[-1.0, -1.0, -1.0, -1.0]])
    # ratios 1.5, 0.5, 0.5 and a padded 50 that must not count
    new = old + t([[math.log(1.5), math.log(0.5), math.log(0.5), math.log(50.0)]])
    adv = t([[1.0, 1.0, -1.0, 1.0]])
    mask = t([[1, 1, 1, 0]])
    loss, stats = policy_loss(new, old, adv, mask, clip_eps=0.2)
    # max(−A·ρ, −A·clip(ρ)): max(−1.5, −1.2) = −1.2; max(−0.5, −0.8) = −0.5; max(0.5, 0.8) = 0.8
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    approx_kl = 0.5 * (math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 3
    assert stats["approx_kl"].item() == pytest.approx(approx_kl)
    assert stats["ratio_max"].item() == pytest.approx(1.5)
    assert stats["ratio_min"].item() == pytest.approx(0.5)
    assert stats["ratio_mean"].item() == pytest.approx(2.5 / 3)


def test_policy_gradient_flows_only_through_unclipped_tokens():
    old = t([0.0, 0.0])
    new = t([math.log(1.5), math.log(1.1)]).requires_grad_()
    loss, _ = policy_loss(new, old, t([1.0, 1.0]), t([1, 1]), clip_eps=0.2)
    loss.backward()
    # token 0 is clipped (ratio 1.5 > 1.2 with A > 0): no gradient; token 1: d(−ρ/2)/dlogp = −1.1/2
    assert new.grad.tolist() == pytest.approx([0.0, -0.55])


def test_value_loss_is_clipped_around_the_old_values():
    values, old, returns = t([1.0, 0.0, 0.6]), t([0.5, 0.5, 0.5]), t([2.0, 0.0, 0.6])
    loss, stats = value_loss(values, old, returns, t([1, 1, 1]), clip_eps=0.2)
    # token 0: clip(1.0) = 0.7, max((1−2)², (0.7−2)²) = 1.69; token 1: clip(0) = 0.3, max(0, 0.09) = 0.09;
    # token 2: inside the range, error 0
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.09 + 0.0) / 3)
    assert stats["vf_clipfrac"].item() == pytest.approx(2 / 3)


def test_entropy_and_temperature_scaled_logprobs():
    assert entropy_from_logits(t([[0, 0, 0, 0]])).item() == pytest.approx(math.log(4))
    logits = t([[0.0, math.log(3.0)]])
    assert token_logprobs(logits, torch.tensor([1])).item() == pytest.approx(math.log(0.75))
    # temperature 2: logits [0, log 3 / 2] → p1 = √3 / (1 + √3)
    p1 = math.sqrt(3) / (1 + math.sqrt(3))
    assert token_logprobs(logits, torch.tensor([1]), temperature=2.0).item() == pytest.approx(math.log(p1))
