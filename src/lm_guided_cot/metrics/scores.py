"""The official HotpotQA / 2WikiMultiHopQA scores of one prediction, as plain functions.

They follow ``hotpot_evaluate_v1.py`` and 2Wiki's ``2wikimultihop_evaluate_v1.1.py`` line for
line, quirks included (README.md, "Metrics", lists them; tests/metrics/test_scores.py holds
each). No torch here: ``torch_metrics`` wraps these for training, ``official`` scores files.
"""

from __future__ import annotations

import itertools
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lm_guided_cot.errors import InputError

HOTPOTQA = "hotpotqa"
TWOWIKI = "2wikimultihopqa"
BENCHMARKS = (HOTPOTQA, TWOWIKI)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """SQuAD/HotpotQA answer normalisation (lower, strip punctuation and articles, fold spaces)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def normalize_evidence_text(text: str) -> str:
    """2Wiki's evidence normalisation: lower, strip punctuation, fold spaces (articles stay)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(text.split())


@dataclass(frozen=True)
class AnswerScore:
    """EM, F1, precision and recall of one prediction (answer, supporting facts or evidence)."""

    em: float
    f1: float
    precision: float
    recall: float


ZERO_SCORE = AnswerScore(0.0, 0.0, 0.0, 0.0)
"""The score of a gold id the predictions lack."""


class PredictionFormatError(InputError):
    """A prediction file that cannot be scored (unreadable, not the official layout, no gold id
    predicted), or an entry the official script cannot score either: it stops on it."""


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


AnswerMetric = Literal["em", "f1", "inclusion"]
"""How an answer is scored against its gold answers, wherever one is chosen (rewards, the
teacher's keep rule): exact match, token F1, or inclusion of a gold answer in the reply."""


def answer_score(prediction: str, golds: Sequence[str], metric: AnswerMetric) -> float:
    """The ``metric`` score of one answer against its gold answers (the best over aliases)."""
    if metric == "em":
        return score_answer(prediction, golds).em
    if metric == "f1":
        return score_answer(prediction, golds).f1
    if metric == "inclusion":
        return best_inclusion(prediction, golds)
    raise ValueError(f"unknown answer metric {metric!r}; use one of em, f1, inclusion")


def check_benchmark(benchmark: str) -> None:
    """``ValueError`` unless ``benchmark`` is one of ``BENCHMARKS``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")


def entry_tuples(entries: Any) -> set[tuple]:
    """``set(map(tuple, entries))``, as both scripts build their sets, or the entry it stops on."""
    if isinstance(entries, (int, float)) or entries is None:
        raise PredictionFormatError(f"expected a list, found {kind_of(entries)}")
    out = set()
    for entry in entries:
        try:
            out.add(tuple(entry))
        except TypeError:  # not iterable (a number, null) or holds a list/object (unhashable)
            raise PredictionFormatError(
                f"entry {entry!r} cannot be made a tuple of plain values"
            ) from None
    return out


def _lower_titles(facts: Iterable[tuple]) -> list[list]:
    """2Wiki's ``normalize_sp``: each fact as a list with its title lowercased, duplicates kept."""
    out = []
    for fact in facts:
        fact = list(fact)
        if not fact or not isinstance(fact[0], str):
            raise PredictionFormatError(f"entry {fact!r} has no string title to lowercase")
        fact[0] = fact[0].lower()
        out.append(fact)
    return out


def comparable_facts(entries: Any, benchmark: str) -> set[tuple] | list[list]:
    """Supporting facts as ``benchmark``'s script compares them (2Wiki: titles lowercased)."""
    facts = entry_tuples(entries)
    return _lower_titles(facts) if benchmark == TWOWIKI else facts


