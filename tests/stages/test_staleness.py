"""Bounded staleness (``ppo.max_staleness``): a stale rollout's ratio is taken against the
policy that sampled it, the tiny models still learn, a checkpoint holds the pending rollouts
so that a resumed run equals the uninterrupted one, and bad settings are refused."""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.stages import PPOConfig, PPOModule
from lm_guided_cot.stages.ppo.rollout import Rollout
from tests.stage_helpers import (
    Recorder,
    fit_with_epoch_checkpoints,
    ppo_datamodule,
    quiet_trainer,
    vowel_ppo,
)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigurationError, match=r"ppo\.max_staleness must be at least 0"):
        PPOConfig(max_staleness=-1)
    with pytest.raises(ConfigurationError, match=r"dynamic_sampling='resample'.*max_staleness=1"):
        PPOConfig(max_staleness=1, dynamic_sampling="resample", samples_per_question=2)
    PPOConfig(max_staleness=1, dynamic_sampling="skip", samples_per_question=2)  # needs no wait


def test_a_stale_rollouts_ratio_is_against_its_behaviour_logprobs(
    warm_started, shared_data, tmp_path, monkeypatch
):
    import lm_guided_cot.stages.ppo.module as ppo_module

    behaviour_logprobs, orders, losses = [], [], []
    real_behaviour, real_order = PPOModule._behaviour, Rollout.update_order
    real_loss = ppo_module.clipped_policy_loss

    def behaviour(self, sampled):  # what the sampling policy said, at sampling time
        out = real_behaviour(self, sampled)
        behaviour_logprobs.append(out.logprobs.clone())
        return out

    def update_order(self):
        orders.append(real_order(self))
        return orders[-1]

    def loss(logprobs, old_logprobs, *args):
        losses.append((logprobs.detach().clone(), old_logprobs.clone()))
        return real_loss(logprobs, old_logprobs, *args)

    monkeypatch.setattr(PPOModule, "_behaviour", behaviour)
    monkeypatch.setattr(Rollout, "update_order", update_order)
    monkeypatch.setattr(ppo_module, "clipped_policy_loss", loss)
    L.seed_everything(0)
    recorder = Recorder()
    # 16 rationales per batch in one minibatch: one optimizer step per batch; two steps that
    # only sample, then updates on batch 0 (sampled before any update) and batch 1 (sampled
    # before the update on batch 0)
    module = vowel_ppo(
        warm_started["causal"], tmp_path, max_staleness=2, ppo_epochs=1, minibatch_size=16
    )
    quiet_trainer(max_steps=2, callbacks=[recorder]).fit(
        module, datamodule=ppo_datamodule(shared_data, warm_started["causal"])
    )
    assert len(behaviour_logprobs) == 4 and len(losses) == 2 and len(recorder.steps) == 4
    for batch, ((_, old), order) in enumerate(zip(losses, orders)):
        assert torch.equal(old, behaviour_logprobs[batch][order])
    (new0, old0), (new1, old1) = losses
    assert torch.allclose(new0, old0, atol=1e-5)  # no update in between: ratio 1
    assert (new1 - old1).abs().max() > 1e-3  # an update in between: a real importance ratio
    assert recorder.steps[-1]["ppo/staleness"] == 2
    assert "ppo/staleness" not in recorder.steps[1]  # the steps that only sample log nothing


@pytest.mark.parametrize("arch", ["causal", "seq2seq"])
def test_reward_rises_with_staleness_two(warm_started, shared_data, tmp_path, arch):
    L.seed_everything(0)
    recorder = Recorder()
    module = vowel_ppo(warm_started[arch], tmp_path, max_staleness=2)
    steps = 40
    optimizer_steps_per_batch = 4 * 2  # ppo_epochs x (16 rationales / minibatch 8)
    quiet_trainer(max_steps=steps * optimizer_steps_per_batch, callbacks=[recorder]).fit(
        module, datamodule=ppo_datamodule(shared_data, warm_started[arch])
    )
    updates = [s for s in recorder.steps if "reward/total_mean" in s]
    assert len(recorder.steps) == steps + 2 and len(updates) == steps
    rewards = [s["reward/total_mean"] for s in updates]
    start, end = rewards[0], sum(rewards[-5:]) / 5
    assert end >= 2 * start or end >= start + 0.3, rewards
    assert all(math.isfinite(s["kl/mean"]) for s in updates)
    assert {s["ppo/staleness"] for s in updates} == {2}
    assert len(module._pending) == 0  # what was still out at the end was waited for, dropped


