"""Stage 2 with the GRPO family: group advantages, clip-higher, the overlong penalty and dynamic
sampling, each through PPOModule as a run uses it."""

from __future__ import annotations

import math

import pytest
import torch

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.stages import PPOConfig, PPOModule
from lm_guided_cot.stages.ppo.rollout import PPOStats, Sampled, advantages_and_returns
from tests.stage_helpers import (
    FixedReward,
    Recorder,
    attached_ppo,
    one_question,
    ppo_datamodule,
    quiet_trainer,
    rationale_labels,
)


class HalfConstantReward:
    """The vowel share of the rationale, except for the questions in ``constant``, which get
    0.5 whatever they say; with ``vary_after`` calls a constant question starts varying too."""

    name = "half"

    def __init__(self, constant: set[str], vary_after: int | None = None) -> None:
        self.constant = constant
        self.vary_after = vary_after
        self.calls: dict[str, int] = {}
        self.scored = 0

    def __call__(self, records, rationales):
        scores = []
        for question in {record.id for record in records}:
            self.calls[question] = self.calls.get(question, 0) + 1
        for record, text in zip(records, rationales):
            seen = self.calls[record.id]
            constant = record.id in self.constant
            if constant and (self.vary_after is None or seen <= self.vary_after):
                scores.append(0.5)
            else:
                scores.append(
                    sum(c in "aeiou" for c in text) / max(len(text), 1) + 1e-3 * len(scores)
                )
        self.scored += len(scores)
        total = torch.tensor(scores)
        return RewardOutput(total, {self.name: total.clone()}, {"rationales_scored": len(scores)})

    def usage(self):
        return {}


def _fit(model_dir, shared_data, tmp_path, reward, steps=3, **ppo):
    """``steps`` PPO steps; returns the module, the logged steps and what each update saw."""
    settings = dict(
        rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
        samples_per_question=4,
        ppo_epochs=2,
        minibatch_size=4,
        advantage="grpo",
        init_kl_coef=0.0,
        target_kl=None,
    )
    module = PPOModule(
        model=str(model_dir),
        reward=reward,
        ppo=PPOConfig(**{**settings, **ppo}),
        num_logged_examples=0,
        export_dir=str(tmp_path / "export"),
    )
    seen: list[dict] = []
    rollout, update = module.rollout, module._minibatch_step

    def recording_rollout(batch):
        roll = rollout(batch)
        seen.append({"roll": roll, "updates": []})
        return roll

    def recording_update(roll, mb, optimizer, stats):
        seen[-1]["updates"].append((mb.tolist(), roll.update_mask(mb).sum(dim=1).tolist()))
        return update(roll, mb, optimizer, stats)

    module.rollout, module._minibatch_step = recording_rollout, recording_update
    recorder = Recorder()
    trainer = quiet_trainer(max_epochs=steps, limit_train_batches=1, callbacks=[recorder])
    trainer.fit(module, datamodule=ppo_datamodule(shared_data, model_dir))
    return module, recorder.steps, seen, trainer


def _ids(shared_data):
    from lm_guided_cot.data.readers import read_split

    rows = read_split(shared_data / "hotpotqa/train.jsonl", "hotpotqa").dataset.select(range(8))
    return [row["id"] for row in rows]


