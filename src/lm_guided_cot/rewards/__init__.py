"""Rewards for stage 2: task (answer F1), the gold answer's probability, rationale aspects (judge),
marginal utility, sums."""

from lm_guided_cot.rewards.aspects import AspectReward
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput
from lm_guided_cot.rewards.combine import WeightedSum
from lm_guided_cot.rewards.likelihood import GoldAnswerProbabilityReward
from lm_guided_cot.rewards.task import AnswerMentionReward, AnswerReward, MarginalUtilityReward

__all__ = [
    "AnswerMentionReward",
    "AnswerReward",
    "AspectReward",
    "GoldAnswerProbabilityReward",
    "MarginalUtilityReward",
    "RewardFunction",
    "RewardOutput",
    "WeightedSum",
]
