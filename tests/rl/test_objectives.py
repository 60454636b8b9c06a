"""The GRPO family against values worked out by hand from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch

from lm_guided_cot.rl.core import clipped_policy_loss
from lm_guided_cot.rl.objectives import (
    constant_groups,
    group_advantages,
    kl_loss,
    loss_weights,
    overlong_penalty,
)

# two questions, k = 3: scores (1, 0, 0) and (2, 2, 5)
SCORES = torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 5.0])
# three rationales of lengths 3, 1 and 2 in a [3, 4] batch
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.float32)


def test_grpo_divides_by_the_group_std():
    # group 1: mean 1/3, Bessel std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3)
    # group 2: mean 3, std sqrt((1 + 1 + 4) / 2) = sqrt(3)
    expected = [
        (2 / 3) / (math.sqrt(1 / 3) + 1e-4),
        (-1 / 3) / (math.sqrt(1 / 3) + 1e-4),
        (-1 / 3) / (math.sqrt(1 / 3) + 1e-4),
        -1 / (math.sqrt(3) + 1e-4),
        -1 / (math.sqrt(3) + 1e-4),
        2 / (math.sqrt(3) + 1e-4),
    ]
    assert group_advantages(SCORES, 3).tolist() == pytest.approx(expected, abs=1e-6)


def test_dr_grpo_only_centres():
    expected = [2 / 3, -1 / 3, -1 / 3, -1.0, -1.0, 2.0]
    assert group_advantages(SCORES, 3, scale=False).tolist() == pytest.approx(expected, abs=1e-6)


def test_a_group_of_equal_scores_gets_zero_advantages_not_nan():
    out = group_advantages(torch.tensor([0.5, 0.5, 1.0, 0.0]), 2)
    assert out[:2].tolist() == [0.0, 0.0]
    assert out[2:].tolist() == pytest.approx(
        [0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)]
    )
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(SCORES, 1)


def test_token_aggregation_weighs_every_token_alike():
    torch.testing.assert_close(loss_weights(MASK, "token"), MASK / 6)
    per_token = torch.tensor(
        [[3.0, 6.0, 9.0, 100.0], [4.0, 100.0, 100.0, 100.0], [1.0, 3.0, 100.0, 100.0]]
    )
    assert (per_token * loss_weights(MASK, "token")).sum().item() == pytest.approx(26 / 6)
    # a given divisor (the mean token count over ranks) replaces the local count
    torch.testing.assert_close(loss_weights(MASK, "token", count=12.0), MASK / 12)


def test_sequence_aggregation_is_the_mean_of_each_rationales_mean():
    per_token = torch.tensor(
        [[3.0, 6.0, 9.0, 100.0], [4.0, 100.0, 100.0, 100.0], [1.0, 3.0, 100.0, 100.0]]
    )
    loss = (per_token * loss_weights(MASK, "sequence")).sum()
    assert loss.item() == pytest.approx((6.0 + 4.0 + 2.0) / 3)


def test_constant_aggregation_divides_by_the_generation_budget():
    # 100 off the mask: a weight on a padding position would show at once
    per_token = torch.tensor(
        [[3.0, 6.0, 9.0, 100.0], [4.0, 100.0, 100.0, 100.0], [1.0, 3.0, 100.0, 100.0]]
    )
    loss = (per_token * loss_weights(MASK, "constant", max_tokens=8)).sum()
    # the real tokens' sum (18 + 4 + 4), over 3 rationales x 8: not each rationale's mean
    assert loss.item() == pytest.approx(26 / 24)
    with pytest.raises(ValueError, match="max_tokens"):
        loss_weights(MASK, "constant")


def test_rows_without_tokens_do_not_count_as_sequences():
    mask = MASK.clone()
    mask[1] = 0  # a skipped group's row
    weights = loss_weights(mask, "sequence")
    assert weights[1].sum() == 0
    assert weights.sum().item() == pytest.approx(1.0)  # two sequences, each weighing 1/2
    assert loss_weights(mask, "constant", max_tokens=4).sum().item() == pytest.approx(5 / 8)


def test_overlong_penalty_follows_dapo_equation_13():
    lengths = torch.tensor([0, 10, 12, 14, 16, 17])
    # max 16, buffer 4: 0 up to 12, then (12 - L) / 4 down to -1 at 16, -1 beyond
    expected = [0.0, 0.0, 0.0, -0.5, -1.0, -1.0]
    assert overlong_penalty(lengths, 16, 4).tolist() == pytest.approx(expected)
    with pytest.raises(ValueError, match="buffer"):
        overlong_penalty(lengths, 16, 0)


def test_constant_groups_finds_the_groups_without_signal():
    scores = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.3, 0.3])
    assert constant_groups(scores, 2).tolist() == [True, False, True]
    # against a baseline (scst's greedy reward): equal samples are constant only if it agrees
    baseline = torch.tensor([1.0, 0.0, 0.0])
    assert constant_groups(scores, 2, baseline=baseline).tolist() == [True, False, False]


def test_clip_higher_lets_positive_advantages_rise_further():
    # ratios 1.25 (a token that became likelier) with advantage +1, and 0.7 with advantage -1
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.25, 0.7]]))
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    symmetric = clipped_policy_loss(new, old, adv, mask, clip_range=0.2)
    # token 1: max(-1.25, -1.2) = -1.2; token 2: max(0.7, 0.8) = 0.8
    assert symmetric.loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    higher = clipped_policy_loss(new, old, adv, mask, clip_range=0.2, clip_range_high=0.28)
    # token 1 is now inside [0.8, 1.28]: -1.25; token 2 keeps the low clip
    assert higher.loss.item() == pytest.approx((-1.25 + 0.8) / 2)
    assert symmetric.clipfrac.item() == pytest.approx(1.0)
    assert higher.clipfrac.item() == pytest.approx(0.5)


def test_policy_loss_weights_replace_the_token_mean():
    old = torch.zeros(3, 4)
    adv = torch.tensor([[1.0], [2.0], [3.0]]).expand(3, 4)
    out = clipped_policy_loss(old, old, adv, MASK, weights=loss_weights(MASK, "sequence"))
    # ratio 1: per-token loss -A; sequence means -1, -2, -3
    assert out.loss.item() == pytest.approx(-2.0)


def test_kl_loss_is_k3_with_the_gradient_toward_the_reference():
    # two rationales, lengths 2 and 1; the policy gives its tokens log-probs -1, -2 | -0.5
    # and the reference -1.5, -1 | -0.5
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0], [-0.5, 7.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    d = torch.tensor([-0.5, 1.0, 0.0])  # log q - log p on the real tokens
    k3 = torch.exp(d) - 1 - d  # q/p - 1 - log(q/p), never negative
    token = kl_loss(logprobs, ref, mask)
    assert token.item() == pytest.approx(k3.sum().item() / 3)
    sequence = kl_loss(logprobs, ref, mask, weights=loss_weights(mask, "sequence"))
    assert sequence.item() == pytest.approx(((k3[0] + k3[1]) / 2 + k3[2]).item() / 2)
    assert kl_loss(logprobs, ref, mask, count=6.0).item() == pytest.approx(k3.sum().item() / 6)
    # d/dlogp of q/p - 1 - log(q/p) = 1 - q/p: down where the policy is above the reference,
    # up where it is below, 0 where they agree, and nothing off the mask
    (grad,) = torch.autograd.grad(token, logprobs)
    expected = torch.tensor([[1 - math.exp(-0.5), 1 - math.exp(1.0)], [0.0, 0.0]]) / 3
    torch.testing.assert_close(grad, expected)
