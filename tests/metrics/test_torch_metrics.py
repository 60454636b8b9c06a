"""The torchmetrics classes: equal to the plain scores, and shards merge as one pass."""

from __future__ import annotations

import pytest
import torch

from lm_guided_cot.metrics.official import score_predictions
from lm_guided_cot.metrics.scores import TWOWIKI, GoldExample, score_answer, score_supporting_facts
from lm_guided_cot.metrics.torch_metrics import (
    AnswerScores,
    EvidenceScores,
    JointScores,
    SupportingFactScores,
)
from tests.helpers import HAND_CHECKED, evidence_gold

_PAIRS = [(p, g) for p, g, _, _ in HAND_CHECKED] + [
    ("x", ["y", "x"]),
    ("USA", ["America", "United States"]),
]


def _plain_means(pairs):
    scores = [score_answer(p, g) for p, g in pairs]
    return {
        name: sum(getattr(s, name) for s in scores) / len(scores)
        for name in ("em", "f1", "precision", "recall")
    }


def test_answer_scores_metric_equals_plain_functions():
    metric = AnswerScores()
    preds, golds = zip(*_PAIRS)
    metric.update(list(preds[:10]), list(golds[:10]))
    metric.update(list(preds[10:]), list(golds[10:]))
    result = metric.compute()
    for name, value in _plain_means(_PAIRS).items():
        assert result[name].item() == pytest.approx(value, abs=1e-12)
        assert result[name].dtype == torch.float64


def test_answer_scores_merged_shards_equal_one_pass():
    preds, golds = zip(*_PAIRS)
    one = AnswerScores()
    one.update(list(preds), list(golds))
    shard_a, shard_b = AnswerScores(), AnswerScores()
    shard_a.update(list(preds[::2]), list(golds[::2]))
    shard_b.update(list(preds[1::2]), list(golds[1::2]))
    shard_a.merge_state(shard_b)  # what a DDP all-reduce of the sum states amounts to
    merged = shard_a.compute()
    for name, value in one.compute().items():
        assert merged[name].item() == pytest.approx(value.item(), abs=1e-12)
    assert shard_a.count.item() == len(_PAIRS)


def test_supporting_fact_metric_equals_plain_functions():
    preds = [[["A", 0]], [["A", 0], ["B", 1]], []]
    golds = [[["A", 0], ["B", 1]], [["A", 0], ["B", 1]], [["C", 0]]]
    metric = SupportingFactScores()
    metric.update(preds[:1], golds[:1])
    metric.update(preds[1:], golds[1:])
    result = metric.compute()
    expected_f1 = sum(score_supporting_facts(p, g).f1 for p, g in zip(preds, golds)) / 3
    assert result["f1"].item() == pytest.approx(expected_f1)
    assert result["em"].item() == pytest.approx(1 / 3)


def test_metric_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 predictions but 1 gold"):
        AnswerScores().update(["a", "b"], ["a"])


def test_2wiki_metric_and_file_scorer_lowercase_titles_alike():
    gold = [("Alpha", 0)]
    duplicates = [["Alpha", 0], ["alpha", 0]]
    # the metric and the file scorer compare the same way
    metric = SupportingFactScores(TWOWIKI)
    metric.update([[["alpha", 0]], duplicates], [gold, gold])
    assert metric.compute()["precision"].item() == 1.0
    result = score_predictions(
        {"answer": {"w": "x"}, "sp": {"w": duplicates}, "evidence": {"w": []}},
        [GoldExample("w", ["x"], gold)],
        TWOWIKI,
    )
    assert (result["sp_prec"], result["sp_recall"], result["sp_em"]) == (1.0, 1.0, 1.0)


def test_evidence_and_joint_metrics_equal_plain_functions():
    golds = [evidence_gold()] * 3
    answers = ["Gamma College", "Gamma", "nothing"]
    sp = [[["Alpha", 0], ["Beta", 1]], [["alpha", 0]], []]
    evidence = [[["alpha", "father", "beta"]], [["beta", "educated at", "gamma college"]], []]
    evi_metric, joint_metric = EvidenceScores(), JointScores(TWOWIKI)
    evi_metric.update(evidence[:1], [g.evidences for g in golds[:1]])
    evi_metric.update(evidence[1:], [g.evidences for g in golds[1:]])
    joint_metric.update(
        answers,
        [g.answers for g in golds],
        sp,
        [g.supporting_facts for g in golds],
        evidence,
        [g.evidences for g in golds],
    )
    predictions = {
        "answer": dict(zip("abc", answers)),
        "sp": dict(zip("abc", sp)),
        "evidence": dict(zip("abc", evidence)),
    }
    renamed = [
        GoldExample(i, g.answers, g.supporting_facts, g.evidences) for i, g in zip("abc", golds)
    ]
    plain = score_predictions(predictions, renamed, TWOWIKI)
    for name, key in (("em", "em"), ("f1", "f1"), ("precision", "prec"), ("recall", "recall")):
        assert evi_metric.compute()[name].item() == pytest.approx(plain[f"evi_{key}"], abs=1e-12)
        assert joint_metric.compute()[name].item() == pytest.approx(
            plain[f"joint_{key}"], abs=1e-12
        )
    with pytest.raises(ValueError, match="needs evidence"):
        JointScores(TWOWIKI).update(answers, [g.answers for g in golds], sp, sp)