def test_skip_leaves_the_constant_groups_out_of_every_update(
    tiny_causal_dir, shared_data, tmp_path
):
    constant = set(_ids(shared_data)[::2])  # half of the 8 questions
    reward = HalfConstantReward(constant)
    _, steps, seen, _ = _fit(
        tiny_causal_dir, shared_data, tmp_path, reward, dynamic_sampling="skip"
    )
    assert len(seen) == len(steps) >= 2
    skipped_total = 0
    for logged, step in zip(steps, seen):
        roll = step["roll"]
        questions = [r.id for r in roll.records[::4]]
        n_constant = sum(q in constant for q in questions)
        assert roll.groups == {
            "groups_constant": n_constant,
            "groups_resampled": 0,
            "groups_skipped": n_constant,
        }
        assert logged["ppo/groups_skipped"] == n_constant
        assert logged["ppo/groups_constant"] == n_constant
        kept_rows = {i for i, r in enumerate(roll.records) if r.id not in constant}
        assert roll.keep.nonzero().squeeze(1).tolist() == sorted(kept_rows)
        # each pass updates on every kept row once and on no skipped row's tokens
        per_epoch = math.ceil(len(kept_rows) / 4)
        assert len(step["updates"]) == 2 * per_epoch
        for epoch in range(2):
            updated = set()
            for rows, token_counts in step["updates"][epoch * per_epoch : (epoch + 1) * per_epoch]:
                for row, tokens in zip(rows, token_counts):
                    if row in kept_rows:
                        assert tokens > 0
                        updated.add(row)
                    else:
                        assert tokens == 0
            assert updated == kept_rows
        skipped_total += n_constant
    assert skipped_total > 0  # the batches held constant questions: the test means something


@pytest.mark.parametrize("advantage", ["rloo", "grpo"])
def test_the_share_of_informative_groups_is_logged_every_step(
    tiny_causal_dir, shared_data, tmp_path, advantage
):
    constant = set(_ids(shared_data)[::2])  # half of the 8 questions get 0.5 whatever they say
    reward = HalfConstantReward(constant)
    _, steps, seen, _ = _fit(
        tiny_causal_dir, shared_data, tmp_path, reward, steps=3, advantage=advantage
    )
    assert len(seen) == len(steps) == 3
    shares = []
    for logged, step in zip(steps, seen):
        questions = [r.id for r in step["roll"].records[::4]]  # 4 questions x k=4 a step
        share = sum(q not in constant for q in questions) / len(questions)
        assert logged["ppo/informative_groups"] == pytest.approx(share)
        assert logged["ppo/policy_updated"] == float(share > 0)
        shares.append(share)
    assert any(0 < share < 1 for share in shares)  # a mixed step: not 0 or 1 by accident


def test_a_step_with_no_reward_signal_logs_no_policy_update(tiny_causal_dir, shared_data, tmp_path):
    reward = HalfConstantReward(set(_ids(shared_data)))  # every question constant
    _, steps, seen, _ = _fit(tiny_causal_dir, shared_data, tmp_path, reward, steps=2)
    assert len(steps) == 2 and all(step["updates"] for step in seen)  # updates ran, with A = 0
    for logged in steps:
        assert logged["ppo/informative_groups"] == 0.0
        assert logged["ppo/policy_updated"] == 0.0
        assert logged["ppo/policy_loss"] == 0.0


def test_one_sample_per_question_logs_no_group_share(tiny_causal_dir, shared_data, tmp_path):
    reward = HalfConstantReward(set())
    _, steps, _, _ = _fit(
        tiny_causal_dir,
        shared_data,
        tmp_path,
        reward,
        steps=1,
        advantage="gae",
        samples_per_question=1,
    )
    assert "ppo/informative_groups" not in steps[0]
    assert steps[0]["ppo/policy_updated"] == 1.0  # the value baseline leaves advantages


def test_resample_replaces_groups_that_vary_the_second_time(tiny_causal_dir, shared_data, tmp_path):
    constant = set(_ids(shared_data)[::2])
    reward = HalfConstantReward(constant, vary_after=1)  # constant on a question's first call
    _, steps, seen, _ = _fit(
        tiny_causal_dir, shared_data, tmp_path, reward, steps=1, dynamic_sampling="resample"
    )
    roll = seen[0]["roll"]
    n_constant = sum(r.id in constant for r in roll.records[::4])
    assert n_constant > 0
    assert roll.groups == {
        "groups_constant": n_constant,
        "groups_resampled": n_constant,
        "groups_skipped": 0,
    }
    assert bool(roll.keep.all())
    # 16 rationales, then the 4 of each constant question again; the counters of both add up
    assert reward.scored == 16 + 4 * n_constant
    assert steps[0]["rationales_scored"] == 16 + 4 * n_constant
    assert steps[0]["ppo/groups_resampled"] == n_constant


