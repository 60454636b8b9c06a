"""Every PPO setting in one documented place (``lmcot fit --print_config`` shows the help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lm_guided_cot.policy import GenerationConfig


@dataclass
class PPOConfig:
    """Stage 2's PPO settings.

    Args:
        rollout: how rationales are sampled for training (sampling on by default).
        samples_per_question: rationales sampled per question each step (k; at least 2
            for the ``rloo`` baseline).
        advantage: ``gae`` (PPO with the value head, per-token KL-penalised rewards and the
            score on the last token) or ``rloo`` (critic-free: each sample's KL-penalised
            score minus the mean of the other samples of its question).
        ppo_epochs: passes over each rollout batch.
        minibatch_size: rationales per optimizer step within a pass.
        clip_range: PPO ratio clipping epsilon.
        clip_range_value: value clipping around the rollout values (``None``: none).
        vf_coef: weight of the value loss.
        entropy_coef: weight of an entropy bonus (0: none).
        gamma: discount per token.
        lam: GAE lambda.
        whiten_advantages: normalise advantages over each rollout batch.
        kl_estimator: ``k1`` (log-ratio) or ``k3`` (non-negative) per-token KL estimate.
        init_kl_coef: starting KL coefficient (``beta``).
        target_kl: KL the adaptive controller steers to (``None``: the coefficient stays fixed).
        kl_horizon: the adaptive controller's horizon in rationales.
        reward_scaling: ``none``, ``running_std`` (divide by the running std of scores) or
            ``running_zscore`` (subtract the running mean too); statistics are checkpointed.
        reward_clip: clip the (scaled) scores to ``[-reward_clip, reward_clip]`` (``None``: no).
        max_grad_norm: gradient-norm clipping of every optimizer step.
    """

    rollout: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(
            max_new_tokens=128, do_sample=True, temperature=1.0
        )
    )
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
    kl_estimator: Literal["k1", "k3"] = "k1"
    init_kl_coef: float = 0.05
    target_kl: float | None = 6.0
    kl_horizon: int = 10000
    reward_scaling: Literal["none", "running_std", "running_zscore"] = "none"
    reward_clip: float | None = None
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.advantage == "rloo" and self.samples_per_question < 2:
            raise ValueError("PPOConfig: advantage 'rloo' needs samples_per_question >= 2")
        if self.minibatch_size < 1 or self.ppo_epochs < 1:
            raise ValueError("PPOConfig: minibatch_size and ppo_epochs must be at least 1")
