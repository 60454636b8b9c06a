"""Official HotpotQA / 2WikiMultiHopQA scores, plain and as torchmetrics.

The plain functions follow ``hotpot_evaluate_v1.py`` and 2Wiki's
``2wikimultihop_evaluate_v1.1.py`` line for line, quirks included (README.md, "Metrics", lists
them; tests/test_metrics.py holds each). The torchmetrics classes keep sums and counts
(float64), so a DDP reduction gives exactly the numbers one process would.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torchmetrics import Metric

from lm_guided_cot.errors import InputError
from lm_guided_cot.files import not_utf8_problem, unreadable_reason

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


_ZERO = AnswerScore(0.0, 0.0, 0.0, 0.0)


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


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")


def _tuples(entries: Any) -> set[tuple]:
    """``set(map(tuple, entries))``, as both scripts build their sets, or the entry it stops on."""
    if isinstance(entries, (int, float)) or entries is None:
        raise PredictionFormatError(f"expected a list, found {_kind(entries)}")
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


def _sp_facts(entries: Any, benchmark: str) -> set[tuple] | list[list]:
    facts = _tuples(entries)
    return _lower_titles(facts) if benchmark == TWOWIKI else facts


def score_supporting_facts(
    predicted: Iterable[Sequence[Any]], gold: Iterable[Sequence[Any]], benchmark: str = HOTPOTQA
) -> AnswerScore:
    """Supporting-fact EM/F1/precision/recall, the facts compared exactly as the official script.

    HotpotQA compares ``(title, sent_id)`` tuples as given; 2Wiki lowercases titles first, and a
    predicted fact that lowercasing duplicates counts twice. Raises ``PredictionFormatError``
    on an entry the official script stops on.
    """
    _check_benchmark(benchmark)
    pred = _sp_facts(predicted, benchmark)
    ref = _sp_facts(gold, benchmark)
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


def _normalize_evidence(value: Any) -> Any:
    """2Wiki's ``normalize_evi`` on a copy: every string at any depth normalised.

    The script's loop runs ``range(len(x))`` over anything not a string: an empty string or
    object passes untouched, anything else that is not a list stops it.
    """
    if isinstance(value, (list, tuple)):  # a tuple is what a list is in JSON
        return [
            normalize_evidence_text(v) if isinstance(v, str) else _normalize_evidence(v)
            for v in value
        ]
    if isinstance(value, (str, dict)) and not value:
        return value
    raise PredictionFormatError(f"{value!r} is neither a string nor a list of them")


def _gold_evidence_sets(gold: Sequence[Sequence[Sequence[str]]]) -> list[set[tuple]]:
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
    pred = _tuples(_normalize_evidence(predicted))
    golds = _gold_evidence_sets(gold)
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
        _check_benchmark(benchmark)
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
        _check_benchmark(benchmark)
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


# ---- official prediction files ----------------------------------------------------------------


@dataclass(frozen=True)
class GoldExample:
    """What the official scorers need of a gold record.

    ``evidences``: per gold triple, its accepted ``[subject, relation, object]`` forms (2Wiki).
    """

    id: str
    answers: Sequence[str]
    supporting_facts: Sequence[Sequence[Any]] = ()
    evidences: Sequence[Sequence[Sequence[str]]] = ()


@dataclass
class OfficialReport:
    """A prediction file scored by the official rules, and what the scores do not show.

    ``metrics``: means over the gold records, under the keys the official script prints.
    ``absent``: sections the benchmark's script scores but the file lacks (their keys, and the
    joint's, are left out). ``missing``: per section present, how many gold ids it lacks (each
    scored 0), ``missing_ids`` the first few of them. ``unknown``: per section, how many of its
    ids are not gold ids (the official script ignores them), ``unknown_ids`` the first few.
    ``malformed``: entries that are not ``[title, sent_id]`` pairs or
    ``[subject, relation, object]`` triples, scored as the official script scores them.
    """

    metrics: dict[str, float]
    absent: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    missing_ids: dict[str, list[str]] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    unknown_ids: dict[str, list[str]] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)

    _EXTRAS = ("absent", "missing", "missing_ids", "unknown", "unknown_ids", "malformed")

    def as_dict(self, percent: bool = False) -> dict[str, Any]:
        """The metrics, then ``absent``, ``missing``, ``missing_ids``, ``unknown``,
        ``unknown_ids`` and ``malformed`` where not empty.

        ``percent``: each mean as 2Wiki's official script prints it, ``round(mean * 100, 2)``.
        """
        out: dict[str, Any] = {
            k: percent_rounded(v) if percent else v for k, v in self.metrics.items()
        }
        for name in self._EXTRAS:
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


FIRST_IDS = 5
"""How many of the missing or unknown ids a report names."""


def coverage_notes(result: Mapping[str, Any]) -> list[str]:
    """One line per section for the gold ids without a prediction and the predicted ids that
    are not gold ids, from an ``OfficialReport.as_dict()``: count and first ids."""
    notes = []
    for name, count in result.get("missing", {}).items():
        first = ", ".join(result.get("missing_ids", {}).get(name, []))
        notes.append(
            f"{count} gold id(s) have no {name!r} prediction and score 0 there (first: {first})"
        )
    for name, count in result.get("unknown", {}).items():
        first = ", ".join(result.get("unknown_ids", {}).get(name, []))
        notes.append(
            f"{count} id(s) of the {name!r} section are not gold ids and are ignored "
            f"(first: {first})"
        )
    return notes


def percent_rounded(mean: float) -> float:
    """``round(metrics[k] / N * 100, 2)`` as 2Wiki's script prints, from the mean ``sum / N``."""
    return round(mean * 100, 2)