def score_supporting_facts(
    predicted: Iterable[Sequence[Any]], gold: Iterable[Sequence[Any]], benchmark: str = HOTPOTQA
) -> AnswerScore:
    """Supporting-fact EM/F1/precision/recall, the facts compared exactly as the official script.

    HotpotQA compares ``(title, sent_id)`` tuples as given; 2Wiki lowercases titles first, and a
    predicted fact that lowercasing duplicates counts twice. Raises ``PredictionFormatError``
    on an entry the official script stops on.
    """
    check_benchmark(benchmark)
    pred = comparable_facts(predicted, benchmark)
    ref = comparable_facts(gold, benchmark)
    tp = fp = fn = 0
    for fact in pred:
        if fact in ref:
            tp += 1
        else:
            fp += 1
    for fact in ref:
        if fact not in pred:
            fn += 1
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    em = 1.0 if fp + fn == 0 else 0.0
    return AnswerScore(em, f1, precision, recall)


def evidence_forms(
    subject: str,
    relation: str,
    obj: str,
    subject_aliases: Iterable[str] = (),
    object_aliases: Iterable[str] = (),
) -> list[list[str]]:
    """The accepted forms of one gold triple: every subject name by every object name."""
    subjects = dict.fromkeys((subject, *subject_aliases))
    objects = dict.fromkeys((obj, *object_aliases))
    return [[s, relation, o] for s, o in itertools.product(subjects, objects)]


def normalize_evidence(value: Any) -> Any:
    """2Wiki's ``normalize_evi`` on a copy: every string at any depth normalised.

    The script's loop runs ``range(len(x))`` over anything not a string: an empty string or
    object passes untouched, anything else that is not a list stops it.
    """
    if isinstance(value, (list, tuple)):  # a tuple is what a list is in JSON
        return [
            normalize_evidence_text(v) if isinstance(v, str) else normalize_evidence(v)
            for v in value
        ]
    if isinstance(value, (str, dict)) and not value:
        return value
    raise PredictionFormatError(f"{value!r} is neither a string nor a list of them")


def gold_evidence_sets(gold: Sequence[Sequence[Sequence[str]]]) -> list[set[tuple]]:
    """Per gold triple, the set of its normalised forms (the script's ``gold_evi_pred``)."""
    return [{tuple(normalize_evidence_text(x) for x in form) for form in forms} for forms in gold]


def score_evidence(predicted: Any, gold: Sequence[Sequence[Sequence[str]]]) -> AnswerScore:
    """2Wiki's evidence EM/F1/precision/recall (``update_evi``).

    ``gold`` holds, per gold triple, its accepted ``[subject, relation, object]`` forms
    (``evidence_forms``). A distinct predicted triple that matches any form of any gold triple
    is a match; precision is matches over distinct predictions, recall matches over gold
    triples (so it exceeds 1 when two alias forms of one triple are both predicted), and either
    is 0 when its denominator is. Raises ``PredictionFormatError`` where the script stops.
    """
    pred = entry_tuples(normalize_evidence(predicted))
    golds = gold_evidence_sets(gold)
    matches = 0
    for triple in pred:
        for forms in golds:
            if triple in forms:
                matches += 1
                break
    precision = matches / len(pred) if pred else 0.0
    recall = matches / len(golds) if golds else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    em = 1.0 if matches == len(pred) == len(golds) else 0.0
    return AnswerScore(em, f1, precision, recall)


def joint_score(
    answer: AnswerScore, sp: AnswerScore, evidence: AnswerScore | None = None
) -> AnswerScore:
    """The official joint: products of precision, recall and EM (2Wiki's with the evidence's
    too, multiplied in the script's order); F1 from the products."""
    precision = answer.precision * sp.precision
    recall = answer.recall * sp.recall
    em = answer.em * sp.em
    if evidence is not None:
        precision, recall = precision * evidence.precision, recall * evidence.recall
        em = em * evidence.em
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return AnswerScore(em, f1, precision, recall)


def kind_of(value: Any) -> str:
    """What a value is, for a message: ``null`` or its Python type's name."""
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class GoldExample:
    """What the official scorers need of a gold record.

    ``evidences``: per gold triple, its accepted ``[subject, relation, object]`` forms (2Wiki).
    """

    id: str
    answers: Sequence[str]
    supporting_facts: Sequence[Sequence[Any]] = ()
    evidences: Sequence[Sequence[Sequence[str]]] = ()
