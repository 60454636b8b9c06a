"""Every PPO setting in one documented place (``lmcot fit --print_config`` shows the help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from lm_guided_cot.errors import (
    ConfigurationError,
    check_at_least,
    check_positive,
    check_probability,
)
from lm_guided_cot.policy import GenerationConfig


@dataclass
class RolloutConfig(GenerationConfig):
    """How rationales are sampled for training: plain sampling at a temperature.

    PPO's ratios, its KL penalty and the KL controller need each rationale's log-probability
    under the distribution it was drawn from; the policy scores rollouts at ``temperature``, so
    rollouts must sample (greedy or beam rollouts are not the policy's samples, and the k
    samples of a question would all be equal) and leave out the other transforms.

    Args:
        max_new_tokens: longest rationale in tokens (at least 1).
        do_sample: must stay true.
        temperature: sampling temperature, above 0 (the policy and the reference are scored
            at it).
        top_p: must stay 1.0.
        top_k: must stay 0.
        num_beams: must stay 1.
        repetition_penalty: must stay 1.0.
    """

    max_new_tokens: int = 128
    do_sample: bool = True

    def __post_init__(self) -> None:
        plain = {"do_sample": True, "top_p": 1.0, "top_k": 0, "num_beams": 1}
        plain["repetition_penalty"] = 1.0
        for name, wanted in plain.items():
            if getattr(self, name) != wanted:
                raise ConfigurationError(
                    f"ppo.rollout.{name}={getattr(self, name)!r}: PPO rollouts must be plain "
                    f"samples at a temperature, since rollouts are scored with the distribution "
                    f"they were drawn from; set {name}: {wanted} (temperature may change)"
                )
        super().__post_init__()  # max_new_tokens, and a temperature above 0

    def _option_prefix(self) -> str:
        return "ppo.rollout"


@dataclass
class PPOConfig:
    """Stage 2's PPO settings.

    Args:
        rollout: how rationales are sampled for training (plain sampling at a temperature).
        samples_per_question: rationales sampled per question each step (k; at least 1, and
            at least 2 for the ``rloo`` baseline).
        advantage: ``gae`` (PPO with the value head, per-token KL-penalised rewards and the
            score on the last token) or ``rloo`` (critic-free, no value head: each sample's
            KL-penalised score minus the mean of the other samples of its question).
        ppo_epochs: passes over each rollout batch (at least 1).
        minibatch_size: rationales per optimizer step within a pass (at least 1).
        clip_range: PPO ratio clipping epsilon (above 0).
        clip_range_value: value clipping around the rollout values (above 0; ``None``: none).
        vf_coef: weight of the value loss (at least 0).
        entropy_coef: weight of an entropy bonus (at least 0; 0: none).
        gamma: discount per token, in [0, 1].
        lam: GAE lambda, in [0, 1].
        whiten_advantages: normalise advantages over each rollout batch: per token for
            ``gae``; for ``rloo`` per rationale and by scale only (the leave-one-out
            advantages of a question already sum to 0, and weighting them by token count
            would turn the shift into a length bonus or penalty).
        kl_estimator: ``k1`` (``log p - log q`` per token): the KL penalty is a per-token
            reward, and k1 is the estimator whose expected gradient is the KL's. ``k3`` is
            refused as a reward (its gradient is not the KL's); it is logged as ``kl/k3``.
        init_kl_coef: starting KL coefficient (``beta``; at least 0).
        target_kl: KL the adaptive controller steers to (above 0; ``None``: the coefficient
            stays fixed).
        kl_horizon: the adaptive controller's horizon in rationales (at least 1).
        reward_scaling: ``none``, ``running_std`` (divide by the running std of scores) or
            ``running_zscore`` (subtract the running mean too); statistics are checkpointed.
        reward_std_floor: the smallest std scores are divided by (above 0), so that scaling
            enlarges them at most ``1 / reward_std_floor`` times (a first batch of equal
            scores has a std of 0). A lasting floor: scores whose spread stays below it keep
            a spread below 1; lower it for rewards on a small scale.
        reward_clip: clip the (scaled) scores to ``[-reward_clip, reward_clip]`` (above 0;
            ``None``: no).
        missing_eos_penalty: subtracted from the score of a rationale cut at
            ``rollout.max_new_tokens`` before it ended (at least 0; 0: the reader's verdict on
            the cut text is its whole score).
        max_grad_norm: gradient-norm clipping of every optimizer step (of the true, unscaled
            gradients under ``16-mixed``; above 0; ``None``: no clipping).
    """

    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    samples_per_question: int = 1
    advantage: Literal["gae", "rloo"] = "gae"
    ppo_epochs: int = 4
    minibatch_size: int = 8
    clip_range: float = 0.2
    clip_range_value: float | None = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    kl_estimator: Literal["k1"] = "k1"
    init_kl_coef: float = 0.05
    target_kl: float | None = 6.0
    kl_horizon: int = 10000
    reward_scaling: Literal["none", "running_std", "running_zscore"] = "none"
    reward_std_floor: float = 0.1
    reward_clip: float | None = None
    missing_eos_penalty: float = 0.0
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.rollout, dict):  # a partial dict keeps the rollout defaults
            self.rollout = RolloutConfig(**self.rollout)
        elif not isinstance(self.rollout, RolloutConfig):  # a GenerationConfig: checked too
            self.rollout = RolloutConfig(**asdict(self.rollout))
        check_at_least("ppo.samples_per_question", self.samples_per_question, 1)
        if self.advantage == "rloo" and self.samples_per_question < 2:
            raise ConfigurationError(
                "ppo.samples_per_question must be at least 2 for advantage 'rloo' (each "
                f"sample's baseline is the mean of the others), got {self.samples_per_question}"
            )
        check_at_least("ppo.ppo_epochs", self.ppo_epochs, 1)
        check_at_least("ppo.minibatch_size", self.minibatch_size, 1)
        check_positive("ppo.clip_range", self.clip_range)
        check_positive("ppo.clip_range_value", self.clip_range_value)
        check_at_least("ppo.vf_coef", self.vf_coef, 0)
        check_at_least("ppo.entropy_coef", self.entropy_coef, 0)
        check_probability("ppo.gamma", self.gamma)
        check_probability("ppo.lam", self.lam)
        if self.kl_estimator != "k1":
            raise ConfigurationError(
                f"ppo.kl_estimator={self.kl_estimator!r}: the KL penalty is a per-token reward, "
                "and only k1 (log p - log q) has the KL's expected gradient there; k3 is "
                "logged as kl/k3"
            )
        check_at_least("ppo.init_kl_coef", self.init_kl_coef, 0)
        check_positive("ppo.target_kl", self.target_kl)
        check_at_least("ppo.kl_horizon", self.kl_horizon, 1)
        check_positive("ppo.reward_std_floor", self.reward_std_floor)
        check_positive("ppo.reward_clip", self.reward_clip)
        check_at_least("ppo.missing_eos_penalty", self.missing_eos_penalty, 0)
        check_positive("ppo.max_grad_norm", self.max_grad_norm)
