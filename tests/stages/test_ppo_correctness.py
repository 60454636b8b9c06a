"""Stage 2 estimates what it claims to: RLOO advantages keep their sign, rollouts are scored with
the distribution they were sampled from, scaling and clipping cannot blow numbers up, and the
settings that would bias PPO are refused with a message."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from lm_guided_cot.data.targets import IGNORE_INDEX, encode_targets
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.policy import GenerationConfig, SmallLM
from lm_guided_cot.rewards import AnswerMentionReward
from lm_guided_cot.stages import PPOConfig, PPOModule
from tests.helpers import VowelShareReward
from tests.stage_helpers import (
    FixedReward,
    attached_ppo,
    one_question,
    ppo_datamodule,
    quiet_trainer,
    rationale_labels,
)


def _trainable(model_dir, folder, module_class=PPOModule, **ppo) -> PPOModule:
    """A PPOModule to ``fit``: the vowel reward, 2 short samples per question, one update a step."""
    settings = dict(
        rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
        samples_per_question=2,
        ppo_epochs=1,
    )
    return module_class(
        model=str(model_dir),
        reward=VowelShareReward(),
        ppo=PPOConfig(**{**settings, **ppo}),
        num_logged_examples=0,
        export_dir=str(folder / "export"),
    )


@pytest.mark.parametrize("whiten", [True, False])
def test_rloo_advantages_keep_their_sign_whatever_the_lengths(tiny_causal_dir, whiten):
    # the example: scores [1, 0.6, 0, 0], lengths [40, 4, 4, 4]; whitening over tokens
    # gave [0.503, -0.587, -2.222, -2.222], pushing down the second sample, which beat its group
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 0.6, 0.0, 0.0]),
        advantage="rloo",
        whiten_advantages=whiten,
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(module.policy, [40, 4, 4, 4])
    roll = module.rollout(one_question(module.policy))
    leave_one_out = torch.tensor([0.8, 0.6 - 1 / 3, -1.6 / 3, -1.6 / 3])
    expected = leave_one_out / leave_one_out.std() if whiten else leave_one_out
    mask = roll.mask.bool()
    for row, value in enumerate(expected):
        tokens = roll.advantages[row][mask[row]]
        assert torch.allclose(tokens, torch.full_like(tokens, float(value)), atol=1e-5), row
        assert (roll.advantages[row][~mask[row]] == 0).all()


def test_rloo_builds_and_optimizes_no_value_head(tiny_causal_dir):
    module = attached_ppo(tiny_causal_dir, FixedReward([1.0, 0.0, 0.0, 0.0]), advantage="rloo")
    assert module.value_head is None
    optimized = {
        id(p) for group in module.configure_optimizers().param_groups for p in group["params"]
    }
    assert optimized == {id(p) for p in module.policy.parameters()}


def test_a_missing_eos_costs_the_penalty(tiny_causal_dir):
    module = attached_ppo(
        tiny_causal_dir,
        FixedReward([1.0, 1.0, 1.0, 1.0]),
        advantage="rloo",
        whiten_advantages=False,
        missing_eos_penalty=0.5,
    )
    module.policy.generate = lambda *args, **kwargs: rationale_labels(
        module.policy, [6, 6, 3, 3], ended=[False, True, True, True]
    )
    roll = module.rollout(one_question(module.policy))
    assert roll.advantages[:, 0].tolist() == pytest.approx([-0.5, 1 / 6, 1 / 6, 1 / 6])
    assert roll.raw_scores.tolist() == [1.0] * 4  # logged as the reader scored them


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
@pytest.mark.parametrize("temperature", [0.5, 1.7])
def test_rollouts_are_scored_with_the_distribution_they_were_sampled_from(
    request, fixture, temperature, monkeypatch
):
    module = attached_ppo(
        request.getfixturevalue(fixture),
        VowelShareReward(),
        rollout=GenerationConfig(max_new_tokens=12, do_sample=True, temperature=temperature),
    )
    model = module.policy.model
    original, sampled = model.generate, {}

    def recording_generate(*args, **kwargs):
        out = original(*args, **kwargs, output_scores=True, return_dict_in_generate=True)
        sampled["scores"] = torch.stack(out.scores, dim=1)  # after the sampler's transforms
        return out.sequences

    monkeypatch.setattr(model, "generate", recording_generate)
    torch.manual_seed(0)
    roll = module.rollout(one_question(module.policy))
    labels, mask = roll.labels, roll.mask
    sampler = sampled["scores"].log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    assert mask.sum() > 4
    assert torch.allclose(roll.logprobs, sampler * mask, atol=1e-4)
    # the reference (the same weights here) is scored the same way: no KL at the start
    assert roll.kl.abs().max() < 1e-4


def test_reward_scaling_cannot_blow_equal_scores_up(tiny_causal_dir):
    module = attached_ppo(tiny_causal_dir, FixedReward([1.0] * 4), reward_scaling="running_std")
    scores = module._scores(torch.ones(4))  # a first batch of equal scores: running std 0
    assert scores.tolist() == pytest.approx([10.0] * 4)  # 1 / the default floor 0.1 (was 1e6)


def test_gradients_are_clipped_after_unscaling_under_16_mixed(
    tiny_causal_dir, shared_data, tmp_path
):
    norms: list[float] = []

    class Recording(PPOModule):
        def configure_optimizers(self):
            optimizer = super().configure_optimizers()

            def record(opt, args, kwargs):
                grads = [p.grad for group in opt.param_groups for p in group["params"]]
                norms.append(
                    float(torch.nn.utils.get_total_norm([g for g in grads if g is not None]))
                )

            optimizer.register_step_pre_hook(record)
            return optimizer

    L.seed_everything(0)
    module = _trainable(tiny_causal_dir, tmp_path, Recording, minibatch_size=8, max_grad_norm=1e-3)
    precision = MixedPrecision(
        "16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10)
    )
    quiet_trainer(max_steps=2, plugins=[precision]).fit(
        module, datamodule=ppo_datamodule(shared_data, tiny_causal_dir)
    )
    # the optimizer saw the true gradients clipped to the limit (before the fix: 1e-3 / 2**10)
    assert norms and all(n == pytest.approx(1e-3, rel=1e-2) for n in norms), norms


def test_generation_ignores_the_models_own_generation_config(tiny_causal_dir):
    policy = SmallLM.from_pretrained(str(tiny_causal_dir))
    batch = policy.tokenizer(["Question: which one came first?"], return_tensors="pt")
    greedy = GenerationConfig(max_new_tokens=6)
    before = policy.generate(batch["input_ids"], batch["attention_mask"], greedy)
    policy.model.generation_config.suppress_tokens = [int(before[0, 0])]
    policy.model.generation_config.no_repeat_ngram_size = 1
    after = policy.generate(batch["input_ids"], batch["attention_mask"], greedy)
    assert torch.equal(before, after)
    assert policy.model.generation_config.no_repeat_ngram_size == 1  # given back as it was


def test_right_padded_causal_prompts_are_refused(tiny_causal_dir):
    policy = SmallLM.from_pretrained(str(tiny_causal_dir))
    policy.tokenizer.padding_side = "right"
    batch = policy.tokenizer(
        ["Short?", "A much longer question here?"], return_tensors="pt", padding=True
    )
    labels = policy.encode_targets(["Because.", "Because."])
    with pytest.raises(ValueError, match="left-padded"):
        policy.rationale_forward(batch["input_ids"], batch["attention_mask"], labels)
    with pytest.raises(ValueError, match="left-padded"):
        policy.generate(batch["input_ids"], batch["attention_mask"])


@pytest.mark.parametrize(
    ("rollout", "option"),
    [
        ({"do_sample": False}, "do_sample"),
        ({"top_k": 50}, "top_k"),
        ({"top_p": 0.9}, "top_p"),
        ({"num_beams": 2}, "num_beams"),
        ({"repetition_penalty": 1.2}, "repetition_penalty"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_rollout_settings_the_scoring_cannot_follow_are_refused(rollout, option):
    with pytest.raises(ValueError, match=f"ppo.rollout.{option}"):
        PPOConfig(rollout=rollout)


@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo", "dr_grpo"])
def test_greedy_rollouts_are_refused_for_every_advantage(advantage):
    # greedy GenerationConfig(): every other rollout setting is plain, so do_sample is the one
    # named; greedy RLOO or GRPO groups would be k equal rationales
    with pytest.raises(ValueError, match=r"ppo\.rollout\.do_sample=False") as refused:
        PPOConfig(advantage=advantage, samples_per_question=4, rollout=GenerationConfig())
    assert "top_p" not in str(refused.value) and "num_beams" not in str(refused.value)
    config = PPOConfig(
        advantage=advantage, samples_per_question=4, rollout=GenerationConfig(do_sample=True)
    )
    assert config.rollout.do_sample


@pytest.mark.parametrize(
    ("advantage", "estimator", "refused"),
    [
        ("gae", "k3", "use kl_estimator: k1"),
        ("rloo", "k3", "use kl_estimator: k1"),
        ("grpo", "k1", "use kl_estimator: k3"),
        ("dr_grpo", "k1", "use kl_estimator: k3"),
    ],
)
def test_kl_estimators_the_objective_cannot_use_are_refused(advantage, estimator, refused):
    with pytest.raises(ConfigurationError, match=f"kl_estimator='{estimator}'.*{refused}"):
        PPOConfig(advantage=advantage, samples_per_question=2, kl_estimator=estimator)
    right = "k1" if estimator == "k3" else "k3"
    config = PPOConfig(advantage=advantage, samples_per_question=2, kl_estimator=right)
    assert (
        config.estimator
        == right
        == PPOConfig(advantage=advantage, samples_per_question=2).estimator
    )
    assert config.kl_in_loss == (right == "k3")


def test_a_partial_rollout_dict_keeps_sampling(tiny_causal_dir):
    rollout = PPOConfig(rollout={"max_new_tokens": 8}).rollout
    assert rollout.do_sample and rollout.max_new_tokens == 8 and rollout.temperature == 1.0
    module = PPOModule(
        model=str(tiny_causal_dir),
        reward=VowelShareReward(),
        ppo={"rollout": {"max_new_tokens": 8}, "samples_per_question": 2},
    )
    assert module.ppo.rollout.do_sample and module.ppo.rollout.max_new_tokens == 8


def test_cut_teacher_rationales_get_no_eos(tokenizer):
    eos = tokenizer.eos_token_id
    labels = encode_targets(tokenizer, ["one two three four five six seven eight", "one"], 6)
    assert labels.shape[1] == 6
    assert eos not in labels[0].tolist()  # cut: no false stop taught mid-sentence
    short = labels[1][labels[1] != IGNORE_INDEX].tolist()
    assert short[-1] == eos and len(short) < 6


def test_an_rloo_checkpoint_with_the_old_value_head_resumes(tiny_causal_dir, shared_data, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(folder, epochs, ckpt_path=None):
        L.seed_everything(0)
        module = _trainable(tiny_causal_dir, folder, advantage="rloo")
        checkpoints = ModelCheckpoint(dirpath=folder, save_top_k=-1, every_n_epochs=1)
        trainer = quiet_trainer(
            max_epochs=epochs, callbacks=[checkpoints], enable_checkpointing=True
        )
        trainer.fit(
            module, datamodule=ppo_datamodule(shared_data, tiny_causal_dir), ckpt_path=ckpt_path
        )
        return module

    fit(tmp_path / "run", 1)
    saved = next((tmp_path / "run").glob("*.ckpt"))
    checkpoint = torch.load(saved, weights_only=True)
    # the layout before RLOO lost its value head: the head's weights, and its two parameters
    # last in the optimizer, with Adam state
    checkpoint["state_dict"]["value_head.linear.weight"] = torch.zeros(1, 32)
    checkpoint["state_dict"]["value_head.linear.bias"] = torch.zeros(1)
    optimizer = checkpoint["optimizer_states"][0]
    ids = optimizer["param_groups"][0]["params"]
    for new_id in (max(ids) + 1, max(ids) + 2):
        ids.append(new_id)
        optimizer["state"][new_id] = {"step": torch.tensor(4.0), "exp_avg": torch.zeros(1)}
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    resumed_old = fit(tmp_path / "from_old", 2, str(old))
    resumed_new = fit(tmp_path / "from_new", 2, str(saved))
    for (name, p), q in zip(resumed_new.state_dict().items(), resumed_old.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples_per_question": 0}, "ppo.samples_per_question must be at least 1, got 0"),
        (
            {"advantage": "rloo", "samples_per_question": 1},
            "ppo.samples_per_question must be at least 2 for advantage 'rloo'",
        ),
        ({"ppo_epochs": 0}, "ppo.ppo_epochs must be at least 1, got 0"),
        ({"minibatch_size": 0}, "ppo.minibatch_size must be at least 1, got 0"),
        ({"clip_range": 0.0}, "ppo.clip_range must be positive, got 0.0"),
        ({"clip_range_value": -0.2}, "ppo.clip_range_value must be positive, got -0.2"),
        ({"vf_coef": -0.1}, "ppo.vf_coef must be at least 0, got -0.1"),
        ({"entropy_coef": -0.01}, "ppo.entropy_coef must be at least 0, got -0.01"),
        ({"gamma": 1.1}, "ppo.gamma must be in [0, 1], got 1.1"),
        ({"lam": -0.1}, "ppo.lam must be in [0, 1], got -0.1"),
        ({"init_kl_coef": -0.05}, "ppo.init_kl_coef must be at least 0, got -0.05"),
        ({"target_kl": 0.0}, "ppo.target_kl must be positive, got 0.0"),
        ({"kl_horizon": 0}, "ppo.kl_horizon must be at least 1, got 0"),
        ({"reward_std_floor": 0.0}, "ppo.reward_std_floor must be positive, got 0.0"),
        ({"reward_clip": 0.0}, "ppo.reward_clip must be positive, got 0.0"),
        ({"missing_eos_penalty": -1.0}, "ppo.missing_eos_penalty must be at least 0, got -1.0"),
        ({"max_grad_norm": 0.0}, "ppo.max_grad_norm must be positive, got 0.0"),
        (
            {"rollout": {"max_new_tokens": 0}},
            "ppo.rollout.max_new_tokens must be at least 1, got 0",
        ),
        (
            {"rollout": {"temperature": -1.0}},
            "ppo.rollout.temperature must be at least 0, got -1.0",
        ),
    ],
)
def test_bad_ppo_numbers_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        PPOConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"samples_per_question": 1, "ppo_epochs": 1, "minibatch_size": 1},
        {"advantage": "rloo", "samples_per_question": 2},
        {"gamma": 0.0, "lam": 0.0, "vf_coef": 0.0, "entropy_coef": 0.0, "init_kl_coef": 0.0},
        {"gamma": 1.0, "lam": 1.0, "kl_horizon": 1, "missing_eos_penalty": 0.0},
        {"clip_range_value": None, "target_kl": None, "reward_clip": None, "max_grad_norm": None},
        {"clip_range": 1e-3, "target_kl": 1e-3, "reward_clip": 1e-3, "reward_std_floor": 1e-6},
    ],
)
def test_boundary_ppo_numbers_are_accepted(kwargs):
    config = PPOConfig(**kwargs)
    # kept as given: not clamped, rounded or replaced by a default on the way
    assert {name: getattr(config, name) for name in kwargs} == kwargs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "PPOModule.learning_rate must be positive, got 0.0"),
        ({"learning_rate": -1e-5}, "PPOModule.learning_rate must be positive, got -1e-05"),
        ({"weight_decay": -0.1}, "PPOModule.weight_decay must be at least 0, got -0.1"),
        ({"num_logged_examples": -1}, "PPOModule.num_logged_examples must be at least 0, got -1"),
    ],
)
def test_bad_ppo_module_numbers_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        PPOModule(model="unused", reward=AnswerMentionReward(), **kwargs)


def test_boundary_ppo_module_numbers_are_accepted(tiny_causal_dir):
    numbers = {"learning_rate": 1e-12, "weight_decay": 0.0, "num_logged_examples": 0}
    module = PPOModule(model=str(tiny_causal_dir), reward=AnswerMentionReward(), **numbers)
    assert {name: module.hparams[name] for name in numbers} == numbers
    module.trainer = quiet_trainer()
    module.configure_model()
    (group,) = module.configure_optimizers().param_groups  # what the optimizer really uses
    assert (group["lr"], group["weight_decay"]) == (1e-12, 0.0)
