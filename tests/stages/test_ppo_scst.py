"""Stage 2 with a self-critical baseline (``advantage: scst``): each sampled rationale is judged
against the rationale the policy writes greedily, the one validation and test read."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.stages import PPOConfig
from lm_guided_cot.stages.ppo.rollout import advantages_and_returns
from tests.stage_helpers import (
    Recorder,
    attached_ppo,
    one_question,
    ppo_datamodule,
    quiet_trainer,
    rationale_labels,
    vowel_ppo,
)


class RowReward:
    """Scores given in advance, one per row of the reward call (the k samples, then the
    greedy rationale of each question); records what it was asked."""

    name = "fixed"

    def __init__(self, scores: list[float]) -> None:
        self.scores = torch.tensor(scores)
        self.asked: list[list[str]] = []

    def __call__(self, records, rationales):
        self.asked.append(list(rationales))
        total = self.scores[: len(rationales)].clone()
        return RewardOutput(total, {self.name: total.clone()}, {"rationales_scored": len(total)})

    def usage(self):
        return {}


def _scst_module(tiny_causal_dir, scores, **ppo):
    """A module whose 4 samples have lengths 5, 2, 3, 4 and whose greedy rationale has 6
    tokens; records the decoding settings of each generation."""
    reward = RowReward(scores)
    settings = dict(advantage="scst", whiten_advantages=False)
    module = attached_ppo(tiny_causal_dir, reward, **{**settings, **ppo})
    configs = []

    def generate(input_ids, attention_mask, config=None, **kwargs):
        configs.append(config)
        lengths = [5, 2, 3, 4] if len(input_ids) == 4 else [6]
        return rationale_labels(module.policy, lengths)

    module.policy.generate = generate
    return module, reward, configs


def test_each_sample_is_judged_against_the_greedy_rationale(tiny_causal_dir):
    module, reward, configs = _scst_module(tiny_causal_dir, [1.0, 0.0, 0.5, 1.0, 0.5])
    roll = module.rollout(one_question(module.policy))
    assert roll.advantages[:, 0].tolist() == pytest.approx([0.5, -0.5, 0.0, 0.5])
    assert roll.greedy_scores.tolist() == [0.5]
    assert roll.raw_scores.tolist() == [1.0, 0.0, 0.5, 1.0]  # the samples' rows only
    # one reward call: the 4 samples, then the greedy rationale, decoded as validation does
    assert len(reward.asked) == 1 and len(reward.asked[0]) == 5
    assert configs[0].do_sample and configs[1] == module.eval_generation
    assert not configs[1].do_sample


def test_samples_that_agree_with_each_other_still_learn_against_the_greedy_one(
    tiny_causal_dir,
):
    # RLOO would give these four equal rewards advantages of 0; all four beat the greedy one
    module, _, _ = _scst_module(tiny_causal_dir, [1.0, 1.0, 1.0, 1.0, 0.0])
    roll = module.rollout(one_question(module.policy))
    assert roll.advantages[:, 0].tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("scores", "kept"),
    [([0.5, 0.5, 0.5, 0.5, 0.5], False), ([0.5, 0.5, 0.5, 0.5, 0.0], True)],
)
def test_skip_drops_a_group_only_when_it_also_equals_the_greedy_reward(
    tiny_causal_dir, scores, kept
):
    module, _, _ = _scst_module(tiny_causal_dir, scores, dynamic_sampling="skip")
    roll = module.rollout(one_question(module.policy))
    assert roll.keep.tolist() == [kept] * 4
    assert roll.groups["groups_skipped"] == int(not kept)


def test_the_greedy_baseline_is_scaled_as_the_samples_are_and_left_out_of_the_statistics(
    tiny_causal_dir,
):
    module, _, _ = _scst_module(
        tiny_causal_dir, [1.0, 0.0, 1.0, 0.0, 3.0], reward_scaling="running_std"
    )
    roll = module.rollout(one_question(module.policy))
    assert module.reward_stats.count == 4  # the samples' 4 scores, not the baseline's
    std = max(module.reward_stats.std, module.ppo.reward_std_floor)
    expected = [(s - 3.0) / std for s in (1.0, 0.0, 1.0, 0.0)]
    assert roll.advantages[:, 0].tolist() == pytest.approx(expected, rel=1e-5)


def test_scst_advantages_of_hand_made_scores_keep_their_sign_when_whitened():
    config = PPOConfig(samples_per_question=2, advantage="scst")
    scores = torch.tensor([1.0, 1.0, 0.0, 1.0])
    mask = torch.ones(4, 3)
    advantages, returns = advantages_and_returns(
        config,
        scores,
        torch.zeros(4, 3),
        None,
        mask,
        0.0,
        lambda t: t,
        None,
        torch.tensor([0.0, 1.0]),
    )
    per_rationale = advantages[:, 0]
    # [1, 1, -1, 0] divided by a positive scale: whitening is by scale only, never centred
    assert per_rationale[0] > 0 and per_rationale[1] == per_rationale[0]
    assert per_rationale[2] == -per_rationale[0] and per_rationale[3] == 0
    assert torch.equal(returns, torch.zeros(4, 3))


def test_scst_takes_one_sample_a_question_and_refuses_stale_rewards():
    assert PPOConfig(advantage="scst", samples_per_question=1).whiten
    with pytest.raises(ConfigurationError, match=r"scst.*max_staleness"):
        PPOConfig(advantage="scst", samples_per_question=2, max_staleness=1)


def test_reward_rises_under_scst_and_the_greedy_reward_is_logged(
    warm_started, shared_data, tmp_path
):
    L.seed_everything(0)
    recorder = Recorder()
    module = vowel_ppo(warm_started["causal"], tmp_path, advantage="scst")
    steps = 60
    quiet_trainer(max_steps=steps * 8, callbacks=[recorder]).fit(
        module, datamodule=ppo_datamodule(shared_data, warm_started["causal"])
    )
    rewards = [s["reward/total_mean"] for s in recorder.steps]
    greedy = [s["reward/greedy_mean"] for s in recorder.steps]
    assert len(rewards) == len(greedy) == steps

    # the greedy rationale, what the evaluation reads, is what the baseline makes rise: from
    # ~0.25 to 1.0 on this toy reward, but when depends on the float path (one thread per
    # worker, as in CI: step 9 to step 55 over seeds 0-3; with 2 threads step 26), and it
    # wavers after; so the best 5-step stretch, not a fixed window
    def start_and_best(values: list[float]) -> tuple[float, float]:
        return sum(values[:3]) / 3, max(sum(values[i : i + 5]) / 5 for i in range(steps - 4))

    first, best = start_and_best(greedy)
    assert best >= 2 * first, greedy
    first, best = start_and_best(rewards)  # the samples rise less (0.22 to ~0.4)
    assert best >= first + 0.05, rewards
    assert all(0.0 <= s["ppo/informative_groups"] <= 1.0 for s in recorder.steps)
