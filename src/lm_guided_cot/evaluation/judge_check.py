"""``lmcot judge-check``: does the judge tell a useful rationale from filler?

On validation questions the judge scores the oracle rationale (the gold supporting
sentences), a decoy (as many sentences from the other paragraphs, ``decoys.py``) and,
optionally, rationale files (an evaluation's ``examples/<row>.jsonl``). Per aspect: each
row's mean and the paired oracle - decoy difference with its bootstrap interval; an aspect
whose interval holds 0 is one the judge "cannot tell apart", and a reward built on it would
teach the guide nothing about content.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.datamodules import MultiHopQADataModule
from lm_guided_cot.errors import (
    ConfigurationError,
    InputError,
    MissingFileError,
    check_at_least,
    check_between,
)
from lm_guided_cot.evaluation.decoys import decoy_rationale
from lm_guided_cot.evaluation.judge_comparison import (
    CANNOT_TELL,
    DECOY,
    MEAN,
    ORACLE,
    AspectCheck,
    check_header,
    check_rows,
    compare_rows,
    question_scores,
)
from lm_guided_cot.evaluation.results import USAGE_COUNTERS, usage_delta
from lm_guided_cot.evaluation.settings import RationaleFileSetting, read_rationale_file
from lm_guided_cot.evaluation.table import csv_text, print_table
from lm_guided_cot.files import check_writable, write_atomically
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import check_failures
from lm_guided_cot.markdown import markdown_table
from lm_guided_cot.roles import Judge, JudgeConfig, JudgeOutput, judge_counts
from lm_guided_cot.roles.judge import check_judge_records


@dataclass
class JudgeCheckReport:
    """What ``judge_check`` returns: the checks per aspect, how the judge was asked, what it
    cost, and the files written."""

    questions: int
    rows: list[str]
    checks: list[AspectCheck]
    judge: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def cannot_tell_apart(self) -> list[str]:
        """The aspects whose oracle - decoy interval holds 0."""
        return [c.aspect for c in self.checks if c.aspect != MEAN and c.verdict == CANNOT_TELL]


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def judge_check(
    data: MultiHopQADataModule,
    llm: LLMConfig,
    judge: JudgeConfig = JudgeConfig(),  # noqa: B008 (a plain dataclass, never mutated)
    split: Literal["train", "validation", "test"] = "validation",
    max_questions: int | None = 30,
    rationale_files: list[RationaleFileSetting] | None = None,
    seed: int = 0,
    bootstrap_resamples: int = 10_000,
    confidence: float = 0.95,
    output_dir: str = "runs/judge_check",
    quiet: bool = False,
) -> JudgeCheckReport:
    """Check that the judge rates the gold supporting sentences above a decoy, per aspect.

    Args:
        data: the benchmark's DataModule (e.g. ``-c configs/recipe/hotpotqa/data.yaml``); its
            ``max_eval_examples`` caps the questions too.
        llm: the judge's large LM (e.g. ``llm: {server: {model: qwen2.5-coder-0.5b}}``).
        judge: how the judge asks (``protocol``, ``context``, ``aspects``, ...).
        split: the questions (they need supporting facts).
        max_questions: the first this many questions of the split (at least 1; ``None``:
            all).
        rationale_files: more rows, each ``{name, path}`` as in ``lmcot evaluate`` (an
            evaluation's ``examples/<row>.jsonl``); a question's rationales are averaged.
        seed: the decoys' draw and the bootstrap.
        bootstrap_resamples: resamples of the paired bootstrap (at least 1).
        confidence: level of the intervals, in (0, 1).
        output_dir: where ``judge_check.md``, ``judge_check.csv``, ``judge_check.json`` and
            ``scores.jsonl`` (every question's scores per row) go.
        quiet: print nothing.
    """
    check_at_least("judge_check.max_questions", max_questions, 1)
    check_at_least("judge_check.bootstrap_resamples", bootstrap_resamples, 1)
    check_between("judge_check.confidence", confidence, 0, 1, open_low=True, open_high=True)
    judge = as_dataclass(JudgeConfig, judge)
    files = [as_dataclass(RationaleFileSetting, s) for s in rationale_files or []]
    rows = _check_rows(files)
    out = Path(output_dir)
    check_writable(out, "judge_check.output_dir")
    # soft_wrap: paths and sentences stay whole in log files (a terminal wraps them itself)
    console = Console(quiet=quiet, log_path=False, soft_wrap=True)
    records = _questions(data, split, max_questions, console)
    check_judge_records(judge, records)
    rationales: dict[str, list[list[str]]] = {
        ORACLE: [[r.gold_rationale] for r in records],
        DECOY: [[decoy_rationale(r, seed)] for r in records],
    }
    for setting in files:
        rationales[setting.name] = read_rationale_file(setting.path, records)
    # Question by question, every row's rationales together: they share the question's
    # prompt up to the rationale, which a llama.cpp server evaluates once.
    pairs = [
        (row, i, text) for i in range(len(records)) for row in rows for text in rationales[row][i]
    ]
    console.rule(f"judge check: {len(records)} {split} questions, judge {llm.model}")
    scored = _score(llm, judge, records, pairs, quiet)
    by_row = {row: [o for (r, _, _), o in zip(pairs, scored.outputs) if r == row] for row in rows}
    aspects = [a.name for a in judge.aspects]
    scores = {
        row: question_scores(
            by_row[row], [len(rationales[row][i]) for i in range(len(records))], aspects
        )
        for row in rows
    }
    checks = compare_rows(scores, aspects, bootstrap_resamples, confidence, seed)
    summary = _judge_summary(scored, judge, by_row)
    report = JudgeCheckReport(len(records), rows, checks, summary)
    outputs = scored.outputs
    report.files = _write(report, out, records, pairs, outputs, data.source, split, confidence)
    _print(console, report, confidence)
    return report


def _check_rows(files: Sequence[RationaleFileSetting]) -> list[str]:
    """The rows: oracle, decoy, then each rationale file (unique names, files that exist)."""
    rows = [ORACLE, DECOY, *(f.name for f in files)]
    repeated = sorted({r for r in rows if rows.count(r) > 1})
    if repeated:
        raise ConfigurationError(
            f"judge_check.rationale_files: row names must be unique and neither {ORACLE!r} nor "
            f"{DECOY!r}; repeated: {repeated}"
        )
    for setting in files:
        if not Path(setting.path).is_file():
            raise MissingFileError(f"{setting.path}: no such rationale file (row {setting.name!r})")
    return rows


def _questions(
    data: MultiHopQADataModule, split: str, max_questions: int | None, console: Console
) -> list[QARecord]:
    """The split's first ``max_questions`` questions; each needs supporting sentences."""
    records = [QARecord.from_row(row) for row in data.records(split)]
    if max_questions is not None and len(records) > max_questions:
        records = records[:max_questions]
    elif max_questions is not None and len(records) < max_questions:
        console.log(
            f"[yellow]{len(records)} {split} questions, not {max_questions}: the data's "
            "max_eval_examples or the split caps them (--data.init_args.max_eval_examples null "
            "lifts the cap)"
        )
    if not records:
        raise InputError(f"the {split} split has no questions")
    lacking = [r.id for r in records if not r.gold_sentences]
    if lacking:
        raise InputError(
            f"{len(lacking)} of the {len(records)} {split} questions have no supporting "
            f"sentences to write the oracle from (first ids: {', '.join(lacking[:5])})"
        )
    return records


@dataclass
class _Scored:
    """The judge's outputs for every (row, question, rationale), how it asked, what it cost."""

    role: Judge
    outputs: list[JudgeOutput]
    usage: dict[str, float]
    seconds: float


def _score(
    llm: LLMConfig,
    judge: JudgeConfig,
    records: Sequence[QARecord],
    pairs: Sequence[tuple[str, int, str]],
    quiet: bool,
) -> _Scored:
    """Ask the judge about every pair; ``RunError`` before any file when too many calls failed."""
    client = client_for(llm)
    start = time.perf_counter()
    try:
        role = Judge(client, judge)
        before = client.role_usages()
        with client.progress("judge") if not quiet else contextlib.nullcontext():
            outputs = role.score([records[i] for _, i, _ in pairs], [x for _, _, x in pairs])
        usage = usage_delta(before, client.role_usages(), ("judge",))
    finally:
        client.close()
    seconds = time.perf_counter() - start
    errors = [o.error for o in outputs if o.error]
    check_failures(
        "judge check",
        len(errors),
        len(outputs),
        client.where,
        next(iter(errors), None),
        llm.max_failure_rate,
        then="no results were written; check the judge's large LM (model, api_base, key, "
        "server) and run again",
    )
    return _Scored(role, outputs, usage, seconds)


def _judge_summary(
    scored: _Scored, judge: JudgeConfig, by_row: dict[str, list[JudgeOutput]]
) -> dict[str, Any]:
    """How the judge was asked and what it cost (``JudgeCheckReport.judge``)."""
    counts = judge_counts(scored.outputs)
    return {
        "protocol": scored.role.protocol,
        "protocol_reason": scored.role.protocol_reason,
        "context": judge.context,
        "scale": [judge.scale_min, judge.scale_max],
        "fallback": scored.role.fallback,
        "counts": counts,
        "rows": {row: judge_counts(outputs) for row, outputs in by_row.items()},
        "usage": {k: scored.usage[k] for k in USAGE_COUNTERS},
        "prompt_tokens_per_call": counts["prompt_tokens"] / max(counts["calls"], 1),
        "seconds": scored.seconds,
    }


def _notes(report: JudgeCheckReport, confidence: float) -> list[str]:
    judge = report.judge
    counts = judge["counts"]
    usage = judge["usage"]
    low, high = judge["scale"]
    how = (
        f"{low:g} + {high - low:g} x P(yes) to each aspect's yes/no question"
        if judge["protocol"] == "logprobs"
        else f"scores from {low:g} to {high:g}"
    )
    parsed = counts["parsed"] / max(counts["parsed"] + counts["unparsed"], 1)
    read = {"gold_only": "the gold paragraphs", "all": "every paragraph", "none": "no paragraph"}
    cannot = report.cannot_tell_apart
    return [
        f"Scores: {how}. Protocol {judge['protocol']} ({judge['protocol_reason']}); the judge "
        f"read {read[judge['context']]} (context: {judge['context']}). Difference: oracle - "
        f"decoy, paired over the questions, {100 * confidence:g}% bootstrap interval.",
        f"Parsed: {100 * parsed:.0f}% of the rationales (the rest scored with the fallback "
        f"{judge['fallback']:g}). Cost: {counts['calls']:.0f} judge calls for the rationales, "
        f"{judge['prompt_tokens_per_call']:.0f} prompt tokens per call; "
        f"{usage['requests']:.0f} requests sent (auto's probes included), "
        f"{usage['cache_hits']:.0f} replies read from the cache, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']:.0f} tokens sent and received, "
        f"${usage['cost']:.4f}, {judge['seconds']:.0f} s.",
        "Cannot tell apart: " + (", ".join(cannot) if cannot else "none") + ".",
    ]


def _write(
    report: JudgeCheckReport,
    out: Path,
    records: Sequence[QARecord],
    pairs: Sequence[tuple[str, int, str]],
    outputs: Sequence[JudgeOutput],
    source: str,
    split: str,
    confidence: float,
) -> dict[str, Path]:
    header = check_header(report.rows)
    raw = check_rows(report.checks, report.rows, report.questions)
    markdown = "\n\n".join(
        [
            f"# Judge check: {source} {split}, {report.questions} questions",
            markdown_table(header, [[_fmt(v) for v in row] for row in raw]),
            *_notes(report, confidence),
        ]
    )
    summary = {
        "benchmark": source,
        "split": split,
        "questions": report.questions,
        "rows": report.rows,
        "judge": report.judge,
        "aspects": [
            {
                "aspect": c.aspect,
                "means": c.means,
                "oracle_minus_decoy": asdict(c.difference),
                "oracle_higher": c.oracle_higher,
                "verdict": c.verdict,
            }
            for c in report.checks
        ],
        "cannot_tell_apart": report.cannot_tell_apart,
    }
    lines = [
        {
            "id": records[i].id,
            "row": row,
            "rationale": text,
            "scores": o.scores,
            "parsed": o.parsed,
            "protocol": o.protocol,
            "error": o.error,
        }
        for (row, i, text), o in zip(pairs, outputs)
    ]
    written = {
        "judge_check.md": markdown + "\n",
        "judge_check.csv": csv_text(header, raw),
        "judge_check.json": json.dumps(summary, indent=2) + "\n",
        "scores.jsonl": "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines),
    }
    for name, text in written.items():
        write_atomically(out / name, text)
    return {name: out / name for name in written}


def _print(console: Console, report: JudgeCheckReport, confidence: float) -> None:
    header = check_header(report.rows)
    raw = check_rows(report.checks, report.rows, report.questions)
    print_table(
        console,
        f"judge check, {report.questions} questions",
        header,
        [[_fmt(v) for v in row] for row in raw],
    )
    for note in _notes(report, confidence):
        console.print(note)
    console.print(f"results: {report.files['judge_check.md']}")
