"""PPO math against straightforward reference loops on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from lm_guided_cot.rl.control import AdaptiveKLController, FixedKLController, RunningMoments
from lm_guided_cot.rl.core import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    generalized_advantages,
    kl_penalty,
    leave_one_out_advantages,
    masked_mean,
    masked_var,
    masked_whiten,
    scale_to_unit_std,
    token_rewards,
)

# two rationales of lengths 4 and 2 in a [2, 4] batch
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
REWARDS = torch.tensor([[0.1, -0.2, 0.0, 1.0], [0.5, 2.0, 9.0, 9.0]])
VALUES = torch.tensor([[0.3, 0.1, -0.4, 0.2], [1.0, -1.0, 7.0, 7.0]])


def _gae_reference(rewards, values, length, gamma, lam):
    advantages = [0.0] * length
    last = 0.0
    for t in reversed(range(length)):
        next_value = values[t + 1] if t + 1 < length else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        advantages[t] = last
    return advantages, [a + v for a, v in zip(advantages, values)]


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_matches_the_reference_loop_with_uneven_lengths(gamma, lam):
    advantages, returns = generalized_advantages(REWARDS, VALUES, MASK, gamma, lam)
    for row, length in enumerate([4, 2]):
        expected_adv, expected_ret = _gae_reference(
            REWARDS[row].tolist(), VALUES[row].tolist(), length, gamma, lam
        )
        assert advantages[row, :length].tolist() == pytest.approx(expected_adv, abs=1e-6)
        assert returns[row, :length].tolist() == pytest.approx(expected_ret, abs=1e-6)
        assert advantages[row, length:].abs().sum() == 0 and returns[row, length:].abs().sum() == 0


def test_masked_statistics_and_whitening():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    real = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean = sum(real) / 5
    var = sum((x - mean) ** 2 for x in real) / 4
    assert masked_mean(values, mask).item() == pytest.approx(mean)
    assert masked_var(values, mask).item() == pytest.approx(var)
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([2.0, 4.5])
    white = masked_whiten(values, mask)
    kept = white[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert kept.var().item() == pytest.approx(1.0, abs=1e-5)
    assert white[~mask.bool()].abs().sum() == 0
    unshifted = masked_whiten(values, mask, shift_mean=False)[mask.bool()]
    assert unshifted.mean().item() == pytest.approx(mean, abs=1e-5)  # scaled, mean kept


def test_policy_loss_at_and_beyond_the_clip_boundaries():
    mask = torch.ones(1, 4)
    old = torch.zeros(1, 4)
    # ratios: 1.0, 1.2 (at the edge), 1.5 (beyond), 0.5 (below)
    new = torch.log(torch.tensor([[1.0, 1.2, 1.5, 0.5]]))
    advantages = torch.tensor([[1.0, 1.0, 1.0, -1.0]])
    out = clipped_policy_loss(new, old, advantages, mask, clip_range=0.2)
    expected = []
    for r, a in zip([1.0, 1.2, 1.5, 0.5], [1.0, 1.0, 1.0, -1.0]):
        expected.append(max(-a * r, -a * min(max(r, 0.8), 1.2)))
    assert out.loss.item() == pytest.approx(sum(expected) / 4, abs=1e-6)
    assert out.clipfrac.item() == pytest.approx(2 / 4)  # 1.5 with A>0 and 0.5 with A<0
    # the clipped branch passes no gradient
    new.requires_grad_(True)
    clipped_policy_loss(new, old, advantages, mask, 0.2).loss.backward()
    assert new.grad[0, 2] == 0 and new.grad[0, 3] == 0 and new.grad[0, 0] != 0


def test_policy_loss_ignores_padding():
    old = torch.zeros(1, 3)
    new = torch.tensor([[0.1, 0.2, 5.0]])
    advantages = torch.tensor([[1.0, 1.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    out = clipped_policy_loss(new, old, advantages, mask, 0.2)
    expected = (-math.exp(0.1) + -1.2) / 2  # exp(0.2) = 1.22 is clipped to 1.2
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)


def test_value_loss_clipping():
    mask = torch.ones(1, 3)
    old = torch.tensor([[0.0, 0.0, 0.0]])
    new = torch.tensor([[0.1, 0.5, -0.5]])
    returns = torch.tensor([[1.0, 1.0, 1.0]])
    out = clipped_value_loss(new, old, returns, mask, clip_range=0.2)
    expected = 0
    for v, o, r in zip([0.1, 0.5, -0.5], [0.0] * 3, [1.0] * 3):
        vc = o + max(min(v - o, 0.2), -0.2)
        expected += max((v - r) ** 2, (vc - r) ** 2)
    assert out.loss.item() == pytest.approx(0.5 * expected / 3)
    assert out.clipfrac.item() == pytest.approx(1 / 3)  # only 0.5 is clipped to a worse value
    plain = clipped_value_loss(new, old, returns, mask, clip_range=None)
    assert plain.loss.item() == pytest.approx(0.5 * (0.81 + 0.25 + 2.25) / 3)


def test_kl_estimators():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    assert kl_penalty(logp, ref, "k1").tolist() == pytest.approx([0.5, -1.0, 0.0])
    k3 = kl_penalty(logp, ref, "k3")
    expected = [math.exp(r - p) - 1 - (r - p) for p, r in zip(logp.tolist(), ref.tolist())]
    assert k3.tolist() == pytest.approx(expected)
    assert (k3 >= 0).all()
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k2")


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = token_rewards(torch.tensor([1.0, 2.0]), kl, mask, kl_coef=0.1)
    assert rewards[0].tolist() == pytest.approx([-0.01, -0.02, 1.0 - 0.03])
    assert rewards[1].tolist() == pytest.approx([-0.05, 2.0 - 0.05, 0.0])


def test_adaptive_controller_over_several_steps_and_its_state():
    controller = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10000)
    value = 0.2
    for kl, n in [(12.0, 256), (6.0, 256), (3.0, 256), (0.0, 512)]:
        controller.update(kl, n)
        value *= 1 + min(max(kl / 6.0 - 1, -0.2), 0.2) * n / 10000
        assert controller.value == pytest.approx(value)
    restored = AdaptiveKLController(init_coef=1.0, target=1.0, horizon=1)
    restored.load_state_dict(controller.state_dict())
    restored.update(9.0, 100)
    controller.update(9.0, 100)
    assert restored.value == controller.value and restored.state_dict() == controller.state_dict()
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.05


def test_running_moments_match_the_whole_stream():
    stream = [0.5, 1.5, -2.0, 3.0, 0.0, 4.5, 1.0]
    moments = RunningMoments()
    moments.update(stream[:3])
    moments.update(stream[3:5])
    moments.update(stream[5:])
    mean = sum(stream) / len(stream)
    var = sum((x - mean) ** 2 for x in stream) / len(stream)
    assert moments.mean == pytest.approx(mean) and moments.var == pytest.approx(var)
    copy = RunningMoments()
    copy.load_state_dict(moments.state_dict())
    assert copy.std == pytest.approx(math.sqrt(var)) and copy.count == 7


def test_leave_one_out_and_explained_variance():
    scores = torch.tensor([1.0, 0.0, 0.0, 0.5, 0.5, 0.5])
    advantages = leave_one_out_advantages(scores, group_size=3)
    assert advantages.tolist() == pytest.approx([1.0, -0.5, -0.5, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        leave_one_out_advantages(scores, 1)
    mask = torch.ones(1, 4)
    targets = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert explained_variance(targets, targets, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(targets, 2.5), targets, mask).item() == pytest.approx(
        0.0
    )


def test_rank_split_statistics_equal_the_whole_batch():
    """Two "ranks" holding halves of a batch: with the mean token count as divisor, their
    averaged losses are the whole batch's; with summed statistics, so is the whitening."""
    torch.manual_seed(0)
    values = torch.randn(6, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]] * 2).float()
    mask[4, 2:4] = 1  # uneven token counts between the halves
    halves = [(values[:3], mask[:3]), (values[3:], mask[3:])]
    mean_count = (mask[:3].sum() + mask[3:].sum()) / 2
    averaged = sum(masked_mean(v, m, count=mean_count) for v, m in halves) / 2
    assert averaged == pytest.approx(float(masked_mean(values, mask)), abs=1e-6)
    naive = sum(masked_mean(v, m) for v, m in halves) / 2
    assert naive != pytest.approx(float(masked_mean(values, mask)), abs=1e-3)

    # an all_reduce that adds the other half's sums: whitening by the whole batch's statistics
    def all_reduce_with(other_values, other_mask):
        def reduce(tensor):
            if tensor.ndim == 1:  # (sum, count)
                return tensor + torch.stack([(other_values * other_mask).sum(), other_mask.sum()])
            mean = (values * mask).sum() / mask.sum()
            return tensor + (((other_values - mean) ** 2) * other_mask).sum()

        return reduce

    whole = masked_whiten(values, mask)
    first = masked_whiten(values[:3], mask[:3], all_reduce=all_reduce_with(values[3:], mask[3:]))
    assert torch.allclose(first, whole[:3], atol=1e-5)