def _run(model_dir, shared_data, tmp_path, epochs, ckpt_path=None, max_staleness=2):
    return fit_with_epoch_checkpoints(
        lambda: vowel_ppo(
            model_dir,
            tmp_path,
            target_kl=0.5,
            reward_scaling="running_std",
            max_staleness=max_staleness,
        ),
        lambda: ppo_datamodule(shared_data, model_dir),
        tmp_path,
        epochs,
        ckpt_path,
    )


def test_resumed_stale_run_ends_like_the_uninterrupted_one(warm_started, shared_data, tmp_path):
    model_dir = warm_started["causal"]
    full, full_steps = _run(model_dir, shared_data, tmp_path / "full", epochs=4)
    _run(model_dir, shared_data, tmp_path / "part", epochs=2)
    saved = tmp_path / "part/ckpt/epoch=1.ckpt"
    # held, not drained: the 2 rollouts out at the checkpoint are in it, scored
    (state,) = torch.load(saved, weights_only=True)["pending_rollouts"]
    assert len(state["items"]) == 2 and state["made"] == 4
    assert all(item["output"]["total"].shape == (16,) for item in state["items"])
    resumed, resumed_steps = _run(model_dir, shared_data, tmp_path / "part", 4, str(saved))
    assert len(full_steps) == 8 and len(resumed_steps) == 4
    for a, b in zip(full_steps[4:], resumed_steps, strict=True):
        for key in ("reward/total_mean", "kl/mean", "kl/coef", "ppo/policy_loss", "ppo/value_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert full.kl_controller.value == pytest.approx(resumed.kl_controller.value)
    assert full.reward_stats.count == resumed.reward_stats.count == 6 * 16  # 2 steps only sample


def test_a_resume_at_a_smaller_bound_drops_the_oldest_pending_batches(
    warm_started, shared_data, tmp_path
):
    model_dir = warm_started["causal"]
    _run(model_dir, shared_data, tmp_path / "part", epochs=2, max_staleness=3)
    saved = tmp_path / "part/ckpt/epoch=1.ckpt"
    (state,) = torch.load(saved, weights_only=True)["pending_rollouts"]
    assert len(state["items"]) == 3  # saved at max_staleness 3
    with pytest.warns(UserWarning, match=r"holds 3 pending .* the 2 oldest are dropped"):
        _, steps = _run(model_dir, shared_data, tmp_path / "part", 4, str(saved), max_staleness=1)
    # every update of the resumed run is at most 1 step stale, from its first step on
    assert len(steps) == 4 and all("ppo/staleness" in step for step in steps)
    assert [step["ppo/staleness"] for step in steps] == [1.0] * 4


def test_the_logged_reward_wait_is_the_time_spent_waiting(
    warm_started, shared_data, tmp_path, monkeypatch
):
    import lm_guided_cot.stages.ppo.staleness as staleness
    from lm_guided_cot.stages.ppo.rollout import Scores

    # a clock that moves only while a step waits for its rewards: 0.75 s each time
    now = [100.0]
    real_wait = Scores.wait

    def slow_wait(self):
        now[0] += 0.75
        return real_wait(self)

    monkeypatch.setattr(Scores, "wait", slow_wait)
    monkeypatch.setattr(staleness, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    recorder = Recorder()
    module = vowel_ppo(warm_started["causal"], tmp_path, max_staleness=1, ppo_epochs=1)
    quiet_trainer(max_steps=3, callbacks=[recorder]).fit(
        module, datamodule=ppo_datamodule(shared_data, warm_started["causal"])
    )
    waits = [step["time/reward_wait_s"] for step in recorder.steps if "ppo/staleness" in step]
    assert waits and all(w == pytest.approx(0.75) for w in waits), waits
