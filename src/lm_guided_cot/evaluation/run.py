"""The run step of ``lmcot evaluate``: every row's answers (and the judge's scores) computed.

The guides' rationales come first (timed per row), so that every reader request exists before
the first goes out; with ``question_major`` they are then sent question by question in one
pass, and the rows read their replies from the cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.evaluation.check import EvaluationPlan, require_supporting_facts
from lm_guided_cot.evaluation.results import ExampleResult, SettingResult, usage_delta
from lm_guided_cot.evaluation.settings import (
    cot_prompting,
    generate_rationales,
    gold_rationale,
    judge_rationales,
    lm_guided,
    read_rationale_file,
    standard_prompting,
)
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import check_failures
from lm_guided_cot.roles import Judge, Reader, Teacher, judge_counts

Progress = Callable[[LLMClient, str], contextlib.AbstractContextManager]


@dataclass
class RowsRun:
    """What the run step gives: the rows in table order, the cost of the question-major pass
    (``None`` without one) and the judge that scored the rationales (``None`` without one)."""

    results: list[SettingResult]
    shared_pass: dict[str, float] | None
    judge: Judge | None


def run_rows(plan: EvaluationPlan) -> RowsRun:
    """Run every row of the plan against the large LM; the clients are closed on the way out."""
    o = plan.options
    plan.console.rule(
        f"evaluation: {len(plan.records)} {o.split} questions, large LM {o.llm.model}"
    )
    client = client_for(o.llm)
    judge_client = client_for(o.judge_llm) if o.judge_llm is not None else client
    judge_role = Judge(judge_client, o.judge) if o.judge is not None else None
    rows = _RowRunner(plan, client, judge_client, judge_role)
    shared_pass: dict[str, float] | None = None
    records = plan.records
    try:
        answerer = Reader(client, o.reader)
        guides = _guides(plan)
        if plan.question_major:
            rationales = [g for g, _ in guides.values()]
            shared_pass = _question_major_pass(
                records, o.standard, rationales, answerer, client, rows.progress
            )
            plan.console.log(
                f"reader requests of every row, question by question: "
                f"{shared_pass['asked']:.0f} asked, {shared_pass['requests']:.0f} sent "
                f"({shared_pass['seconds']:.0f} s)"
            )
        if o.standard:
            rows.run(plan.names["standard"], lambda: standard_prompting(records, answerer))
        if o.cot:
            rows.run(
                plan.names["cot"], lambda: cot_prompting(records, Teacher(client, o.cot_prompt))
            )
        for name, (rationales, seconds) in guides.items():
            rows.run(name, lambda r=rationales: lm_guided(records, r, answerer), seconds)
    finally:
        client.close()
        if judge_client is not client:
            judge_client.close()
    return RowsRun(rows.results, shared_pass, judge_role)


def _guides(plan: EvaluationPlan) -> dict[str, tuple[list[list[str]], float]]:
    """Each guide row's rationales per question and the seconds they took to write."""
    o, records = plan.options, plan.records
    guides: dict[str, tuple[list[list[str]], float]] = {}
    for setting in plan.small_lms:
        start = time.perf_counter()
        rationales = generate_rationales(
            setting, o.data, o.split, plan.device, o.seed, show_progress=not o.quiet
        )
        guides[setting.name] = (rationales, time.perf_counter() - start)
    for file_setting in plan.files:
        guides[file_setting.name] = (read_rationale_file(file_setting.path, records), 0.0)
    if o.oracle:
        require_supporting_facts(records, o.split)
        for record in records:
            for problem in record.facts_outside_paragraphs:
                plan.console.log(f"[yellow]oracle: record {record.id!r}: {problem}; left out")
        guides[plan.names["oracle"]] = ([[gold_rationale(r)] for r in records], 0.0)
    return guides


