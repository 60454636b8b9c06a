"""Task-oriented rewards: how well the large LM answers with the rationale.

- ``AnswerReward``: the reader answers with the rationale; the reward is its F1 (EM or answer
  inclusion as options) against the gold answers -- the paper's task reward. With
  ``samples`` n > 1 the reader answers n times at ``sample_temperature`` and the reward is the
  mean score: an estimate of the expected F1, which tells apart rationales that a greedy
  reader answers alike (every leave-one-out advantage 0, no signal for stage 2).
- ``MarginalUtilityReward``: that score minus the score of the reader's answer *without* the
  rationale, so a rationale earns only what it adds (aimed at the paper's observation that
  the best-rated rationales are not always the most useful).
- ``AnswerMentionReward``: no large LM at all: a rule-based reader that answers right only
  when the rationale contains the gold answer. For debugging, tests and smoke runs.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import ConfigurationError, check_at_least, check_finite, check_positive
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


@dataclass
class _Scores:
    """Per (question, rationale): the mean answer score over the replies that came back and
    their population std (0 below two replies); with the calls made and the errors of those
    that failed, in all."""

    means: list[float]
    stds: list[float]
    calls: int
    errors: list[str]

    @property
    def failures(self) -> int:
        return len(self.errors)


class AnswerReward(RewardFunction):
    """The reader's answer score with the rationale (a failed call scores ``fallback``; a batch
    whose calls failed at ``llm.max_failure_rate``, by default all of them, stops the run).

    Args:
        llm: the large LM that reads the rationale and answers.
        reader: its prompt and parsing.
        metric: ``f1`` (the paper's), ``em`` or ``inclusion`` (the gold answer occurs in the reply).
        fallback: reward of a rationale whose reader calls all failed after all retries (a
            finite number).
        samples: answers per rationale (at least 1). With n > 1 the reader answers each
            (question, rationale) n times at ``sample_temperature``, each its own request
            (cached apart: a rerun asks nothing), and the reward is the mean score of the
            replies that came back (failed calls are left out of the mean and counted; all n
            failed: ``fallback``). Logged besides: ``<name>/sample_std``, the spread of each
            rationale's n scores. Costs n reader calls per rationale.
        sample_temperature: the reader's temperature for the n samples (above 0; needed when
            ``samples`` > 1, where greedy replies would be one reply n times). ``None``: the
            reader's own sampling.
    """

    name = "answer"

    def __init__(
        self,
        llm: LLMConfig | None = None,
        reader: ReaderConfig | None = None,
        metric: AnswerMetric = "f1",
        fallback: float = 0.0,
        samples: int = 1,
        sample_temperature: float | None = None,
    ) -> None:
        owner = type(self).__name__
        check_finite(f"{owner}.fallback", fallback)
        check_at_least(f"{owner}.samples", samples, 1)
        check_positive(f"{owner}.sample_temperature", sample_temperature)
        if samples > 1 and sample_temperature is None:
            raise ConfigurationError(
                f"{owner}.samples={samples} needs {owner}.sample_temperature (above 0, such "
                "as 0.7): the reader's default decoding is greedy, which answers n times alike"
            )
        self.client = client_for(llm or LLMConfig())
        self.reader = Reader(self.client, reader)
        self.metric = metric
        self.fallback = fallback
        self.samples = samples
        self.sample_temperature = sample_temperature

    def for_validation(self) -> AnswerReward:
        """With ``samples`` n > 1: the same reward from one greedy reply per rationale, as the
        evaluation table scores a guide (the n samples are the training signal's spread, not
        what the learning curve should measure); the client and its counters are shared."""
        if self.samples == 1:
            return self
        greedy = copy.copy(self)
        greedy.samples, greedy.sample_temperature = 1, None
        return greedy

    async def _scores(
        self, records: Sequence[QARecord], rationales: Sequence[str | None]
    ) -> _Scores:
        answers = await self.reader.asample(
            records, rationales, self.samples, self.sample_temperature
        )
        means, stds, calls, errors = [], [], 0, []
        for record, outputs in zip(records, answers):
            scores = [
                answer_score(output.answer, record.gold_answers, self.metric)
                for output in outputs
                if output.error is None
            ]
            calls += len(outputs)
            errors += [output.error for output in outputs if output.error is not None]
            means.append(statistics.fmean(scores) if scores else self.fallback)
            stds.append(statistics.pstdev(scores) if len(scores) > 1 else 0.0)
        return _Scores(means, stds, calls, errors)

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        scores = await self._scores(records, rationales)
        check_reward_calls(self, scores.failures, scores.calls, next(iter(scores.errors), None))
        total = as_tensor(scores.means)
        components = {self.name: total}
        if self.samples > 1:
            components[f"{self.name}/sample_std"] = as_tensor(scores.stds)
        return RewardOutput(
            total, components, {f"{self.name}/failed_calls": float(scores.failures)}
        )


class MarginalUtilityReward(AnswerReward):
    """Score with the rationale minus score without it (the latter cached per question).

    With ``samples`` n > 1 both sides are means over n replies at ``sample_temperature``; the
    side without a rationale is the same n requests for every rationale of a question (sent
    once, then cached), so the k rationales of a question share one baseline. Arguments as
    ``AnswerReward``'s; ``<name>/with_sample_std`` is logged for n > 1.
    """

    name = "marginal_utility"

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        with_rationale = await self._scores(records, rationales)
        # Same prompt for every sample of a question: the client's cache answers repeats.
        without = await self._scores(records, [None] * len(records))
        check_reward_calls(
            self,
            with_rationale.failures + without.failures,
            with_rationale.calls + without.calls,
            next(iter(with_rationale.errors + without.errors), None),
        )
        total = as_tensor([a - b for a, b in zip(with_rationale.means, without.means)])
        components = {
            self.name: total,
            f"{self.name}/with": as_tensor(with_rationale.means),
            f"{self.name}/without": as_tensor(without.means),
        }
        if self.samples > 1:
            components[f"{self.name}/with_sample_std"] = as_tensor(with_rationale.stds)
        return RewardOutput(
            total,
            components,
            {f"{self.name}/failed_calls": float(with_rationale.failures + without.failures)},
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