def official_report(
    predictions: Mapping[str, Any],
    gold: Iterable[GoldExample],
    benchmark: str = HOTPOTQA,
    origin: str = "predictions",
    gold_origin: str = "the gold split",
) -> OfficialReport:
    """Score an official-format prediction dict as ``benchmark``'s official script does.

    ``{"answer": {id: str}, "sp": {id: [[title, sent_id]]}, "evidence": {id: [[s, r, o]]}}``
    (``evidence`` is 2Wiki's). Gives ``em, f1, prec, recall``, then ``sp_*`` when there is an
    ``sp`` section, ``evi_*`` (2Wiki) when there is an ``evidence`` section, and ``joint_*``
    when every section the official joint multiplies is there. ``origin`` names the file in
    messages, ``gold_origin`` the gold split. Raises ``PredictionFormatError`` (file, id, field,
    entry) on an entry the official script stops on, and when no gold id has a prediction in
    any section (the file of another split or benchmark: every score would be 0).
    """
    _check_benchmark(benchmark)
    answers = predictions.get("answer", {}) or {}
    sections = ("sp", "evidence") if benchmark == TWOWIKI else ("sp",)
    present = {name: predictions[name] for name in sections if predictions.get(name) is not None}
    report = OfficialReport({}, absent=[name for name in sections if name not in present])
    joint = not report.absent
    totals: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    gold_ids: set[str] = set()
    first_gold: list[str] = []
    n = 0  # gold records: the official divisor, repeated ids and all

    def lacks(name: str, rid: str) -> None:
        missing[name] += 1
        if missing[name] <= FIRST_IDS:
            report.missing_ids.setdefault(name, []).append(rid)

    for example in gold:
        n += 1
        gold_ids.add(example.id)
        if len(first_gold) < FIRST_IDS:
            first_gold.append(example.id)
        if example.id in answers:
            ans = score_answer(answers[example.id], example.answers)
        else:
            ans = _ZERO
            lacks("answer", example.id)
        _accumulate(totals, "", ans)
        scores = {}
        for name, prefix in (("sp", "sp_"), ("evidence", "evi_")):
            if name not in present:
                continue
            if example.id not in present[name]:
                lacks(name, example.id)
                scores[name] = _ZERO
            else:
                value = present[name][example.id]
                where = f"{origin}: record {example.id!r}: field {name!r}"
                try:
                    if name == "sp":
                        scores[name] = score_supporting_facts(
                            value, example.supporting_facts, benchmark
                        )
                        report.malformed += _malformed_sp(value, example, benchmark, where)
                    else:
                        scores[name] = score_evidence(value, example.evidences)
                        report.malformed += _malformed_evidence(value, example, where)
                except PredictionFormatError as err:
                    raise PredictionFormatError(
                        f"{where}: {err}; the official script stops on it too"
                    ) from None
            _accumulate(totals, prefix, scores[name])
        if joint:
            _accumulate(totals, "joint_", joint_score(ans, scores["sp"], scores.get("evidence")))
    if n == 0:
        raise InputError(f"{gold_origin}: no gold records to score against")
    by_section = {"answer": answers, **present}
    for name, section in by_section.items():
        unknown = [str(rid) for rid in section if rid not in gold_ids]
        if unknown:
            report.unknown[name] = len(unknown)
            report.unknown_ids[name] = unknown[:FIRST_IDS]
    if not any(rid in gold_ids for section in by_section.values() for rid in section):
        predicted = list(dict.fromkeys(str(rid) for s in by_section.values() for rid in s))
        if not predicted:
            problem = "it holds no predictions (every section is empty)"
        else:
            problem = (
                f"none of its {len(predicted)} predicted id(s) is among the {len(gold_ids)} "
                f"gold ids of {gold_origin} (first predicted: "
                f"{', '.join(predicted[:FIRST_IDS])}; first gold: {', '.join(first_gold)}): "
                "is it the prediction file of another split or benchmark?"
            )
        raise PredictionFormatError(f"{origin}: {problem}")
    report.metrics = {key: value / n for key, value in totals.items()}
    order = list(by_section)  # answer, sp, evidence: the order of the file's sections
    report.missing = {name: missing[name] for name in order if name in missing}
    report.missing_ids = {name: report.missing_ids[name] for name in report.missing}
    return report