def test_resample_gives_up_after_its_rounds_and_skips(tiny_causal_dir, shared_data, tmp_path):
    constant = set(_ids(shared_data)[::2])
    reward = HalfConstantReward(constant)  # constant however often it is asked
    _, _, seen, _ = _fit(
        tiny_causal_dir,
        shared_data,
        tmp_path,
        reward,
        steps=1,
        dynamic_sampling="resample",
        max_resample_rounds=2,
    )
    roll = seen[0]["roll"]
    n_constant = sum(r.id in constant for r in roll.records[::4])
    assert roll.groups["groups_skipped"] == n_constant > 0
    assert roll.groups["groups_resampled"] == 0
    assert reward.scored == 16 + 2 * 4 * n_constant


def test_a_step_of_constant_groups_makes_no_update(tiny_causal_dir, shared_data, tmp_path):
    reward = HalfConstantReward(set(_ids(shared_data)))  # every question constant
    _, _, seen, trainer = _fit(
        tiny_causal_dir, shared_data, tmp_path, reward, steps=2, dynamic_sampling="skip"
    )
    assert all(not step["updates"] for step in seen)
    assert trainer.global_step == 0


def test_grpo_advantages_through_the_module(tiny_causal_dir):
    module = attached_ppo(tiny_causal_dir, FixedReward([1.0, 0.0, 0.0, 1.0]), advantage="grpo")
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [5, 2, 3, 4])
    roll = module.rollout(one_question(module.policy))
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item()
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4)]
    assert roll.advantages[:, 0].tolist() == pytest.approx(expected, abs=1e-5)
    assert module.value_head is None


def test_the_overlong_penalty_comes_off_the_score(tiny_causal_dir):
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 1.0, 1.0, 1.0]),
        advantage="dr_grpo",
        rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
        overlong_buffer=4,
        overlong_penalty=0.5,
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [8, 6, 4, 2])
    roll = module.rollout(one_question(module.policy))
    # penalties 0.5 * (0 - 1, (4 - 6) / 4, 0, 0) = (-0.5, -0.25, 0, 0); mean -0.1875
    expected = [-0.5 + 0.1875, -0.25 + 0.1875, 0.1875, 0.1875]
    assert roll.advantages[:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert roll.raw_scores.tolist() == [1.0] * 4  # logged as the reward gave them


def test_clip_bounds_reach_the_loss(tiny_causal_dir, monkeypatch):
    import lm_guided_cot.stages.ppo.module as ppo_module

    seen = {}

    def spy(*args, **kwargs):
        seen["args"] = args
        return real(*args, **kwargs)

    real = ppo_module.clipped_policy_loss
    monkeypatch.setattr(ppo_module, "clipped_policy_loss", spy)
    config = PPOConfig(samples_per_question=2, advantage="grpo", clip_low=0.2, clip_high=0.28)
    assert config.clip_bounds == (0.2, 0.28)
    assert PPOConfig().clip_bounds == (0.2, 0.2)
    assert config.aggregation == "sequence" and not config.whiten
    assert PPOConfig(samples_per_question=2, advantage="dr_grpo").aggregation == "constant"
    assert PPOConfig().aggregation == "token" and PPOConfig().whiten
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 0.0]),
        samples_per_question=2,
        advantage="grpo",
        clip_low=0.1,
        clip_high=0.3,
        loss_aggregation="token",
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [3, 2])
    roll = module.rollout(one_question(module.policy))
    module.manual_backward = lambda loss: None
    optimizer = type("Opt", (), {"step": lambda self: None, "zero_grad": lambda self, **k: None})()
    from lm_guided_cot.stages.ppo.rollout import PPOStats

    module._minibatch_step(roll, torch.arange(2), optimizer, PPOStats())
    assert seen["args"][4] == 0.1 and seen["args"][6] == 0.3
    assert seen["args"][7] is None  # token aggregation: the plain token mean


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"advantage": "grpo", "samples_per_question": 1},
            "samples_per_question must be at least 2",
        ),
        ({"dynamic_sampling": "skip"}, "samples_per_question must be at least 2"),
        (
            {"advantage": "dr_grpo", "samples_per_question": 2, "whiten_advantages": True},
            "already normalised",
        ),
        ({"clip_high": 0.0}, "ppo.clip_high must be positive"),
        ({"clip_low": -1.0}, "ppo.clip_low must be positive"),
        ({"overlong_buffer": 0}, "ppo.overlong_buffer must be at least 1"),
        ({"overlong_buffer": 500}, "at most ppo.rollout.max_new_tokens"),
        ({"overlong_penalty": -1.0}, "ppo.overlong_penalty must be at least 0"),
        (
            {"samples_per_question": 2, "dynamic_sampling": "resample", "max_resample_rounds": 0},
            "ppo.max_resample_rounds must be at least 1",
        ),
    ],
)
def test_bad_objective_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        PPOConfig(**kwargs)


