"""Teacher rationales for stage 1: the large LM explains each training question; wrong ones go.

``build_rationales`` asks the teacher (k samples per question where configured), scores each
sample's answer against the gold answers with the configured rule, marks which samples are
kept (all correct ones, or the best), and writes one JSON line per sample with its provenance,
plus a summary. Every reply is cached by the client as it arrives, so a rerun after a crash
sends only what had no answer; the output files are written whole or not at all (temp file,
then rename), so a file that exists is always complete. Calls that failed are counted in the
summary (and logged); when every call failed (or ``llm.max_failure_rate`` of them), only the
summary is written and ``RunError`` says so, so that no rationale file of failures stands in for
a real one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import RunError, check_at_least, check_probability
from lm_guided_cot.files import check_writable, write_atomically
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import failure_message, too_many_failures
from lm_guided_cot.metrics import AnswerMetric, answer_score
from lm_guided_cot.paths import expand_path
from lm_guided_cot.roles import Reader, ReaderConfig, Teacher, TeacherConfig

log = logging.getLogger(__name__)


@dataclass
class RationaleConfig:
    """Where stage 1's teacher rationales come from and which are kept.

    Args:
        dir: folder of ``<split>.jsonl`` (one line per teacher sample) and
            ``<split>.summary.json``; built by ``lmcot rationales`` or, when missing, by the
            DataModule's ``prepare_data`` (rank 0).
        source: who writes the targets: the large LM as ``teacher`` (the paper), or
            ``supporting_facts``: each question's gold supporting sentences, an extractive
            target shaped like the evaluation's oracle row (no large-LM call; the split must
            carry supporting facts, as HotpotQA's and 2Wiki's training sets do). The teacher
            and keep-rule fields below apply to ``teacher`` only.
        llm: the large LM acting as teacher.
        teacher: the teacher's prompt, demonstrations and sampling.
        samples: rationales asked per question, at least 1 (use a teacher temperature > 0
            when above 1).
        rule: when a teacher answer counts as correct: ``em`` (exact match), ``f1`` (at least
            ``threshold``) or ``inclusion`` (the gold answer occurs in the teacher's answer).
        threshold: the F1 a teacher answer needs under ``rule: f1`` (in [0, 1]).
        keep: ``all`` correct samples, or only the ``best`` one per question (highest score,
            first on ties). A correct answer with an empty rationale is never kept.
        judge_by: whose answer the rule checks: the ``teacher``'s own (the paper), or the
            ``reader``'s when given the rationale (``reader`` settings, same LLM): a rationale is
            then kept when it leads the reader to the gold answer, whether or not the teacher
            wrote its own answer in the expected form. One reader call per sample.
        reader: the reader's prompt under ``judge_by: reader`` (its context: the benchmark's).
        chunk_size: questions per batch sent to the teacher (progress is logged per chunk; at
            least 1).
    """

    dir: str = "rationales"
    source: Literal["teacher", "supporting_facts"] = "teacher"
    llm: LLMConfig = field(default_factory=LLMConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    samples: int = 1
    rule: AnswerMetric = "em"
    threshold: float = 0.5
    keep: Literal["all", "best"] = "all"
    judge_by: Literal["teacher", "reader"] = "teacher"
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    chunk_size: int = 64

    def __post_init__(self) -> None:
        check_at_least("RationaleConfig.samples", self.samples, 1)
        check_probability("RationaleConfig.threshold", self.threshold)
        check_at_least("RationaleConfig.chunk_size", self.chunk_size, 1)

    def path(self, split: str) -> Path:
        return Path(expand_path(self.dir)) / f"{split}.jsonl"

    def summary_path(self, split: str) -> Path:
        return self.path(split).with_suffix(".summary.json")


def judge_answer(
    answer: str, golds: Sequence[str], rule: AnswerMetric, threshold: float
) -> tuple[bool, float]:
    """``(correct, score)`` of a teacher answer under a keep rule (F1 needs ``threshold``)."""
    score = answer_score(answer, golds, rule)
    return (score >= threshold if rule == "f1" else score == 1.0), score


def select_kept(correct: Sequence[bool], scores: Sequence[float], keep: str) -> list[bool]:
    """Which samples of one question are kept: every correct one, or the best correct one."""
    if keep == "all":
        return list(correct)
    best = None
    for i, (ok, score) in enumerate(zip(correct, scores)):
        if ok and (best is None or score > scores[best]):
            best = i
    return [i == best for i in range(len(correct))]


def template_hash(teacher: Teacher, config: TeacherConfig) -> str:
    """Short hash of everything that shapes the teacher prompt (templates and demonstrations)."""
    payload = json.dumps(
        {
            "system": config.system,
            "template": config.template,
            "reply": config.reply_template,
            "paragraph": config.paragraph_template,
            "context": config.context,
            "demos": [asdict(d) for d in teacher.demos],
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_rationales(
    records: Iterable[QARecord],
    config: RationaleConfig,
    split: str,
    client: LLMClient | None = None,
) -> dict[str, Any]:
    """Ask the teacher about every record, write ``<split>.jsonl`` and its summary; return the summary.

    Failed calls are rows with an ``error`` (never kept), counted in the summary's ``failed``
    with its ``first_error``; a rerun sends them again. When every call failed (or
    ``llm.max_failure_rate`` of them), the summary alone is written (an existing
    ``<split>.jsonl`` is left as it was) and ``RunError`` raised.
    """
    check_writable(Path(expand_path(config.dir)), "rationales.dir")  # before the first call
    if config.source == "supporting_facts":
        return _write_supporting_facts(records, config, split)
    # Resuming needs nothing here: the client caches each reply as it arrives, so a rerun
    # after a crash sends only the questions that had no answer.
    client = client or client_for(config.llm)
    build = _TeacherRationales(config, split, client)
    for chunk in _chunks(records, config.chunk_size):  # the split is read chunk by chunk
        build.add(chunk)
    summary = build.finish()
    _stop_if_too_many_failed(config, split, summary, client)
    if summary["failed"]:
        log.warning(
            "teacher rationales (%s): %d of %d teacher calls failed (first error: %s); they "
            "are rows with an error, never kept. Run `lmcot rationales` again to resend only "
            "them: the answered ones are cached",
            split,
            summary["failed"],
            summary["asked"],
            summary.get("first_error"),
        )
    # Written whole or not at all (temp file, then rename): a file that exists is complete.
    write_atomically(config.path(split), _jsonl(build.rows))
    write_atomically(config.summary_path(split), json.dumps(summary, indent=2) + "\n")
    return summary


def _chunks(records: Iterable[QARecord], size: int) -> Iterator[list[QARecord]]:
    """``records`` in lists of ``size`` (the last one shorter), read as they are needed."""
    chunk: list[QARecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


class _TeacherRationales:
    """One split's teacher rationales as they are built: the rows (every sample, with its
    provenance and whether it is kept) and the summary's counters."""

    def __init__(self, config: RationaleConfig, split: str, client: LLMClient) -> None:
        self.config, self.split, self.client = config, split, client
        self.teacher = Teacher(client, config.teacher)
        self.reader = Reader(client, config.reader)
        sampling = config.teacher.sampling or config.llm.sampling
        self.provenance = {
            "teacher_model": config.llm.model,
            "prompt_template_hash": template_hash(self.teacher, config.teacher),
            "sampling": sampling.to_params(),
        }
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {
            "split": split,
            "questions": 0,
            "asked": 0,
            "answered": 0,
            "failed": 0,
            "parse_failures": 0,
            "correct": 0,
            "empty_rationales": 0,
            "kept": 0,
            "questions_with_kept": 0,
            "judged_by": config.judge_by,
        }

    def add(self, chunk: list[QARecord]) -> None:
        """Ask the teacher about ``chunk``, then keep the samples the rule calls correct."""
        with self.client.progress(f"teacher rationales, {self.split}"):
            outputs = self.teacher.explain(chunk, samples=self.config.samples)
        by_reader = self.config.judge_by == "reader"
        reader_answers = self._reader_answers(chunk, outputs) if by_reader else None
        for i, (record, samples) in enumerate(zip(chunk, outputs)):
            answers = reader_answers[i] if reader_answers else [s.answer for s in samples]
            self._filter(record, samples, answers, by_reader)
        log.info(
            "teacher rationales (%s): %d questions, %d kept",
            self.split,
            self.summary["questions"],
            self.summary["kept"],
        )

    def _reader_answers(self, records: list[QARecord], outputs: list) -> list[list[str]]:
        """The reader's answer with each sample's rationale ("" where there is none to read)."""
        pairs = [
            (r, s.rationale)
            for r, samples in zip(records, outputs)
            for s in samples
            if s.error is None and s.rationale.strip()
        ]
        if not pairs:
            return [[""] * len(samples) for samples in outputs]
        with self.client.progress(f"the reader checks the teacher's rationales, {self.split}"):
            replies = iter(self.reader.answer([r for r, _ in pairs], [x for _, x in pairs]))
        return [
            [
                next(replies).answer if s.error is None and s.rationale.strip() else ""
                for s in samples
            ]
            for samples in outputs
        ]

    def _filter(
        self, record: QARecord, samples: Sequence, answers: Sequence[str], by_reader: bool
    ) -> None:
        """Judge one question's samples by the keep rule; count them and add their rows."""
        config, summary = self.config, self.summary
        judged = [
            judge_answer(a, record.gold_answers, config.rule, config.threshold) for a in answers
        ]
        # A right answer with no reasoning before it teaches the small LM nothing.
        usable = [c and bool(s.rationale.strip()) for (c, _), s in zip(judged, samples)]
        kept = select_kept(usable, [score for _, score in judged], config.keep)
        summary["questions"] += 1
        summary["questions_with_kept"] += any(kept)
        for j, (sample, (correct, score), keep) in enumerate(zip(samples, judged, kept)):
            summary["asked"] += 1
            summary["answered"] += sample.error is None
            summary["failed"] += sample.error is not None
            if sample.error is not None and "first_error" not in summary:
                summary["first_error"] = sample.error
            summary["parse_failures"] += sample.error is None and not sample.parsed
            summary["correct"] += correct
            summary["empty_rationales"] += correct and not sample.rationale.strip()
            summary["kept"] += keep
            self.rows.append(
                {
                    "id": record.id,
                    "sample": j,
                    "rationale": sample.rationale,
                    "teacher_answer": sample.answer,
                    **({"reader_answer": answers[j]} if by_reader else {}),
                    "gold_answers": record.gold_answers,
                    "correct": correct,
                    "score": score,
                    "kept": keep,
                    "error": sample.error,
                    **self.provenance,
                }
            )

    def finish(self) -> dict[str, Any]:
        """The summary with the keep settings and what the calls cost."""
        config, summary = self.config, self.summary
        usage = self.client.role_usage(Teacher.role)
        if config.judge_by == "reader":
            checks = self.client.role_usage(Reader.role)
            summary.update(
                reader_prompt_tokens=checks.prompt_tokens,
                reader_completion_tokens=checks.completion_tokens,
                reader_requests_sent=checks.requests,
            )
        summary.update(
            kept_fraction=summary["kept"] / summary["asked"] if summary["asked"] else 0.0,
            rule=config.rule,
            threshold=config.threshold,
            keep=config.keep,
            samples=config.samples,
            cost=usage.cost,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            requests_sent=usage.requests,
            cache_hits=usage.cache_hits,
            **self.provenance,
        )
        return summary


