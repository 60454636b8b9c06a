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
            at least 2 for ``rloo``, ``grpo``, ``dr_grpo`` and dynamic sampling without
            ``scst``).
        advantage: ``gae`` (PPO with the value head, per-token KL-penalised rewards and the
            score on the last token); or critic-free, no value head, on each sample's
            KL-penalised score: ``rloo`` (minus the mean of the other samples of its question),
            ``grpo`` (minus its question's mean, divided by its question's std), ``dr_grpo``
            (minus its question's mean only) or ``scst`` (self-critical, Rennie et al. 2017:
            minus the reward of the rationale the policy writes greedily for its question, as
            ``eval_generation`` decodes it, so only samples that beat what the evaluation would
            read are reinforced; one more rationale and reward call a question, logged as
            ``reward/greedy_mean``).
        loss_aggregation: how per-token policy losses become one number: ``token`` (the mean
            over every token of the minibatch, DAPO's choice), ``sequence`` (each rationale's
            mean, then the mean over rationales: GRPO's) or ``constant`` (the sum divided by
            rationales x ``rollout.max_new_tokens``: Dr. GRPO's, no length bias). ``None``:
            ``sequence`` for ``grpo``, ``constant`` for ``dr_grpo``, ``token`` otherwise.
        ppo_epochs: passes over each rollout batch (at least 1).
        minibatch_size: rationales per optimizer step within a pass (at least 1).
        clip_range: PPO ratio clipping epsilon (above 0).
        clip_low: the lower epsilon, ratios below ``1 - clip_low`` are clipped (above 0;
            ``None``: ``clip_range``).
        clip_high: the upper epsilon, ratios above ``1 + clip_high`` are clipped (above 0;
            ``None``: ``clip_range``). DAPO's "clip-higher" uses ``clip_low: 0.2``,
            ``clip_high: 0.28``.
        clip_range_value: value clipping around the rollout values (above 0; ``None``: none).
        vf_coef: weight of the value loss (at least 0).
        entropy_coef: weight of an entropy bonus (at least 0; 0: none).
        gamma: discount per token, in [0, 1].
        lam: GAE lambda, in [0, 1].
        whiten_advantages: normalise advantages over each rollout batch: per token for
            ``gae``; for ``rloo`` per rationale and by scale only (the leave-one-out
            advantages of a question already sum to 0, and weighting them by token count
            would turn the shift into a length bonus or penalty; ``scst`` likewise, its sign
            kept). ``None``: on for ``gae``, ``rloo`` and ``scst``, off for ``grpo`` and
            ``dr_grpo``, whose advantages are normalised by their own definition (so ``true``
            is refused there).
        kl_estimator: how the KL to the reference is estimated per token, and so where it
            acts. ``k1`` (``log p - log q``): a per-token reward, the score less ``beta`` times
            the rationale's KL (``gae`` and ``rloo``; k1 is the estimator whose expected
            gradient is the KL's there). ``k3`` (``q/p - 1 - log(q/p)``): a loss term,
            ``beta`` times the per-token k3 aggregated like the policy loss, with the score
            holding only rewards and penalties (``grpo`` and ``dr_grpo``, as the GRPO paper and
            TRL: a KL inside the score would be divided by the group's std, turning KL noise
            into full-size advantages). ``None``: ``k1`` for ``gae``/``rloo``/``scst``, ``k3``
            for ``grpo``/``dr_grpo``; the other pairings are refused. k3 is logged as ``kl/k3``.
        init_kl_coef: starting KL coefficient (``beta``; at least 0): of the KL reward, or of
            the KL loss term under ``grpo``/``dr_grpo``.
        target_kl: KL the adaptive controller steers to by changing ``beta`` (above 0;
            ``None``: the coefficient stays fixed).
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
        overlong_buffer: DAPO's soft overlong penalty: the last ``overlong_buffer`` tokens
            before ``rollout.max_new_tokens`` cost up to ``overlong_penalty`` from the score,
            linearly from 0 to all of it at the limit (at least 1, at most
            ``rollout.max_new_tokens``; ``None``: off).
        overlong_penalty: the most the overlong penalty takes off a score (at least 0).
        dynamic_sampling: what to do with the questions whose k samples all got the same
            reward (no signal for a group baseline; common with a 0/1 answer reward):
            ``off``, ``skip`` (their rationales leave the step's updates) or ``resample``
            (sample them again, up to ``max_resample_rounds`` times, then skip what is still
            constant). Counts are logged as ``ppo/groups_constant``, ``ppo/groups_resampled``
            and ``ppo/groups_skipped``.
        max_resample_rounds: how many times ``resample`` samples a constant group again (at
            least 1); each round costs reward calls.
        max_grad_norm: gradient-norm clipping of every optimizer step (of the true, unscaled
            gradients under ``16-mixed``; above 0; ``None``: no clipping).
        max_staleness: how many batches of rationales may be out for scoring by the reward
            while the policy goes on generating and updating (at least 0; 0: every step waits
            for its own rewards, the on-policy loop). Each batch is updated on ``N`` steps after
            it was generated, with the PPO ratio and the KL taken against the log-probs of the
            policy that generated it; the first ``N`` steps only generate (no update).
            Refused with ``dynamic_sampling: resample``, which needs the rewards at once, and
            with ``scst``, whose baseline is the current policy's greedy rationale.
    """

    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    samples_per_question: int = 1
    advantage: Literal["gae", "rloo", "grpo", "dr_grpo", "scst"] = "gae"
    loss_aggregation: Literal["token", "sequence", "constant"] | None = None
    ppo_epochs: int = 4
    minibatch_size: int = 8
    clip_range: float = 0.2
    clip_low: float | None = None
    clip_high: float | None = None
    clip_range_value: float | None = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool | None = None
    kl_estimator: Literal["k1", "k3"] | None = None
    init_kl_coef: float = 0.05
    target_kl: float | None = 6.0
    kl_horizon: int = 10000
    reward_scaling: Literal["none", "running_std", "running_zscore"] = "none"
    reward_std_floor: float = 0.1
    reward_clip: float | None = None
    missing_eos_penalty: float = 0.0
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0
    dynamic_sampling: Literal["off", "skip", "resample"] = "off"
    max_resample_rounds: int = 1
    max_grad_norm: float | None = 1.0
    max_staleness: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.rollout, dict):  # a partial dict keeps the rollout defaults
            self.rollout = RolloutConfig(**self.rollout)
        elif not isinstance(self.rollout, RolloutConfig):  # a GenerationConfig: checked too
            self.rollout = RolloutConfig(**asdict(self.rollout))
        check_at_least("ppo.samples_per_question", self.samples_per_question, 1)
        needs_groups = {
            f"advantage {self.advantage!r}": self.advantage not in ("gae", "scst"),
            f"dynamic_sampling {self.dynamic_sampling!r}": self.dynamic_sampling != "off"
            and self.advantage != "scst",
        }
        for what, needed in needs_groups.items():
            if needed and self.samples_per_question < 2:
                raise ConfigurationError(
                    f"ppo.samples_per_question must be at least 2 for {what} (a sample is "
                    f"judged against the other samples of its question), got "
                    f"{self.samples_per_question}"
                )
        if self.whiten_advantages and self.advantage in ("grpo", "dr_grpo"):
            raise ConfigurationError(
                f"ppo.whiten_advantages=true with advantage {self.advantage!r}: its advantages "
                "are already normalised per question by definition (Dr. GRPO drops the std on "
                "purpose); leave whiten_advantages unset or false"
            )
        check_at_least("ppo.ppo_epochs", self.ppo_epochs, 1)
        check_at_least("ppo.minibatch_size", self.minibatch_size, 1)
        check_positive("ppo.clip_range", self.clip_range)
        check_positive("ppo.clip_low", self.clip_low)
        check_positive("ppo.clip_high", self.clip_high)
        check_positive("ppo.clip_range_value", self.clip_range_value)
        check_at_least("ppo.vf_coef", self.vf_coef, 0)
        check_at_least("ppo.entropy_coef", self.entropy_coef, 0)
        check_probability("ppo.gamma", self.gamma)
        check_probability("ppo.lam", self.lam)
        wanted = "k3" if self.advantage in ("grpo", "dr_grpo") else "k1"
        if self.kl_estimator not in (None, wanted):
            why = (
                "the KL penalty is a per-token reward there, and only k1 (log p - log q) has "
                "the KL's expected gradient as a reward"
                if wanted == "k1"
                else "the KL is a loss term there (the score is normalised by its group's "
                "std, which would turn a KL reward into noise-sized advantages), and a k1 "
                "loss term has no gradient toward the reference in expectation"
            )
            raise ConfigurationError(
                f"ppo.kl_estimator={self.kl_estimator!r} with advantage {self.advantage!r}: "
                f"{why}; use kl_estimator: {wanted} or leave it unset"
            )
        check_at_least("ppo.init_kl_coef", self.init_kl_coef, 0)
        check_positive("ppo.target_kl", self.target_kl)
        check_at_least("ppo.kl_horizon", self.kl_horizon, 1)
        check_positive("ppo.reward_std_floor", self.reward_std_floor)
        check_positive("ppo.reward_clip", self.reward_clip)
        check_at_least("ppo.missing_eos_penalty", self.missing_eos_penalty, 0)
        if self.overlong_buffer is not None:
            limit = self.rollout.max_new_tokens
            check_at_least("ppo.overlong_buffer", self.overlong_buffer, 1)
            if self.overlong_buffer > limit:
                raise ConfigurationError(
                    f"ppo.overlong_buffer must be at most ppo.rollout.max_new_tokens ({limit}), "
                    f"got {self.overlong_buffer}"
                )
        check_at_least("ppo.overlong_penalty", self.overlong_penalty, 0)
        check_at_least("ppo.max_resample_rounds", self.max_resample_rounds, 1)
        check_positive("ppo.max_grad_norm", self.max_grad_norm)
        check_at_least("ppo.max_staleness", self.max_staleness, 0)
        if self.max_staleness and self.dynamic_sampling == "resample":
            raise ConfigurationError(
                f"ppo.dynamic_sampling='resample' with ppo.max_staleness={self.max_staleness}: "
                "resampling needs a batch's rewards before the step goes on, which is what "
                "staleness defers; use dynamic_sampling: skip, or max_staleness: 0"
            )
        if self.max_staleness and self.advantage == "scst":
            raise ConfigurationError(
                f"ppo.advantage='scst' with ppo.max_staleness={self.max_staleness}: the "
                "self-critical baseline is the greedy rationale of the policy that sampled, "
                "scored with the samples; use max_staleness: 0, or advantage: rloo"
            )

    @property
    def aggregation(self) -> str:
        """``loss_aggregation`` with its default for the advantage filled in."""
        if self.loss_aggregation is not None:
            return self.loss_aggregation
        return {"grpo": "sequence", "dr_grpo": "constant"}.get(self.advantage, "token")

    @property
    def whiten(self) -> bool:
        """``whiten_advantages`` with its default for the advantage filled in."""
        if self.whiten_advantages is not None:
            return self.whiten_advantages
        return self.advantage in ("gae", "rloo", "scst")

    @property
    def estimator(self) -> str:
        """``kl_estimator`` with its default for the advantage filled in."""
        return self.kl_estimator or ("k3" if self.kl_in_loss else "k1")

    @property
    def kl_in_loss(self) -> bool:
        """Whether the KL is a loss term (``grpo``, ``dr_grpo``) rather than in the score."""
        return self.advantage in ("grpo", "dr_grpo")

    @property
    def clip_bounds(self) -> tuple[float, float]:
        """The (lower, upper) ratio epsilons."""
        low = self.clip_range if self.clip_low is None else self.clip_low
        high = self.clip_range if self.clip_high is None else self.clip_high
        return low, high
