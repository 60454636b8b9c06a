"""A weighted sum of rewards, each part logged under its own name."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import ConfigurationError, check_finite
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.usage import RoleUsage
from lm_guided_cot.rewards.base import (
    RewardFunction,
    RewardOutput,
    ascore_of,
    check_lengths,
    merge_usage,
    validation_reward,
)


class WeightedSum(RewardFunction):
    """``sum_i weight_i * reward_i``; components of every part are kept for the logs.

    Args:
        rewards: the parts (any reward classes, from YAML with class_path/init_args).
        weights: one weight per part (default: all 1). Each finite, not all 0; a negative
            weight makes its part a penalty.
    """

    name = "total"

    def __init__(self, rewards: list[RewardFunction], weights: list[float] | None = None) -> None:
        if not rewards:
            raise ConfigurationError("WeightedSum.rewards must hold at least one reward")
        weights = weights if weights is not None else [1.0] * len(rewards)
        if len(weights) != len(rewards):
            raise ConfigurationError(
                f"WeightedSum.weights must hold one weight per reward: {len(rewards)} rewards "
                f"but {len(weights)} weights"
            )
        for i, weight in enumerate(weights):
            check_finite(f"WeightedSum.weights[{i}]", weight)
        if not any(weights):
            raise ConfigurationError(f"WeightedSum.weights must not all be 0, got {weights}")
        self.rewards = rewards
        self.weights = [float(w) for w in weights]

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        total = torch.zeros(len(records))
        components: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        # The parts wait on the large LM: ask them all at once, within their endpoints' budgets.
        outputs = await asyncio.gather(
            *(ascore_of(reward, records, rationales) for reward in self.rewards)
        )
        for out, weight in zip(outputs, self.weights):
            total = total + weight * out.total
            components.update(out.components)
            logs.update(out.logs)
        return RewardOutput(total, components, logs)

    def for_validation(self) -> WeightedSum:
        parts = [validation_reward(reward) for reward in self.rewards]
        if all(part is reward for part, reward in zip(parts, self.rewards)):
            return self
        return WeightedSum(parts, self.weights)

    def clients(self) -> list[LLMClient]:
        return [c for r in self.rewards if isinstance(r, RewardFunction) for c in r.clients()]

    def role_usages(self) -> dict[str, RoleUsage] | None:
        return merge_usage(self.rewards)