class _RowRunner:
    """Runs one row at a time: its large-LM answers, then the judge's scores, into ``results``."""

    def __init__(
        self,
        plan: EvaluationPlan,
        client: LLMClient,
        judge_client: LLMClient,
        judge: Judge | None,
    ) -> None:
        self.plan, self.client, self.judge_client, self.judge = plan, client, judge_client, judge
        self.results: list[SettingResult] = []

    def progress(self, llm_client: LLMClient, text: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if self.plan.options.quiet else llm_client.progress(text)

    def run(
        self, name: str, answer: Callable[[], list[ExampleResult]], seconds_before: float = 0.0
    ) -> None:
        """Run row ``name``; ``seconds_before``: what writing its rationales took."""
        self.plan.console.log(f"[bold]{name}[/bold]: running")
        start = time.perf_counter() - seconds_before
        before = self.client.role_usages()
        with self.progress(self.client, f"{name}: large LM"):
            examples = answer()
        usage = usage_delta(before, self.client.role_usages(), ("reader", "teacher"))
        o = self.plan.options
        _check_calls(name, usage, [e.errors for e in examples], self.client, o.llm)
        counts, judge_usage = self._judge(name, examples)
        result = SettingResult(
            name, examples, time.perf_counter() - start, usage, judge_usage, counts
        )
        self.results.append(result)
        self._log(result)

    def _judge(
        self, name: str, examples: list[ExampleResult]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The judge's counts and usage for the row's rationales (none without a judge)."""
        judge_before = self.judge_client.role_usages()
        answered = [len(e.errors) for e in examples]
        outputs = []
        if self.judge is not None:
            settled = self.judge.protocol
            with self.progress(self.judge_client, f"{name}: judge"):
                outputs = judge_rationales(self.plan.records, examples, self.judge)
            if settled is None and self.judge.protocol is not None:
                self.plan.console.log(
                    f"judge protocol: {self.judge.protocol} ({self.judge.protocol_reason})"
                )
        judge_usage = usage_delta(judge_before, self.judge_client.role_usages(), ("judge",))
        judged = [e.errors[n:] for e, n in zip(examples, answered)]
        config = self.plan.options.judge_llm or self.plan.options.llm
        _check_calls(f"{name}, judge", judge_usage, judged, self.judge_client, config)
        return (judge_counts(outputs) if self.judge is not None else {}), judge_usage

    def _log(self, result: SettingResult) -> None:
        m, name, console = result.metrics(), result.name, self.plan.console
        console.log(
            f"[bold]{name}[/bold]: EM {100 * m['answer_em']:.1f}  F1 {100 * m['answer_f1']:.1f}"
            f"  ({result.seconds:.0f} s)"
        )
        if m.get("aspect/parsed", 1.0) < 1.0:
            console.log(
                f"[yellow]{name}: the judge's reply could not be read for "
                f"{100 * (1 - m['aspect/parsed']):.0f}% of the rationales; those count "
                f"with the fallback score {self.judge.fallback:g}"
            )


def _check_calls(
    row: str,
    usage: dict[str, float],
    errors: Sequence[Sequence[str]],
    client: LLMClient,
    config: LLMConfig,
) -> None:
    """Stop before a row of fallbacks enters the table: ``RunError`` when its calls failed
    at ``config.max_failure_rate`` (by default: all of them)."""
    failed = int(usage["failures"])
    first = next((e for found in errors for e in found), None)
    check_failures(
        f"row {row!r}",
        failed,
        failed + int(usage["replies"]),
        client.where,
        first,
        config.max_failure_rate,
        then="no results were written; check the large LM's settings (model, api_base, key, "
        "server) and run again",
    )


def _question_major_pass(
    records: Sequence[QARecord],
    standard: bool,
    guides: Sequence[list[list[str]]],
    reader: Reader,
    client: LLMClient,
    progress: Progress,
) -> dict[str, float]:
    """Send every row's reader requests, each question's together, and report the cost."""
    pairs: list[tuple[QARecord, str | None]] = []
    for i, record in enumerate(records):
        pairs += [(record, None)] * standard
        pairs += [(record, x) for rationales in guides for x in rationales[i]]
    start = time.perf_counter()
    before = client.role_usages()
    with progress(client, "every row's reader requests, question by question"):
        reader.answer([r for r, _ in pairs], [x for _, x in pairs])
    usage = usage_delta(before, client.role_usages(), ("reader",))
    return {**usage, "asked": float(len(pairs)), "seconds": time.perf_counter() - start}
