"""Official-format prediction files: read, checked and scored as the official scripts do.

``read_prediction_file`` loads and checks a file, ``official_report`` scores it against gold
records (``GoldExample``) and says what the scores do not show (absent sections, missing and
unknown ids, malformed entries), ``coverage_notes`` puts that into words. No torch here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_guided_cot.errors import InputError
from lm_guided_cot.files import not_utf8_problem, unreadable_reason
from lm_guided_cot.metrics.scores import (
    HOTPOTQA,
    TWOWIKI,
    ZERO_SCORE,
    AnswerScore,
    GoldExample,
    PredictionFormatError,
    check_benchmark,
    comparable_facts,
    entry_tuples,
    gold_evidence_sets,
    joint_score,
    kind_of,
    normalize_evidence,
    score_answer,
    score_evidence,
    score_supporting_facts,
)


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
    check_benchmark(benchmark)
    answers = predictions.get("answer", {}) or {}
    sections = ("sp", "evidence") if benchmark == TWOWIKI else ("sp",)
    present = {name: predictions[name] for name in sections if predictions.get(name) is not None}
    report = OfficialReport({}, absent=[name for name in sections if name not in present])
    tally = _Tally(report)
    for example in gold:
        _score_example(example, answers, present, benchmark, origin, tally)
    if tally.n == 0:
        raise InputError(f"{gold_origin}: no gold records to score against")
    by_section = {"answer": answers, **present}
    _count_unknown_ids(report, by_section, tally.gold_ids)
    _check_a_gold_id_is_predicted(by_section, tally, origin, gold_origin)
    report.metrics = {key: value / tally.n for key, value in tally.totals.items()}
    order = list(by_section)  # answer, sp, evidence: the order of the file's sections
    report.missing = {name: tally.missing[name] for name in order if name in tally.missing}
    report.missing_ids = {name: report.missing_ids[name] for name in report.missing}
    return report


@dataclass
class _Tally:
    """What ``official_report`` counts while it walks the gold records."""

    report: OfficialReport
    totals: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    gold_ids: set[str] = field(default_factory=set)
    first_gold: list[str] = field(default_factory=list)
    n: int = 0  # gold records: the official divisor, repeated ids and all

    def add_gold(self, rid: str) -> None:
        self.n += 1
        self.gold_ids.add(rid)
        if len(self.first_gold) < FIRST_IDS:
            self.first_gold.append(rid)

    def lacks(self, name: str, rid: str) -> None:
        self.missing[name] += 1
        if self.missing[name] <= FIRST_IDS:
            self.report.missing_ids.setdefault(name, []).append(rid)

    def add(self, prefix: str, score: AnswerScore) -> None:
        self.totals[f"{prefix}em"] += score.em
        self.totals[f"{prefix}f1"] += score.f1
        self.totals[f"{prefix}prec"] += score.precision
        self.totals[f"{prefix}recall"] += score.recall


def _score_example(
    example: GoldExample,
    answers: Mapping[str, Any],
    present: Mapping[str, Mapping[str, Any]],
    benchmark: str,
    origin: str,
    tally: _Tally,
) -> None:
    """Add one gold record's answer, section and joint scores to ``tally``; a gold id a
    section lacks scores 0 there."""
    tally.add_gold(example.id)
    if example.id in answers:
        ans = score_answer(answers[example.id], example.answers)
    else:
        ans = ZERO_SCORE
        tally.lacks("answer", example.id)
    tally.add("", ans)
    scores = {}
    for name, prefix in (("sp", "sp_"), ("evidence", "evi_")):
        if name not in present:
            continue
        if example.id not in present[name]:
            tally.lacks(name, example.id)
            scores[name] = ZERO_SCORE
        else:
            where = f"{origin}: record {example.id!r}: field {name!r}"
            value = present[name][example.id]
            scores[name] = _score_section(name, value, example, benchmark, where, tally.report)
        tally.add(prefix, scores[name])
    if not tally.report.absent:  # the joint multiplies every section: all are there
        tally.add("joint_", joint_score(ans, scores["sp"], scores.get("evidence")))


def _score_section(
    name: str, value: Any, example: GoldExample, benchmark: str, where: str, report: OfficialReport
) -> AnswerScore:
    """One record's ``sp`` or ``evidence`` score; its malformed entries are added to
    ``report``, and an entry the official script stops on raises, naming ``where``."""
    try:
        if name == "sp":
            score = score_supporting_facts(value, example.supporting_facts, benchmark)
            report.malformed += _malformed_sp(value, example, benchmark, where)
        else:
            score = score_evidence(value, example.evidences)
            report.malformed += _malformed_evidence(value, example, where)
    except PredictionFormatError as err:
        raise PredictionFormatError(
            f"{where}: {err}; the official script stops on it too"
        ) from None
    return score


def _count_unknown_ids(
    report: OfficialReport, by_section: Mapping[str, Mapping[str, Any]], gold_ids: set[str]
) -> None:
    """Per section, how many predicted ids are not gold ids, and the first few."""
    for name, section in by_section.items():
        unknown = [str(rid) for rid in section if rid not in gold_ids]
        if unknown:
            report.unknown[name] = len(unknown)
            report.unknown_ids[name] = unknown[:FIRST_IDS]


def _check_a_gold_id_is_predicted(
    by_section: Mapping[str, Mapping[str, Any]], tally: _Tally, origin: str, gold_origin: str
) -> None:
    """``PredictionFormatError`` when no section predicts a gold id: every score would be 0,
    which is most likely the file of another split or benchmark."""
    gold_ids = tally.gold_ids
    if any(rid in gold_ids for section in by_section.values() for rid in section):
        return
    predicted = list(dict.fromkeys(str(rid) for s in by_section.values() for rid in s))
    if not predicted:
        problem = "it holds no predictions (every section is empty)"
    else:
        problem = (
            f"none of its {len(predicted)} predicted id(s) is among the {len(gold_ids)} "
            f"gold ids of {gold_origin} (first predicted: "
            f"{', '.join(predicted[:FIRST_IDS])}; first gold: {', '.join(tally.first_gold)}): "
            "is it the prediction file of another split or benchmark?"
        )
    raise PredictionFormatError(f"{origin}: {problem}")


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


def _malformed_sp(value: Any, example: GoldExample, benchmark: str, where: str) -> list[str]:
    """Messages for the entries of one ``sp`` value that are not ``[str, int]`` pairs."""
    if not isinstance(value, list):
        return [
            f"{where}: expected a list of [title, sent_id] pairs, found {kind_of(value)}; "
            "scored as the official script scores it (each item as an entry)"
        ]
    gold = comparable_facts(example.supporting_facts, benchmark)
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
        (fact,) = comparable_facts([entry], benchmark)
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
            f"{kind_of(value)}; scored as the official script scores it"
        ]
    gold = gold_evidence_sets(example.evidences)
    out = []
    for entry in value:
        if (
            isinstance(entry, (list, tuple))
            and len(entry) == 3
            and all(isinstance(x, str) for x in entry)
        ):
            continue
        (triple,) = entry_tuples(normalize_evidence([entry]))
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
