"""``lmcot evaluate``: the paper's settings side by side on one split, with one large LM.

README.md, "Evaluation: the paper's comparison", is the manual (settings, files written,
resuming from the reply cache).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import torch
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
from lm_guided_cot.evaluation.bootstrap import paired_bootstrap
from lm_guided_cot.evaluation.figures import (
    DIFFERENCE_TO_STANDARD,
    F1_BY_ROW,
    Interval,
    differences_to,
    f1_intervals,
    plot_difference_to_standard,
    plot_f1_by_row,
)
from lm_guided_cot.evaluation.results import (
    ExampleResult,
    SettingResult,
    usage_delta,
    write_setting_files,
)
from lm_guided_cot.evaluation.settings import (
    RationaleFileSetting,
    SmallLMSetting,
    cot_prompting,
    generate_rationales,
    gold_rationale,
    judge_rationales,
    lm_guided,
    read_rationale_file,
    standard_prompting,
)
from lm_guided_cot.evaluation.table import (
    COMPARISON_HEADER,
    RESULT_HEADER,
    Comparison,
    comparison_rows,
    csv_text,
    judge_header,
    judge_rows,
    print_table,
    result_rows,
    results_markdown,
)
from lm_guided_cot.files import check_writable, write_atomically
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import check_failures
from lm_guided_cot.markdown import markdown_table
from lm_guided_cot.metrics import GoldExample, official_report, read_prediction_file
from lm_guided_cot.model_specs import require_local_model
from lm_guided_cot.roles import (
    Judge,
    JudgeConfig,
    Reader,
    ReaderConfig,
    Teacher,
    TeacherConfig,
    judge_counts,
)
from lm_guided_cot.roles.judge import check_judge_records

STANDARD = "standard prompting"
COT = "CoT prompting"
ORACLE = "oracle (gold supporting sentences)"


@dataclass
class EvaluationReport:
    """What ``evaluate`` returns: the rows, the paired comparisons and the files written."""

    results: list[SettingResult]
    comparisons: list[Comparison]
    files: dict[str, Path] = field(default_factory=dict)

    def result(self, name: str) -> SettingResult:
        return next(r for r in self.results if r.name == name)


def evaluate(
    data: MultiHopQADataModule,
    llm: LLMConfig,
    small_lms: list[SmallLMSetting] | None = None,
    standard: bool = True,
    cot: bool = True,
    oracle: bool = False,
    rationale_files: list[RationaleFileSetting] | None = None,
    row_names: dict[str, str] | None = None,
    question_major: bool | None = None,
    reader: ReaderConfig = ReaderConfig(),  # noqa: B008 (a plain dataclass, never mutated)
    cot_prompt: TeacherConfig = TeacherConfig(),  # noqa: B008
    judge: JudgeConfig | None = JudgeConfig(),  # noqa: B008
    judge_llm: LLMConfig | None = None,
    split: Literal["validation", "test"] = "test",
    baseline: str | None = None,
    comparisons: list[list[str]] | None = None,
    bootstrap_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    device: str = "auto",
    output_dir: str = "runs/evaluation",
    num_logged_examples: int = 8,
    quiet: bool = False,
) -> EvaluationReport:
    """Compare standard prompting, CoT prompting and LM-guided settings on one split.

    Args:
        data: the benchmark's DataModule (e.g. ``-c configs/hotpotqa/data.yaml``); its
            ``max_eval_examples`` caps the questions, its prompt settings write the small
            LMs' inputs. Its tokenizer is set per small LM.
        llm: the large LM, the same for every setting (e.g. ``--llm configs/llm/openai.yaml``).
        small_lms: the LM-guided settings, each a named small-LM checkpoint (KD, KD+RL, ...);
            one with ``samples > 1`` is self-consistency.
        standard: include standard prompting (the large LM answers alone).
        cot: include CoT prompting (the large LM writes its own rationale).
        oracle: include the oracle row: the gold supporting sentences as the rationale, this
            reader's ceiling for any guide (the split needs supporting facts).
        rationale_files: rows whose rationales are read from files (``name``, ``path``): other
            guides, ablations, a teacher's rationales.
        row_names: names of the built-in rows, keys ``standard``, ``cot``, ``oracle``.
        question_major: first send every row's reader requests in one pass, question by
            question, then build the rows from the cache: a llama.cpp server processes each
            question's context once for all rows (its KV cache) instead of once per row. The
            rows' calls then show as cached; the pass's own calls, tokens and seconds are
            reported apart. ``None``: on when the large LM is a managed server (``llm.server``)
            with a cache. Needs ``llm.cache_path``.
        reader: how the large LM is asked to answer, with or without a rationale.
        cot_prompt: how the large LM is asked for its own rationale (few-shot with
            ``demonstrations``).
        judge: how the judge scores each rationale, on which aspects (``protocol``,
            ``context``, ...; ``null``: no aspect scores). Each aspect's mean per row is in
            the judge table of ``results.md`` and ``judge.csv``.
        judge_llm: the judge's LLM (default: ``llm``).
        split: the split to evaluate.
        baseline: the setting every other one is compared with (default: the first row).
        comparisons: explicit ``[setting, baseline]`` pairs instead of all-vs-``baseline``.
        bootstrap_resamples: resamples of the paired bootstrap (at least 1).
        confidence: level of the bootstrap intervals, in (0, 1).
        seed: seed of the small LMs' sampling and of the bootstrap.
        device: where the small LMs run: ``auto`` (CUDA when present), ``cpu``, ``cuda:0``...
        output_dir: where tables, per-example files, predictions and TensorBoard logs go.
        num_logged_examples: examples per setting in the TensorBoard text tab (at least 0).
        quiet: do not print progress and tables.
    """
    # Every option is checked here, before a model is loaded or a question asked.
    check_at_least("evaluate.bootstrap_resamples", bootstrap_resamples, 1)
    check_between("evaluate.confidence", confidence, 0, 1, open_low=True, open_high=True)
    check_at_least("evaluate.num_logged_examples", num_logged_examples, 0)
    # soft_wrap: paths and sentences stay whole in log files (a terminal wraps them itself)
    console = Console(quiet=quiet, log_path=False, soft_wrap=True)
    out = Path(output_dir)
    small_lms = [as_dataclass(SmallLMSetting, s) for s in small_lms or []]
    files = [as_dataclass(RationaleFileSetting, s) for s in rationale_files or []]
    names = _row_names(row_names)
    rows = (
        [names["standard"]] * standard
        + [names["cot"]] * cot
        + [s.name for s in (*small_lms, *files)]
        + [names["oracle"]] * oracle
    )
    _check_names(rows)
    _check_comparisons(rows, baseline, comparisons)
    for setting in small_lms:
        require_local_model(setting.model)  # not after an hour of baseline calls
    for setting in files:
        if not Path(setting.path).is_file():
            raise MissingFileError(f"{setting.path}: no such rationale file (row {setting.name!r})")
    if question_major is None:
        question_major = llm.server is not None and llm.cache_path is not None
    if question_major and llm.cache_path is None:
        raise ConfigurationError(
            "evaluate.question_major: true needs llm.cache_path (rows read the pass's replies)"
        )
    check_writable(out, "evaluate.output_dir")  # not after every large-LM call is made
    torch_device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    )
    records = [QARecord.from_row(row) for row in data.records(split)]
    if not records:
        raise ValueError(f"the {split} split has no questions")
    if judge is not None:
        check_judge_records(judge, records)
    console.rule(f"evaluation: {len(records)} {split} questions, large LM {llm.model}")

    client = client_for(llm)
    judge_client = client_for(judge_llm) if judge_llm is not None else client
    judge_role = Judge(judge_client, judge) if judge is not None else None
    results: list[SettingResult] = []
    shared_pass: dict[str, float] | None = None

    def progress(llm_client: LLMClient, text: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if quiet else llm_client.progress(text)

    try:

        def run(
            name: str, answer: Callable[[], list[ExampleResult]], seconds_before: float = 0.0
        ) -> None:
            console.log(f"[bold]{name}[/bold]: running")
            start = time.perf_counter() - seconds_before
            before = client.role_usages()
            with progress(client, f"{name}: large LM"):
                examples = answer()
            usage = usage_delta(before, client.role_usages(), ("reader", "teacher"))
            _check_calls(name, usage, [e.errors for e in examples], client, llm)
            judge_before = judge_client.role_usages()
            answered = [len(e.errors) for e in examples]
            outputs = []
            if judge_role is not None:
                settled = judge_role.protocol
                with progress(judge_client, f"{name}: judge"):
                    outputs = judge_rationales(records, examples, judge_role)
                if settled is None and judge_role.protocol is not None:
                    console.log(
                        f"judge protocol: {judge_role.protocol} ({judge_role.protocol_reason})"
                    )
            judge_usage = usage_delta(judge_before, judge_client.role_usages(), ("judge",))
            judged = [e.errors[n:] for e, n in zip(examples, answered)]
            _check_calls(f"{name}, judge", judge_usage, judged, judge_client, judge_llm or llm)
            result = SettingResult(
                name,
                examples,
                time.perf_counter() - start,
                usage,
                judge_usage,
                judge_counts(outputs) if judge_role is not None else {},
            )
            results.append(result)
            m = result.metrics()
            console.log(
                f"[bold]{name}[/bold]: EM {100 * m['answer_em']:.1f}  F1 {100 * m['answer_f1']:.1f}"
                f"  ({result.seconds:.0f} s)"
            )
            if m.get("aspect/parsed", 1.0) < 1.0:
                console.log(
                    f"[yellow]{name}: the judge's reply could not be read for "
                    f"{100 * (1 - m['aspect/parsed']):.0f}% of the rationales; those count "
                    f"with the fallback score {judge_role.fallback:g}"
                )

        answerer = Reader(client, reader)
        # Every guide's rationales first (timed per row), so that all reader requests exist
        # before the first goes out.
        guides: dict[str, tuple[list[list[str]], float]] = {}
        for setting in small_lms:
            start = time.perf_counter()
            rationales = generate_rationales(
                setting, data, split, torch_device, seed, show_progress=not quiet
            )
            guides[setting.name] = (rationales, time.perf_counter() - start)
        for file_setting in files:
            guides[file_setting.name] = (read_rationale_file(file_setting.path, records), 0.0)
        if oracle:
            _require_supporting_facts(records, split)
            for record in records:
                for problem in record.facts_outside_paragraphs:
                    console.log(f"[yellow]oracle: record {record.id!r}: {problem}; left out")
            guides[names["oracle"]] = ([[gold_rationale(r)] for r in records], 0.0)
        if question_major:
            shared_pass = _question_major_pass(
                records, standard, [g for g, _ in guides.values()], answerer, client, progress
            )
            console.log(
                f"reader requests of every row, question by question: "
                f"{shared_pass['asked']:.0f} asked, {shared_pass['requests']:.0f} sent "
                f"({shared_pass['seconds']:.0f} s)"
            )
        if standard:
            run(names["standard"], lambda: standard_prompting(records, answerer))
        if cot:
            run(names["cot"], lambda: cot_prompting(records, Teacher(client, cot_prompt)))
        for name, (rationales, seconds) in guides.items():
            run(name, lambda r=rationales: lm_guided(records, r, answerer), seconds)
    finally:
        client.close()
        if judge_client is not client:
            judge_client.close()

    pairs = comparisons or [[r.name, baseline or results[0].name] for r in results]
    compared = _compare(results, pairs, bootstrap_resamples, confidence, seed)
    report = EvaluationReport(results, compared)
    figures = _Figures(
        f1_intervals(results, bootstrap_resamples, confidence, seed),
        confidence,
        names["standard"] if standard else None,
    )
    if standard and len(results) > 1:
        figures.differences = differences_to(
            names["standard"], results, compared, bootstrap_resamples, confidence, seed
        )
    else:
        why = "no standard prompting row" if not standard else "no row besides standard prompting"
        console.log(f"[yellow]figures: {why}, so no {DIFFERENCE_TO_STANDARD}")
    report.files = _write_outputs(
        report,
        out,
        data,
        split,
        llm,
        records,
        num_logged_examples,
        shared_pass,
        figures,
        _judge_summary(judge_role),
    )
    print_table(
        console,
        f"{data.source} {split}, {len(records)} questions",
        RESULT_HEADER,
        result_rows(results),
    )
    if compared:
        print_table(
            console,
            f"paired bootstrap, {100 * confidence:.0f}% intervals, percentage points",
            COMPARISON_HEADER,
            comparison_rows(compared),
        )
    console.print(f"results: {out / 'results.md'}   TensorBoard: tensorboard --logdir {out}")
    drawn = [str(report.files[n]) for n in (F1_BY_ROW, DIFFERENCE_TO_STANDARD) if n in report.files]
    console.print("figures: " + "   ".join(drawn))
    return report


@dataclass
class _Figures:
    """What the figures show: each row's F1 interval; each row's paired F1 difference to
    standard prompting (``None`` without that row)."""

    f1: list[Interval]
    confidence: float
    standard: str | None
    differences: list[Interval] | None = None

    def write(self, out: Path) -> dict[str, Path]:
        files = {F1_BY_ROW: plot_f1_by_row(self.f1, out / F1_BY_ROW, self.confidence)}
        if self.differences:
            files[DIFFERENCE_TO_STANDARD] = plot_difference_to_standard(
                self.differences, out / DIFFERENCE_TO_STANDARD, self.standard, self.confidence
            )
        return files

    def markdown(self, files: dict[str, Path]) -> str:
        level = f"{100 * self.confidence:g}%"
        lines = [f"![answer F1 by row, {level} bootstrap intervals]({F1_BY_ROW})"]
        if DIFFERENCE_TO_STANDARD in files:
            lines.append(
                f"![paired F1 difference to {self.standard}, {level} bootstrap intervals]"
                f"({DIFFERENCE_TO_STANDARD})"
            )
        else:
            lines.append(
                f"(no {DIFFERENCE_TO_STANDARD}: no standard prompting row to compare with)"
            )
        return "\n\n".join(lines)


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


def _require_supporting_facts(records: Sequence[QARecord], split: str) -> None:
    lacking = [r.id for r in records if not gold_rationale(r)]
    if lacking:
        raise InputError(
            f"oracle: {len(lacking)} of the {len(records)} {split} questions have no supporting "
            f"facts to write the oracle rationale from (first ids: {', '.join(lacking[:5])}); "
            "set oracle: false for a split without them"
        )


def _row_names(row_names: dict[str, str] | None) -> dict[str, str]:
    names = {"standard": STANDARD, "cot": COT, "oracle": ORACLE}
    unknown = sorted(set(row_names or {}) - set(names))
    if unknown:
        raise ConfigurationError(f"evaluate.row_names: unknown rows {unknown}; use {sorted(names)}")
    return {**names, **(row_names or {})}


def _question_major_pass(
    records: Sequence[QARecord],
    standard: bool,
    guides: Sequence[list[list[str]]],
    reader: Reader,
    client: LLMClient,
    progress: Callable[[LLMClient, str], contextlib.AbstractContextManager],
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


def _check_names(names: Sequence[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"setting names must be unique; repeated: {duplicates}")
    if not names:
        raise ConfigurationError("nothing to evaluate: enable standard, cot or add small_lms")


def _check_comparisons(
    names: Sequence[str], baseline: str | None, comparisons: Sequence[Sequence[str]] | None
) -> None:
    """Refuse a baseline or comparison naming no row, before the rows are run."""
    if baseline is not None and baseline not in names:
        raise ConfigurationError(
            f"evaluate.baseline {baseline!r} is none of the settings {sorted(set(names))}"
        )
    for pair in comparisons or []:
        if len(pair) != 2 or any(name not in names for name in pair):
            raise ConfigurationError(
                f"evaluate.comparisons {list(pair)}: expected two of the settings "
                f"{sorted(set(names))}"
            )


def _compare(
    results: Sequence[SettingResult],
    pairs: Sequence[Sequence[str]],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[Comparison]:
    by_name = {r.name: r for r in results}
    compared = []
    for pair in pairs:
        if len(pair) != 2 or any(name not in by_name for name in pair):
            raise ConfigurationError(
                f"comparison {list(pair)}: expected two of the settings {sorted(by_name)}"
            )
        setting, baseline = pair
        if setting == baseline:
            continue
        for metric in ("em", "f1"):
            difference = paired_bootstrap(
                by_name[setting].column(metric),
                by_name[baseline].column(metric),
                resamples,
                confidence,
                seed,
            )
            compared.append(Comparison(setting, baseline, metric, difference))
    return compared


def _write_outputs(
    report: EvaluationReport,
    out: Path,
    data: MultiHopQADataModule,
    split: str,
    llm: LLMConfig,
    records: Sequence[QARecord],
    num_logged_examples: int,
    shared_pass: dict[str, float] | None = None,
    figures: _Figures | None = None,
    judge: dict[str, object] | None = None,
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    drawn = figures.write(out) if figures is not None else {}
    files.update(drawn)
    gold = [r.gold_example() for r in records]
    summary: dict[str, object] = {
        "benchmark": data.source,
        "split": split,
        "questions": len(records),
        "large_lm": llm.model,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {},
    }
    if shared_pass is not None:
        summary["shared_reader_pass"] = shared_pass
    if judge is not None:
        summary["judge"] = judge
    for result in report.results:
        written = write_setting_files(out, result)
        files[f"{result.slug}/examples"] = written["examples"]
        files[f"{result.slug}/predictions"] = written["predictions"]
        summary["settings"][result.name] = {
            "metrics": result.metrics(),
            "official": official_scores(written["predictions"], gold, data.source),
            "usage": result.usage,
            "judge_usage": result.judge_usage,
            "judge": result.judge,
            "seconds": result.seconds,
        }
    if figures is not None:
        summary["figures"] = {
            "files": sorted(drawn),
            "answer_f1_intervals": [asdict(i) for i in figures.f1],
            "f1_difference_to_standard": [asdict(i) for i in figures.differences or []],
            "confidence": figures.confidence,
        }
    summary["comparisons"] = [
        {"setting": c.setting, "baseline": c.baseline, "metric": c.metric, **asdict(c.difference)}
        for c in report.comparisons
    ]
    rows, compared = result_rows(report.results), comparison_rows(report.comparisons)
    aspects = list(judge["aspects"]) if judge is not None else []  # type: ignore[call-overload]
    judged = judge_rows(report.results, aspects) if judge is not None else []
    markdown = "\n\n".join(
        [
            f"# {data.source} {split}: {len(records)} questions, large LM `{llm.model}`",
            results_markdown(RESULT_HEADER, rows),
            "EM, F1 and inclusion in %; aspects: the judge's mean score; words: mean rationale "
            "length; LLM calls and tokens: the large LM's replies the row used (cached ones "
            "included; the judge's are in summary.json); cost: what was paid for them in this run."
            + _unparsed_note(report.results)
            + _shared_pass_note(shared_pass),
            *(
                ["## Judge", _judge_note(judge), results_markdown(judge_header(aspects), judged)]
                if judge is not None and judged
                else []
            ),
            "## Paired bootstrap (difference in percentage points)",
            results_markdown(COMPARISON_HEADER, compared) if compared else "(one setting only)",
            *(["## Figures", figures.markdown(drawn)] if figures is not None else []),
        ]
    )
    written = [
        ("results.md", markdown + "\n"),
        ("results.csv", csv_text(RESULT_HEADER, rows)),
        ("comparisons.csv", csv_text(COMPARISON_HEADER, compared)),
        ("summary.json", json.dumps(summary, indent=2) + "\n"),
    ]
    if judge is not None:
        written.append(("judge.csv", csv_text(judge_header(aspects), judged)))
    for name, text in written:
        write_atomically(out / name, text)
        files[name] = out / name
    _log_tensorboard(report, out / "tensorboard", markdown, num_logged_examples)
    files["tensorboard"] = out / "tensorboard"
    return files


def official_scores(
    predictions: Path, gold: Sequence[GoldExample], benchmark: str
) -> dict[str, object]:
    """A prediction file re-scored by the benchmark's official rules, as ``lmcot score`` gives
    it: the metrics, and which sections the file lacks (the settings predict answers only)."""
    report = official_report(read_prediction_file(predictions), gold, benchmark, str(predictions))
    return report.as_dict()


def _judge_summary(judge: Judge | None) -> dict[str, object] | None:
    """How the judge scored (for ``summary.json`` and the judge table's note)."""
    if judge is None:
        return None
    cfg = judge.config
    return {
        "protocol": judge.protocol,
        "protocol_reason": judge.protocol_reason,
        "context": cfg.context,
        "aspects": [a.name for a in cfg.aspects],
        "scale": [cfg.scale_min, cfg.scale_max],
        "fallback": judge.fallback,
    }


def _judge_note(judge: dict[str, object]) -> str:
    low, high = judge["scale"]  # type: ignore[misc]
    how = (
        f"{low:g} + {high - low:g} x P(yes) to the aspect's yes/no question"
        if judge["protocol"] == "logprobs"
        else f"scores from {low:g} to {high:g}"
    )
    return (
        f"Each aspect's mean score over the row's rationales ({how}; protocol "
        f"{judge['protocol']}: {judge['protocol_reason']}; context: {judge['context']}). "
        "parsed %: rationales whose every aspect was read (the rest have the fallback "
        f"{judge['fallback']:g}); prompt tokens/call: the judge's mean prompt length."
    )


def _shared_pass_note(shared_pass: dict[str, float] | None) -> str:
    if shared_pass is None:
        return ""
    tokens = shared_pass.get("prompt_tokens", 0) + shared_pass.get("completion_tokens", 0)
    return (
        f" The reader requests of every row went out first, question by question "
        f"({shared_pass['asked']:.0f} asked, {shared_pass['requests']:.0f} sent, {tokens:.0f} "
        f"tokens, {shared_pass['seconds']:.0f} s), so the rows read their "
        "replies from the cache; their seconds leave that pass out."
    )


def _unparsed_note(results: Sequence[SettingResult]) -> str:
    rates = {r.name: r.metrics().get("aspect/parsed", 1.0) for r in results}
    low = [f"{name} {100 * (1 - rate):.0f}%" for name, rate in rates.items() if rate < 1.0]
    if not low:
        return ""
    return (
        " Judge replies that could not be read (scored with the fallback, the middle of the "
        "scale): " + ", ".join(low) + "."
    )


def _log_tensorboard(
    report: EvaluationReport, folder: Path, markdown: str, num_logged_examples: int
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        writer.add_text("eval/results", markdown)
        for result in report.results:
            for key, value in result.metrics().items():
                writer.add_scalar(f"eval/{result.slug}/{key}", value, 0)
            examples = markdown_table(
                ["question", "rationale", "answer", "gold", "F1"],
                [
                    (
                        e.question,
                        e.rationales[0] if e.rationales else "",
                        e.answer,
                        e.gold[0],
                        f"{e.f1:.2f}",
                    )
                    for e in result.examples[:num_logged_examples]
                ],
            )
            writer.add_text(f"eval/{result.slug}/examples", examples)
