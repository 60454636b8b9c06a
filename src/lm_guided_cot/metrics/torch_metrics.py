"""The official scores as torchmetrics, for validation inside training.

Each class keeps sums and counts (float64) of the plain ``scores`` functions, so a DDP
reduction gives exactly the numbers one process would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torchmetrics import Metric

from lm_guided_cot.metrics.scores import (
    HOTPOTQA,
    TWOWIKI,
    AnswerScore,
    check_benchmark,
    joint_score,
    score_answer,
    score_evidence,
    score_supporting_facts,
)


class _ScoreSums(Metric):
    """Sums of EM, F1, precision and recall plus a count; compute() returns their means."""

    full_state_update = False
    higher_is_better = True
    _names = ("em", "f1", "precision", "recall")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in self._names:
            self.add_state(
                f"{name}_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, score: AnswerScore) -> None:
        for name in self._names:
            state = getattr(self, f"{name}_sum")
            state += getattr(score, name)
        self.count += 1

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1).to(torch.float64)
        return {name: getattr(self, f"{name}_sum") / count for name in self._names}


def _same_length(preds: Sequence, golds: Sequence, what: str) -> None:
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions but {len(golds)} {what}")


class AnswerScores(_ScoreSums):
    """Mean answer EM, F1, precision and recall over a stream of (prediction, gold) pairs.

    ``update(preds, golds)``: ``golds[i]`` is a gold string or a list of accepted answers.
    """

    def update(self, preds: Sequence[str], golds: Sequence[str | Sequence[str]]) -> None:
        _same_length(preds, golds, "gold answers")
        for pred, gold in zip(preds, golds):
            self._add(score_answer(pred, gold))


class SupportingFactScores(_ScoreSums):
    """Mean supporting-fact EM, F1, precision and recall over (predicted set, gold set) pairs,
    compared as ``benchmark``'s official script compares them."""

    def __init__(self, benchmark: str = HOTPOTQA, **kwargs: Any) -> None:
        check_benchmark(benchmark)
        super().__init__(**kwargs)
        self.benchmark = benchmark

    def update(
        self, preds: Sequence[Iterable[Sequence[Any]]], golds: Sequence[Iterable[Sequence[Any]]]
    ) -> None:
        _same_length(preds, golds, "gold sets")
        for pred, gold in zip(preds, golds):
            self._add(score_supporting_facts(pred, gold, self.benchmark))


class EvidenceScores(_ScoreSums):
    """Mean 2Wiki evidence EM, F1, precision and recall; ``golds[i]`` lists each gold triple's
    accepted forms (``evidence_forms``)."""

    def update(
        self, preds: Sequence[Any], golds: Sequence[Sequence[Sequence[Sequence[str]]]]
    ) -> None:
        _same_length(preds, golds, "gold evidence lists")
        for pred, gold in zip(preds, golds):
            self._add(score_evidence(pred, gold))


class JointScores(_ScoreSums):
    """Mean official joint EM, F1, precision and recall: answer x supporting facts, and for
    2Wiki x evidence (``evidence``/``gold_evidence`` are then required)."""

    def __init__(self, benchmark: str = HOTPOTQA, **kwargs: Any) -> None:
        check_benchmark(benchmark)
        super().__init__(**kwargs)
        self.benchmark = benchmark

    def update(
        self,
        answers: Sequence[str],
        gold_answers: Sequence[str | Sequence[str]],
        sp: Sequence[Iterable[Sequence[Any]]],
        gold_sp: Sequence[Iterable[Sequence[Any]]],
        evidence: Sequence[Any] | None = None,
        gold_evidence: Sequence[Sequence[Sequence[Sequence[str]]]] | None = None,
    ) -> None:
        _same_length(answers, gold_answers, "gold answers")
        _same_length(sp, gold_sp, "gold sets")
        _same_length(answers, sp, "supporting-fact predictions")
        if self.benchmark == TWOWIKI:
            if evidence is None or gold_evidence is None:
                raise ValueError("2Wiki's joint score needs evidence and gold_evidence")
            _same_length(evidence, gold_evidence, "gold evidence lists")
            _same_length(answers, evidence, "evidence predictions")
        for i, (answer, gold) in enumerate(zip(answers, gold_answers)):
            sp_score = score_supporting_facts(sp[i], gold_sp[i], self.benchmark)
            evi = None
            if self.benchmark == TWOWIKI:
                evi = score_evidence(evidence[i], gold_evidence[i])  # type: ignore[index]
            self._add(joint_score(score_answer(answer, gold), sp_score, evi))
