"""Official HotpotQA / 2WikiMultiHopQA scores: ``scores`` (one prediction, plain functions),
``official`` (prediction files) and ``torch_metrics`` (the scores as torchmetrics).

Importing this package loads no torch, so scoring a file stays light: the torchmetrics
classes live in ``lm_guided_cot.metrics.torch_metrics`` (import them from there); their names
here are resolved on first use only, for callers that still import them from the package.
"""

from __future__ import annotations

import importlib
from typing import Any

from lm_guided_cot.metrics.official import (
    FIRST_IDS,
    OfficialReport,
    coverage_notes,
    official_report,
    percent_rounded,
    read_prediction_file,
    score_predictions,
)
from lm_guided_cot.metrics.scores import (
    BENCHMARKS,
    HOTPOTQA,
    TWOWIKI,
    AnswerMetric,
    AnswerScore,
    GoldExample,
    PredictionFormatError,
    answer_f1,
    answer_inclusion,
    answer_score,
    best_inclusion,
    evidence_forms,
    exact_match,
    joint_score,
    normalize_answer,
    normalize_evidence_text,
    score_answer,
    score_evidence,
    score_supporting_facts,
)

# The bridge for callers not yet importing from ``torch_metrics``: loads torch on first use.
_TORCH_METRICS = ("AnswerScores", "EvidenceScores", "JointScores", "SupportingFactScores")


def __getattr__(name: str) -> Any:
    if name in _TORCH_METRICS:
        return getattr(importlib.import_module("lm_guided_cot.metrics.torch_metrics"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BENCHMARKS",
    "FIRST_IDS",
    "HOTPOTQA",
    "TWOWIKI",
    "AnswerMetric",
    "AnswerScore",
    "GoldExample",
    "OfficialReport",
    "PredictionFormatError",
    "answer_f1",
    "answer_inclusion",
    "answer_score",
    "best_inclusion",
    "coverage_notes",
    "evidence_forms",
    "exact_match",
    "joint_score",
    "normalize_answer",
    "normalize_evidence_text",
    "official_report",
    "percent_rounded",
    "read_prediction_file",
    "score_answer",
    "score_evidence",
    "score_predictions",
    "score_supporting_facts",
]
