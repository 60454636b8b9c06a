"""Official answer and supporting-fact scores: hand-checked cases, properties, torchmetrics parity."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_guided_cot.metrics import (
    AnswerScores,
    GoldExample,
    SupportingFactScores,
    answer_f1,
    answer_inclusion,
    exact_match,
    normalize_answer,
    read_prediction_file,
    score_answer,
    score_predictions,
    score_supporting_facts,
)

# (prediction, gold, EM, F1) worked out by hand from hotpot_evaluate_v1.py's rules.
HAND_CHECKED = [
    ("Paris", "Paris", 1, 1.0),
    ("paris", "PARIS", 1, 1.0),  # case
    ("The Paris", "Paris", 1, 1.0),  # leading article
    ("a cat", "the cat", 1, 1.0),  # different articles
    ("an apple pie", "apple pie", 1, 1.0),
    ("Theatre", "atre", 0, 0.0),  # "the" inside a word is not an article
    ("Paris.", "Paris", 1, 1.0),  # punctuation
    ("U.S.A.", "USA", 1, 1.0),  # dots dropped, letters joined
    ("Saint-Denis", "SaintDenis", 1, 1.0),  # hyphen removed, not split
    ("  New   York  ", "New York", 1, 1.0),  # white space folded
    ("New\tYork\n", "new york", 1, 1.0),
    ("New York City", "New York", 0, 0.8),  # P = 2/3, R = 1 -> 0.8
    ("York", "New York", 0, 2 / 3),  # P = 1, R = 1/2
    ("Paris France", "Lyon France", 0, 0.5),
    ("the the the", "the", 1, 0.0),  # both empty after normalisation: EM 1, F1 0 (official quirk)
    ("", "", 1, 0.0),  # empty strings: same quirk
    ("", "Paris", 0, 0.0),
    ("Paris", "", 0, 0.0),
    ("yes", "yes", 1, 1.0),
    ("Yes.", "yes", 1, 1.0),
    ("yes", "no", 0, 0.0),
    ("yes it is", "yes", 0, 0.0),  # gold is yes, prediction differs -> F1 forced to 0
    ("no", "no way", 0, 0.0),  # prediction is "no", gold differs -> 0 despite a shared token
    ("noanswer", "the answer", 0, 0.0),
    ("no answer", "answer", 0, 2 / 3),  # "no answer" is not the special "noanswer"
    ("Zürich", "zürich", 1, 1.0),  # unicode letters lowercased, kept
    ("Ångström", "Angstrom", 0, 0.0),  # accents are not stripped
    ("café, bar", "Café Bar", 1, 1.0),
    ("1,000", "1000", 1, 1.0),
    ("cat cat dog", "cat dog dog", 0, 2 / 3),  # multiset overlap: cat 1 + dog 1 = 2 of 3
    ("— Paris —", "Paris", 0, 0.5),  # em dash is not in string.punctuation: a token; P = 1/3
]


@pytest.mark.parametrize(("pred", "gold", "em", "f1"), HAND_CHECKED)
def test_hand_checked_cases(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert answer_f1(pred, gold)[0] == pytest.approx(f1)


def test_hand_checked_case_count():
    assert len(HAND_CHECKED) >= 25


def test_precision_and_recall():
    f1, precision, recall = answer_f1("New York City", "New York")
    assert (precision, recall) == (pytest.approx(2 / 3), 1.0)
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))


def test_normalisation_examples():
    assert normalize_answer("The  Quick, brown FOX!") == "quick brown fox"
    assert normalize_answer("A-ha") == "aha"
    assert normalize_answer("") == ""


def test_aliases_take_the_best_of_each_score():
    assert (
        score_answer("United States", ["USA", "United States of America", "United States"]).em
        == 1.0
    )
    score = score_answer("United States of", ["USA", "United States of America"])
    assert score.em == 0.0
    assert score.f1 == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert score.precision == 1.0 and score.recall == 0.75
    assert score_answer("x", "x").em == 1.0  # a plain string gold works too
    with pytest.raises(ValueError):
        score_answer("x", [])


def test_answer_inclusion_matches_whole_words_after_normalisation():
    assert answer_inclusion("I think it is the Eiffel Tower.", "Eiffel tower") == 1.0
    assert answer_inclusion("Eiffelton", "Eiffel") == 0.0
    assert answer_inclusion("anything", "the") == 0.0  # gold normalises to empty


def test_supporting_facts_scores():
    gold = [["A", 0], ["B", 2]]
    assert score_supporting_facts([["A", 0], ["B", 2]], gold).em == 1.0
    partial = score_supporting_facts([["A", 0], ["C", 1]], gold)
    assert (partial.em, partial.precision, partial.recall, partial.f1) == (0.0, 0.5, 0.5, 0.5)
    assert score_supporting_facts([], gold).f1 == 0.0
    assert score_supporting_facts([("A", 0), ("A", 0)], [("A", 0)]).em == 1.0  # sets


# ---- properties -------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "S")), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(_text, _text)
def test_em_at_most_f1_within_unit_interval(pred, gold):
    special = {"yes", "no", "noanswer"}
    if normalize_answer(pred) in special or normalize_answer(gold) in special:
        return
    if not normalize_answer(gold):  # both-empty quirk: EM 1 with F1 0 (see HAND_CHECKED)
        return
    em = exact_match(pred, gold)
    f1, precision, recall = answer_f1(pred, gold)
    assert 0.0 <= em <= f1 <= 1.0
    assert 0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0


@settings(max_examples=300, deadline=None)
@given(_text)
def test_normalisation_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@settings(max_examples=300, deadline=None)
@given(_text)
def test_identical_strings_score_one(text):
    assert exact_match(text, text) == 1.0
    if normalize_answer(text):
        assert answer_f1(text, text) == (1.0, 1.0, 1.0)


# ---- torchmetrics ------------------------------------------------------------------------

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


# ---- official prediction files ---------------------------------------------------------------


def test_prediction_file_scores_as_official_script(tmp_path):
    gold = [
        GoldExample("1", ["Paris"], [("A", 0), ("B", 1)]),
        GoldExample("2", ["yes"], [("C", 0)]),
        GoldExample("3", ["New York"], [("D", 0)]),  # missing from predictions: counts as 0
    ]
    predictions = {
        "answer": {"1": "paris", "2": "no"},
        "sp": {"1": [["A", 0], ["B", 1]], "2": [["C", 0], ["X", 3]]},
    }
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    result = score_predictions(read_prediction_file(path), gold)
    assert result["em"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(1 / 3)
    assert result["sp_em"] == pytest.approx(1 / 3)
    assert result["sp_f1"] == pytest.approx((1.0 + 2 * 0.5 * 1.0 / 1.5 + 0.0) / 3)
    # joint: example 1 is perfect; example 2 has answer P=R=0; example 3 is missing
    assert result["joint_f1"] == pytest.approx(1 / 3)
    assert result["joint_em"] == pytest.approx(1 / 3)
    assert not any(math.isnan(v) for v in result.values())


def test_prediction_file_without_sp_has_answer_keys_only():
    result = score_predictions({"answer": {"1": "Paris"}}, [GoldExample("1", ["Paris"])])
    assert result == {"em": 1.0, "f1": 1.0, "prec": 1.0, "recall": 1.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"sp": {}}', "field 'answer'"),
        ('{"answer": {"1": 3}}', "record '1': field 'answer': expected a string"),
    ],
)
def test_bad_prediction_file_names_file_and_field(tmp_path, content, message):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        read_prediction_file(path)
    assert str(path) in str(caught.value)