def _stop_if_too_many_failed(
    config: RationaleConfig, split: str, summary: dict[str, Any], client: LLMClient
) -> None:
    """Write the summary alone and raise ``RunError`` when ``llm.max_failure_rate`` of the
    calls failed (by default: all), so that no file of failures stands in for a real one."""
    rate = config.llm.max_failure_rate
    if not too_many_failures(summary["failed"], summary["asked"], rate):
        return
    write_atomically(config.summary_path(split), json.dumps(summary, indent=2) + "\n")
    path = config.path(split)
    left = "left as it was" if path.exists() else "not written"
    failed = failure_message(
        f"teacher rationales ({split})",
        summary["failed"],
        summary["asked"],
        client.where,
        summary.get("first_error"),
        rate,
        kind="teacher",
    )
    raise RunError(
        f"{failed}; {path} is {left}, the summary is in {config.summary_path(split)}. "
        "Check the teacher's llm settings (model, api_base, server) and run again"
    )


def _write_supporting_facts(
    records: Iterable[QARecord], config: RationaleConfig, split: str
) -> dict[str, Any]:
    """``source: supporting_facts``: one kept row per question, its gold supporting sentences."""
    rows = []
    outside = 0
    for record in records:
        rationale = record.gold_rationale
        for problem in record.facts_outside_paragraphs:
            outside += 1
            log.warning(
                "supporting-fact rationales (%s): record %r: %s; the fact is left out of its "
                "stage-1 target",
                split,
                record.id,
                problem,
            )
        rows.append(
            {
                "id": record.id,
                "sample": 0,
                "rationale": rationale,
                "gold_answers": record.gold_answers,
                "kept": bool(rationale),
                "error": None,
                "source": "supporting_facts",
            }
        )
    if rows and not any(r["kept"] for r in rows):
        raise DataFormatError(
            str(config.path(split)),
            None,
            "supporting_facts",
            f"source: supporting_facts needs supporting facts, and no {split} question has any",
        )
    kept = sum(r["kept"] for r in rows)
    summary = {
        "split": split,
        "source": "supporting_facts",
        "questions": len(rows),
        "kept": kept,
        "questions_with_kept": kept,
        "without_supporting_facts": len(rows) - kept,
        "facts_outside_paragraphs": outside,
        "kept_fraction": kept / len(rows) if rows else 0.0,
        "requests_sent": 0,
    }
    write_atomically(config.path(split), _jsonl(rows))
    write_atomically(config.summary_path(split), json.dumps(summary, indent=2) + "\n")
    log.info("supporting-fact rationales (%s): %d of %d questions", split, kept, len(rows))
    return summary


def read_kept(path: str | Path) -> list[dict[str, Any]]:
    """The kept rows of a rationale file, in file order; a bad line names file, line and field."""
    kept = []
    for index, line, row in iter_json_records(path):
        for name, kind in (("id", str), ("rationale", str), ("kept", bool)):
            if not isinstance(row, dict) or not isinstance(row.get(name), kind):
                raise DataFormatError(str(path), index, name, f"expected {kind.__name__}", line)
        if row["kept"]:
            kept.append(row)
    return kept