def _perturbed(module: PPOModule, scale: float = 0.05) -> PPOModule:
    """The module with its policy moved off the reference (which stays as loaded)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.policy.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return module


class _Optimizer:
    def step(self):
        pass

    def zero_grad(self, **kwargs):
        pass


def _minibatch_loss(module: PPOModule, roll, rows) -> tuple[torch.Tensor, PPOStats]:
    """The loss one update on ``rows`` backpropagates (nothing is stepped), and its stats."""
    losses, stats = [], PPOStats()
    module.manual_backward = lambda loss: losses.append(loss)
    module._minibatch_step(roll, rows, _Optimizer(), stats)
    return losses[0], stats


def test_the_issues_example_the_kl_no_longer_makes_grpo_advantages():
    # four right answers; per-sequence KL 0.30, 0.10, 0.20, 0.25 at coefficient 0.05 gave
    # [-1.00, 1.29, 0.14, -0.43] when the KL was in the score
    config = PPOConfig(samples_per_question=4, advantage="grpo")
    mask = torch.ones(4, 5)
    kl = torch.tensor([0.30, 0.10, 0.20, 0.25])[:, None].expand(4, 5) / 5
    advantages, _ = advantages_and_returns(config, torch.ones(4), kl, None, mask, 0.05, lambda t: t)
    assert advantages.abs().max().item() < 1e-6


@pytest.mark.parametrize("advantage", ["grpo", "dr_grpo"])
def test_equal_rewards_give_zero_group_advantages_and_the_kl_still_pulls(
    tiny_causal_dir, advantage
):
    module = _perturbed(
        attached_ppo(
            tiny_causal_dir,
            FixedReward([1.0, 1.0, 1.0, 1.0]),
            advantage=advantage,
            init_kl_coef=0.05,
        )
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [5, 2, 3, 4])
    roll = module.rollout(one_question(module.policy))
    assert roll.kl.sum(dim=1).abs().min() > 1e-3  # the policy differs from the reference
    assert roll.advantages.abs().max().item() < 1e-6
    rows = torch.arange(4)
    loss, stats = _minibatch_loss(module, roll, rows)
    (kl,) = stats.kl_loss
    assert kl > 1e-3
    # the policy term is 0 (zero advantages): the loss is the KL term, coefficient 0.05
    torch.testing.assert_close(loss.detach(), 0.05 * kl)
    # and a step on it brings the policy toward the reference
    before = roll.kl_k3.sum()
    params = [p for p in module.policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(0.05 * g / norm)  # a small step along the gradient
    after = module._finish(
        Sampled(roll.input_ids, roll.attention_mask, roll.labels, roll.texts, roll.records),
        module._behaviour(
            Sampled(roll.input_ids, roll.attention_mask, roll.labels, roll.texts, roll.records)
        ),
        roll.reward,
        None,
        {},
    ).kl_k3.sum()
    assert after < before


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        # ratio 1 on the first update: each token's loss is -A. GRPO advantages of scores
        # (1, 0, 0, 1) are +-a, a = 0.5 / (std + 1e-4); lengths 5, 2, 3, 4
        ("token", lambda a: -(5 - 2 - 3 + 4) * a / 14),  # every token alike
        ("sequence", lambda a: 0.0),  # each rationale's mean: +a, -a, -a, +a
        ("constant", lambda a: -(5 - 2 - 3 + 4) * a / (4 * 8)),  # 4 rationales x 8 tokens
    ],
)
def test_the_aggregation_reaches_the_loss_through_the_module(
    tiny_causal_dir, aggregation, expected
):
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 0.0, 0.0, 1.0]),
        advantage="grpo",
        loss_aggregation=aggregation,
        rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [5, 2, 3, 4])
    roll = module.rollout(one_question(module.policy))
    a = 0.5 / (torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item() + 1e-4)
    loss, stats = _minibatch_loss(module, roll, torch.arange(4))
    # no KL term at coefficient 0: the loss is the policy loss alone
    assert loss.item() == pytest.approx(expected(a), abs=1e-5)
    assert stats.kl_loss[0] == pytest.approx(0.0, abs=1e-6)  # policy = reference


def test_penalties_stay_inside_the_reward_clip(tiny_causal_dir):
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 1.0, 1.0, 1.0]),
        advantage="dr_grpo",
        missing_eos_penalty=5.0,
        reward_clip=2.0,
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(
        module.policy, [6, 6, 3, 3], ended=[False, True, True, True]
    )
    roll = module.rollout(one_question(module.policy))
    # scores 1 - 5 = -4 clipped to -2, and 1, 1, 1: mean 0.25 (the penalty after the clip
    # gave -4: advantages -3.75, 1.25, ...)
    assert roll.advantages[:, 0].tolist() == pytest.approx([-2.25, 0.75, 0.75, 0.75])


def _kept_advantages(advantage: str, skipped_groups: int) -> torch.Tensor:
    """The advantages of one informative group (scores 1, 0, 0, 0.5) beside ``skipped_groups``
    groups of equal scores that dynamic sampling skips."""
    config = PPOConfig(samples_per_question=4, advantage=advantage, dynamic_sampling="skip")
    scores = torch.tensor([1.0, 0.0, 0.0, 0.5] + [0.7] * 4 * skipped_groups)
    rows = scores.shape[0]
    lengths = torch.tensor([3, 1, 2, 3] + [2, 3, 1, 2] * skipped_groups)
    mask = (torch.arange(3)[None, :] < lengths[:, None]).float()
    keep = torch.tensor([True] * 4 + [False] * 4 * skipped_groups)
    values = None
    if advantage == "gae":  # the kept rows' values are the same whatever is beside them
        values = torch.cat([torch.linspace(-1, 1, 12), torch.full((rows * 3 - 12,), 0.3)])
        values = values.view(rows, 3) * mask
    kl = torch.full((rows, 3), 0.01) * mask
    advantages, _ = advantages_and_returns(config, scores, kl, values, mask, 0.1, lambda t: t, keep)
    assert (advantages[4:] == 0).all()
    return advantages[:4]


@pytest.mark.parametrize("advantage", ["rloo", "gae", "grpo", "dr_grpo"])
def test_kept_rows_advantages_do_not_depend_on_how_many_groups_are_skipped(advantage):
    alone = _kept_advantages(advantage, 0)
    assert alone.abs().max() > 0.1
    for skipped in (1, 3):
        torch.testing.assert_close(_kept_advantages(advantage, skipped), alone)
