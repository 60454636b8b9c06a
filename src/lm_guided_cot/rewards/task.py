"""Task-oriented rewards: how well the large LM answers with the rationale.

- ``AnswerReward``: the reader answers with the rationale; the reward is its F1 (EM or answer
  inclusion as options) against the gold answers -- the paper's task reward.
- ``MarginalUtilityReward``: that score minus the score of the reader's answer *without* the
  rationale, so a rationale earns only what it adds (aimed at the paper's observation that
  the best-rated rationales are not always the most useful).
- ``AnswerMentionReward``: no large LM at all: a rule-based reader that answers right only
  when the rationale contains the gold answer. For debugging, tests and smoke runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import check_finite
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.metrics import AnswerMetric, answer_score, normalize_answer
from lm_guided_cot.rewards.base import (
    RewardFunction,
    RewardOutput,
    as_tensor,
    check_lengths,
    check_reward_calls,
)
from lm_guided_cot.roles import Reader, ReaderConfig


class AnswerReward(RewardFunction):
    """The reader's answer score with the rationale (a failed call scores ``fallback``; a batch
    whose calls failed at ``llm.max_failure_rate``, by default all of them, stops the run).

    Args:
        llm: the large LM that reads the rationale and answers.
        reader: its prompt and parsing.
        metric: ``f1`` (the paper's), ``em`` or ``inclusion`` (the gold answer occurs in the reply).
        fallback: reward of a rationale whose reader call failed after all retries (a
            finite number).
    """

    name = "answer"

    def __init__(
        self,
        llm: LLMConfig | None = None,
        reader: ReaderConfig | None = None,
        metric: AnswerMetric = "f1",
        fallback: float = 0.0,
    ) -> None:
        check_finite(f"{type(self).__name__}.fallback", fallback)
        self.client = client_for(llm or LLMConfig())
        self.reader = Reader(self.client, reader)
        self.metric = metric
        self.fallback = fallback

    async def _scores(
        self, records: Sequence[QARecord], rationales: Sequence[str | None]
    ) -> tuple[list[float], list[str]]:
        """The scores, and the errors of the calls that failed."""
        outputs = await self.reader.aanswer(records, rationales)
        scores, errors = [], []
        for record, output in zip(records, outputs):
            if output.error is not None:
                errors.append(output.error)
                scores.append(self.fallback)
            else:
                scores.append(answer_score(output.answer, record.gold_answers, self.metric))
        return scores, errors

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        scores, errors = await self._scores(records, rationales)
        failures = len(errors)
        check_reward_calls(self, failures, len(records), next(iter(errors), None))
        total = as_tensor(scores)
        return RewardOutput(
            total, {self.name: total}, {f"{self.name}/failed_calls": float(failures)}
        )


class MarginalUtilityReward(AnswerReward):
    """Score with the rationale minus score without it (the latter cached per question)."""

    name = "marginal_utility"

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        with_rationale, errors = await self._scores(records, rationales)
        # Same prompt for every sample of a question: the client's cache answers repeats.
        without, errors_without = await self._scores(records, [None] * len(records))
        failures, failures_without = len(errors), len(errors_without)
        first = next(iter(errors + errors_without), None)
        check_reward_calls(self, failures + failures_without, 2 * len(records), first)
        total = as_tensor([a - b for a, b in zip(with_rationale, without)])
        return RewardOutput(
            total,
            {
                self.name: total,
                f"{self.name}/with": as_tensor(with_rationale),
                f"{self.name}/without": as_tensor(without),
            },
            {f"{self.name}/failed_calls": float(failures + failures_without)},
        )


class AnswerMentionReward(RewardFunction):
    """A rule-based reader with no LLM: it answers right only when the rationale contains the
    gold answer (normalised, as whole words); the reward is that answer's ``metric`` score."""

    name = "answer_mention"

    def __init__(self, metric: AnswerMetric = "f1") -> None:
        self.metric = metric

    def __call__(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        scores = []
        for record, rationale in zip(records, rationales):
            text = f" {normalize_answer(rationale)} "
            found = next(
                (
                    g
                    for g in record.gold_answers
                    if normalize_answer(g) and f" {normalize_answer(g)} " in text
                ),
                None,
            )
            scores.append(answer_score(found, record.gold_answers, self.metric) if found else 0.0)
        total = as_tensor(scores)
        return RewardOutput(total, {self.name: total})
