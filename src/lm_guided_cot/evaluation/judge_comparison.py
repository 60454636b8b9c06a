"""The judge check's arithmetic: per aspect, each row's mean over the questions and the paired
oracle - decoy difference with its bootstrap interval (pure functions over scores)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lm_guided_cot.evaluation.bootstrap import PairedDifference, paired_bootstrap
from lm_guided_cot.roles import JudgeOutput

ORACLE, DECOY = "oracle", "decoy"
MEAN = "mean"  # the row of the mean over aspects, per question
CANNOT_TELL = "cannot tell apart"


@dataclass(frozen=True)
class AspectCheck:
    """One aspect (or ``mean``): each row's mean score, and oracle - decoy paired over the
    questions, with how many questions rated the oracle higher."""

    aspect: str
    means: dict[str, float]
    difference: PairedDifference
    oracle_higher: int

    @property
    def verdict(self) -> str:
        if self.difference.low > 0:
            return "oracle higher"
        if self.difference.high < 0:
            return "decoy higher"
        return CANNOT_TELL


def question_scores(
    outputs: Sequence[JudgeOutput], groups: Sequence[int], aspects: Sequence[str]
) -> list[dict[str, float]]:
    """Per question, each aspect's mean over the question's ``groups[i]`` consecutive outputs
    (one per rationale), and ``mean`` over the aspects."""
    scores, start = [], 0
    for size in groups:
        judged = outputs[start : start + size]
        start += size
        per = {a: statistics.fmean(o.scores[a] for o in judged) for a in aspects}
        per[MEAN] = statistics.fmean(per[a] for a in aspects)
        scores.append(per)
    return scores


def compare_rows(
    scores: Mapping[str, Sequence[Mapping[str, float]]],
    aspects: Sequence[str],
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[AspectCheck]:
    """For each aspect and ``mean``: every row's mean, and the paired bootstrap of oracle
    minus decoy. ``scores`` holds, per row, one ``{aspect: score}`` per question (the rows'
    questions in the same order); it must have ``oracle`` and ``decoy`` rows."""
    checks = []
    for aspect in [*aspects, MEAN]:
        oracle = [q[aspect] for q in scores[ORACLE]]
        decoy = [q[aspect] for q in scores[DECOY]]
        checks.append(
            AspectCheck(
                aspect,
                {row: statistics.fmean(q[aspect] for q in qs) for row, qs in scores.items()},
                paired_bootstrap(oracle, decoy, resamples, confidence, seed),
                sum(o > d for o, d in zip(oracle, decoy, strict=True)),
            )
        )
    return checks


def check_header(rows: Sequence[str]) -> tuple[str, ...]:
    return (
        "aspect",
        *rows,
        "oracle - decoy",
        "ci low",
        "ci high",
        "p",
        "oracle higher",
        "verdict",
    )


def check_rows(checks: Sequence[AspectCheck], rows: Sequence[str], n: int) -> list[list[Any]]:
    """Raw rows in ``check_header`` order."""
    return [
        [
            c.aspect,
            *(c.means[r] for r in rows),
            c.difference.mean,
            c.difference.low,
            c.difference.high,
            c.difference.p_value,
            f"{c.oracle_higher}/{n}",
            c.verdict,
        ]
        for c in checks
    ]
