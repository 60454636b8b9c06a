"""Rationale-oriented reward: a judge LLM scores quality aspects; the reward is their weighted mean.

Scores are mapped from the judge's scale to [0, 1] so that they combine with answer F1 on the
same footing (under the judge's ``logprobs`` protocol that is P(yes) itself); each aspect is
also reported on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import ConfigurationError, check_at_least, check_finite
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.rewards.base import (
    RewardFunction,
    RewardOutput,
    as_tensor,
    check_lengths,
    check_reward_calls,
)
from lm_guided_cot.roles import Judge, JudgeConfig
from lm_guided_cot.roles.judge import judge_counts


class AspectReward(RewardFunction):
    """The judge's aspect scores, rescaled to [0, 1] and averaged with weights (a batch whose
    judge calls failed at ``llm.max_failure_rate``, by default all of them, stops the run).

    Logs, summed over batches: ``aspects/parsed`` and ``aspects/unparsed`` (rationales scored
    with a fallback), ``aspects/protocol/<logprobs|json_schema|text>`` (rationales asked that
    way), ``aspects/calls`` and ``aspects/prompt_tokens`` (the judge's calls and their prompt
    tokens, cached ones included).

    Args:
        llm: the judge (the large LM by default).
        judge: aspects, scale, fallback score and prompt.
        weights: weight per aspect name (missing aspects weigh 1; 0 leaves one out). Each
            finite and at least 0 (the total is a weighted mean on [0, 1]), not all 0.
    """

    name = "aspects"

    def __init__(
        self,
        llm: LLMConfig | None = None,
        judge: JudgeConfig | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        judge = judge or JudgeConfig()
        names = [a.name for a in judge.aspects]
        unknown = set(weights or {}) - set(names)
        if unknown:
            raise ConfigurationError(
                f"AspectReward.weights for unknown aspects {sorted(unknown)}; aspects are {names}"
            )
        for name, weight in (weights or {}).items():
            check_finite(f"AspectReward.weights[{name!r}]", weight)
            check_at_least(f"AspectReward.weights[{name!r}]", weight, 0)
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in names}
        if sum(self.weights.values()) <= 0:
            raise ConfigurationError(f"AspectReward.weights must not all be 0, got {self.weights}")
        # Checked before the client is made: that may start a server.
        self.client = client_for(llm or LLMConfig())
        self.judge = Judge(self.client, judge)

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        low, high = self.judge.config.scale_min, self.judge.config.scale_max
        outputs = await self.judge.ascore(records, rationales)
        errors = [o.error for o in outputs if o.error is not None]
        check_reward_calls(self, len(errors), len(outputs), next(iter(errors), None))
        per_aspect = {
            n: [(o.scores[n] - low) / (high - low) for o in outputs] for n in self.weights
        }
        weight_sum = sum(self.weights.values())
        total = [
            sum(self.weights[n] * per_aspect[n][i] for n in self.weights) / weight_sum
            for i in range(len(outputs))
        ]
        components = {f"{self.name}/{n}": as_tensor(v) for n, v in per_aspect.items()}
        components[self.name] = as_tensor(total)
        logs = {f"{self.name}/{key}": value for key, value in judge_counts(outputs).items()}
        return RewardOutput(as_tensor(total), components, logs)