def score_predictions(
    predictions: Mapping[str, Any],
    gold: Iterable[GoldExample],
    benchmark: str = HOTPOTQA,
    origin: str = "predictions",
) -> dict[str, float]:
    """The metrics of ``official_report``: means over the gold records, the official keys.

    An id missing from the predictions scores 0, as in the official script.
    """
    return official_report(predictions, gold, benchmark, origin).metrics


def _accumulate(totals: Counter[str], prefix: str, score: AnswerScore) -> None:
    totals[f"{prefix}em"] += score.em
    totals[f"{prefix}f1"] += score.f1
    totals[f"{prefix}prec"] += score.precision
    totals[f"{prefix}recall"] += score.recall


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _malformed_sp(value: Any, example: GoldExample, benchmark: str, where: str) -> list[str]:
    """Messages for the entries of one ``sp`` value that are not ``[str, int]`` pairs."""
    if not isinstance(value, list):
        return [
            f"{where}: expected a list of [title, sent_id] pairs, found {_kind(value)}; "
            "scored as the official script scores it (each item as an entry)"
        ]
    gold = _sp_facts(example.supporting_facts, benchmark)
    out = []
    for entry in value:
        if (
            isinstance(entry, (list, tuple))
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], int)
            and not isinstance(entry[1], bool)
        ):
            continue
        (fact,) = _sp_facts([entry], benchmark)
        outcome = (
            "it equals a gold fact, so it counts as correct"
            if fact in gold
            else ("a false positive")
        )
        out.append(
            f"{where}: entry {json.dumps(entry)} is not a [title, sent_id] pair; compared as "
            f"given, as the official script does: {outcome}"
        )
    return out


def _malformed_evidence(value: Any, example: GoldExample, where: str) -> list[str]:
    """Messages for the entries of one ``evidence`` value that are not triples of strings."""
    if not isinstance(value, list):
        return [
            f"{where}: expected a list of [subject, relation, object] triples, found "
            f"{_kind(value)}; scored as the official script scores it"
        ]
    gold = _gold_evidence_sets(example.evidences)
    out = []
    for entry in value:
        if (
            isinstance(entry, (list, tuple))
            and len(entry) == 3
            and all(isinstance(x, str) for x in entry)
        ):
            continue
        (triple,) = _tuples(_normalize_evidence([entry]))
        outcome = (
            "it equals a gold triple, so it counts as a match"
            if any(triple in forms for forms in gold)
            else "a false positive"
        )
        out.append(
            f"{where}: entry {json.dumps(entry)} is not a [subject, relation, object] triple; "
            f"compared as the official script does: {outcome}"
        )
    return out


def read_prediction_file(path: str | Path) -> dict[str, Any]:
    """Load and check an official-format prediction file.

    Each section must map ids to values; what an ``sp`` or ``evidence`` value holds is left to
    the scorer, which scores malformed entries as the official script does and reports them.
    A file that cannot be read, is empty, is not UTF-8 or not JSON, or is not laid out so
    raises ``PredictionFormatError`` naming it (and the line, record and field where known).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PredictionFormatError(f"{path}: {unreadable_reason(path, err)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        problem, line = not_utf8_problem(path)
        where = f"{path}: line {line}" if line is not None else str(path)
        raise PredictionFormatError(f"{where}: {problem}") from None
    if not text.strip():
        empty = "the file is empty" if not text else "the file holds only white space"
        raise PredictionFormatError(f"{path}: {empty}; expected {_LAYOUT}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"not valid JSON ({err.msg}, line {err.lineno}, column {err.colno})"
        if err.msg.startswith("Unterminated string") or not text[err.pos :].strip():
            problem += "; the file ends before the JSON does: is it cut off?"
        raise PredictionFormatError(f"{path}: {problem}") from None
    if not isinstance(data, dict):
        raise PredictionFormatError(f"{path}: expected {_LAYOUT}, found {_json_kind(data)}")
    if "answer" not in data:
        raise PredictionFormatError(
            f"{path}: field 'answer': missing; expected {_LAYOUT} (the file has: "
            f"{', '.join(map(repr, data)) or 'nothing'})"
        )
    if not isinstance(data["answer"], dict):
        raise PredictionFormatError(
            f"{path}: field 'answer': expected an object mapping ids to answers, found "
            f"{_json_kind(data['answer'])}"
        )
    for rid, answer in data["answer"].items():
        if not isinstance(answer, str):
            raise PredictionFormatError(
                f"{path}: record {rid!r}: field 'answer': expected a string, found "
                f"{_json_kind(answer)}"
            )
    for name, layout in (
        ("sp", "[[title, sent_id]]"),
        ("evidence", "[[subject, relation, object]]"),
    ):
        if name in data and not isinstance(data[name], dict):
            raise PredictionFormatError(
                f"{path}: field {name!r}: expected an object mapping ids to {layout}, found "
                f"{_json_kind(data[name])}"
            )
    return data


_LAYOUT = (
    'a JSON object {"answer": {id: answer}, "sp": {id: [[title, sent_id]]}} '
    '(2Wiki: and "evidence": {id: [[subject, relation, object]]})'
)


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    kinds = {dict: "an object", list: "a list", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return kinds.get(type(value), type(value).__name__)
