"""Official HotpotQA / 2WikiMultiHopQA answer and supporting-fact scores, plain and as torchmetrics.

The plain functions follow ``hotpot_evaluate_v1.py`` line for line, quirks included:
- answers are normalised SQuAD-style (lower case, no punctuation, no articles, white space folded);
- F1 is 0 when either side normalises to ``yes``/``no``/``noanswer`` and the two differ;
- two answers that both normalise to the empty string have EM 1 but F1 0 (no shared token);
- a prediction file that lacks an id scores 0 on it; the mean is over all gold records.
2Wiki's script is the same, with the best score over the gold answer and its aliases, each
of EM, F1, precision and recall maximised separately.

The torchmetrics classes keep sums and counts (float64), so a DDP reduction gives exactly the
numbers one process would.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchmetrics import Metric

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """SQuAD/HotpotQA answer normalisation (lower, strip punctuation and articles, fold spaces)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class AnswerScore:
    """EM, F1, precision and recall of one predicted answer."""

    em: float
    f1: float
    precision: float
    recall: float


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the two answers normalise to the same string."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def answer_f1(prediction: str, gold: str) -> tuple[float, float, float]:
    """Token F1, precision and recall, with the official yes/no/noanswer rule."""
    pred = normalize_answer(prediction)
    ref = normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0, 0.0, 0.0
    pred_tokens = pred.split()
    ref_tokens = ref.split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall


def answer_inclusion(prediction: str, gold: str) -> float:
    """1.0 when the normalised gold answer occurs in the normalised prediction as whole words."""
    ref = normalize_answer(gold)
    if not ref:
        return 0.0
    return float(f" {ref} " in f" {normalize_answer(prediction)} ")


def best_inclusion(prediction: str, golds: str | Sequence[str]) -> float:
    """Answer inclusion against a gold answer or any of its accepted aliases."""
    golds = [golds] if isinstance(golds, str) else golds
    return max((answer_inclusion(prediction, gold) for gold in golds), default=0.0)


def score_answer(prediction: str, golds: str | Sequence[str]) -> AnswerScore:
    """Score one prediction against a gold answer or a list of accepted answers (2Wiki aliases)."""
    if isinstance(golds, str):
        golds = [golds]
    if not golds:
        raise ValueError("score_answer needs at least one gold answer")
    em = f1 = precision = recall = 0.0
    for gold in golds:
        cur_f1, cur_p, cur_r = answer_f1(prediction, gold)
        em = max(em, exact_match(prediction, gold))
        f1, precision, recall = max(f1, cur_f1), max(precision, cur_p), max(recall, cur_r)
    return AnswerScore(em, f1, precision, recall)


def score_supporting_facts(
    predicted: Iterable[Sequence[Any]], gold: Iterable[Sequence[Any]]
) -> AnswerScore:
    """Supporting-fact EM/F1/precision/recall over sets of (title, sent_id) pairs."""
    pred_set = {(str(t), int(s)) for t, s in predicted}
    gold_set = {(str(t), int(s)) for t, s in gold}
    tp = len(pred_set & gold_set)
    fp = len(pred_set - gold_set)
    fn = len(gold_set - pred_set)
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    em = 1.0 if fp + fn == 0 else 0.0
    return AnswerScore(em, f1, precision, recall)


def joint_score(answer: AnswerScore, sp: AnswerScore) -> AnswerScore:
    """The official joint metric: products of precision, recall and EM; F1 from those."""
    precision = answer.precision * sp.precision
    recall = answer.recall * sp.recall
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return AnswerScore(answer.em * sp.em, f1, precision, recall)


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


class AnswerScores(_ScoreSums):
    """Mean answer EM, F1, precision and recall over a stream of (prediction, gold) pairs.

    ``update(preds, golds)``: ``golds[i]`` is a gold string or a list of accepted answers.
    """

    def update(self, preds: Sequence[str], golds: Sequence[str | Sequence[str]]) -> None:
        if len(preds) != len(golds):
            raise ValueError(f"{len(preds)} predictions but {len(golds)} gold answers")
        for pred, gold in zip(preds, golds):
            self._add(score_answer(pred, gold))


class SupportingFactScores(_ScoreSums):
    """Mean supporting-fact EM, F1, precision and recall over (predicted set, gold set) pairs."""

    def update(
        self, preds: Sequence[Iterable[Sequence[Any]]], golds: Sequence[Iterable[Sequence[Any]]]
    ) -> None:
        if len(preds) != len(golds):
            raise ValueError(f"{len(preds)} predictions but {len(golds)} gold sets")
        for pred, gold in zip(preds, golds):
            self._add(score_supporting_facts(pred, gold))


@dataclass(frozen=True)
class GoldExample:
    """What the official scorer needs of a gold record."""

    id: str
    answers: Sequence[str]
    supporting_facts: Sequence[Sequence[Any]] = ()


def score_predictions(
    predictions: Mapping[str, Any], gold: Iterable[GoldExample]
) -> dict[str, float]:
    """Score an official-format prediction dict ``{"answer": {id: str}, "sp": {id: [[t, s]]}}``.

    Returns means over the gold records of ``em, f1, prec, recall`` and, when the predictions
    carry an ``sp`` section, ``sp_*`` and ``joint_*`` too (the keys the official script
    prints). An id missing from the predictions scores 0, as in the official script.
    """
    answers = predictions.get("answer", {}) or {}
    sp_preds = predictions.get("sp")
    zero = AnswerScore(0.0, 0.0, 0.0, 0.0)
    totals: Counter[str] = Counter()
    n = 0
    for example in gold:
        n += 1
        ans = score_answer(answers[example.id], example.answers) if example.id in answers else zero
        _accumulate(totals, "", ans)
        if sp_preds is not None:
            sp = (
                score_supporting_facts(sp_preds[example.id], example.supporting_facts)
                if example.id in sp_preds
                else zero
            )
            _accumulate(totals, "sp_", sp)
            _accumulate(totals, "joint_", joint_score(ans, sp))
    if n == 0:
        raise ValueError("no gold records to score against")
    return {key: value / n for key, value in totals.items()}


def _accumulate(totals: Counter[str], prefix: str, score: AnswerScore) -> None:
    totals[f"{prefix}em"] += score.em
    totals[f"{prefix}f1"] += score.f1
    totals[f"{prefix}prec"] += score.precision
    totals[f"{prefix}recall"] += score.recall


def read_prediction_file(path: str | Path) -> dict[str, Any]:
    """Load and check an official-format prediction file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("answer"), dict):
        raise ValueError(f"{path}: field 'answer': expected an object mapping ids to answers")
    for rid, answer in data["answer"].items():
        if not isinstance(answer, str):
            raise ValueError(f"{path}: record {rid!r}: field 'answer': expected a string")
    if "sp" in data and not isinstance(data["sp"], dict):
        raise ValueError(
            f"{path}: field 'sp': expected an object mapping ids to [[title, sent_id]]"
        )
    return data