def test_entropy_of_known_distributions_in_and_out_of_chunks():
    vocab = 50
    uniform = torch.zeros(1, 1, vocab)
    certain = torch.full((1, 1, vocab), -1e4)
    certain[..., 3] = 0.0
    two_way = torch.full((1, 1, vocab), -1e4)
    two_way[..., :2] = 0.0
    logits = torch.cat([uniform, certain, two_way])
    entropy = entropy_from_logits(logits)
    assert entropy.shape == (3, 1)
    assert entropy[:, 0].tolist() == pytest.approx([math.log(vocab), 0.0, math.log(2)], abs=1e-5)
    # random logits against -sum p log p, whole and a row at a time
    rand = torch.randn(5, 7, vocab, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(rand, -1)
    expected = -(p * torch.log(p)).sum(-1)
    assert torch.allclose(entropy_from_logits(rand), expected, atol=1e-5)
    assert torch.allclose(entropy_from_logits(rand, chunk_rows=2), expected, atol=1e-5)


def test_scale_to_unit_std_over_the_masked_values_only():
    values = torch.tensor([1.0, -1.0, 3.0, 50.0, -70.0])
    rows = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])  # the last two do not train
    scaled = scale_to_unit_std(values, mask=rows)
    std = torch.tensor([1.0, -1.0, 3.0]).std()
    torch.testing.assert_close(scaled[:3], values[:3] / std)
