"""The write step of ``lmcot evaluate``: the figures, each row's files, the tables
(``results.md``, ``results.csv``, ``comparisons.csv``, ``judge.csv``), ``summary.json`` and the
TensorBoard logs under the output folder, then the tables on the console."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lm_guided_cot.evaluation.check import EvaluationPlan
from lm_guided_cot.evaluation.figures import DIFFERENCE_TO_STANDARD, F1_BY_ROW, Figures
from lm_guided_cot.evaluation.results import SettingResult, write_setting_files
from lm_guided_cot.evaluation.run import RowsRun
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
from lm_guided_cot.files import write_atomically
from lm_guided_cot.markdown import markdown_table
from lm_guided_cot.metrics import GoldExample, official_report, read_prediction_file
from lm_guided_cot.roles import Judge


def write_outputs(
    plan: EvaluationPlan, rows: RowsRun, comparisons: Sequence[Comparison], figures: Figures
) -> dict[str, Path]:
    """Write every output file of the evaluation; return them by name."""
    out, judge = plan.out, judge_summary(rows.judge)
    drawn = figures.write(out)
    files: dict[str, Path] = dict(drawn)
    summary = _summary_head(plan, rows.shared_pass, judge)
    _write_rows(plan, rows.results, files, summary["settings"])
    summary["figures"] = {
        "files": sorted(drawn),
        "answer_f1_intervals": [asdict(i) for i in figures.f1],
        "f1_difference_to_standard": [asdict(i) for i in figures.differences or []],
        "confidence": figures.confidence,
    }
    summary["comparisons"] = [
        {"setting": c.setting, "baseline": c.baseline, "metric": c.metric, **asdict(c.difference)}
        for c in comparisons
    ]
    table, compared = result_rows(rows.results), comparison_rows(comparisons)
    aspects = list(judge["aspects"]) if judge is not None else []
    judged = judge_rows(rows.results, aspects) if judge is not None else []
    sections = [results_markdown(RESULT_HEADER, table) + _table_note(rows)]
    if judge is not None and judged:
        sections += [
            "## Judge",
            _judge_note(judge),
            results_markdown(judge_header(aspects), judged),
        ]
    sections += [
        "## Paired bootstrap (difference in percentage points)",
        results_markdown(COMPARISON_HEADER, compared) if compared else "(one setting only)",
        "## Figures",
        figures.markdown(drawn),
    ]
    markdown = "\n\n".join([_title(plan), *sections])
    written = [
        ("results.md", markdown + "\n"),
        ("results.csv", csv_text(RESULT_HEADER, table)),
        ("comparisons.csv", csv_text(COMPARISON_HEADER, compared)),
        ("summary.json", json.dumps(summary, indent=2) + "\n"),
    ]
    if judge is not None:
        written.append(("judge.csv", csv_text(judge_header(aspects), judged)))
    for name, text in written:
        write_atomically(out / name, text)
        files[name] = out / name
    logged = plan.options.num_logged_examples
    _log_tensorboard(rows.results, out / "tensorboard", markdown, logged)
    files["tensorboard"] = out / "tensorboard"
    return files


def print_report(
    plan: EvaluationPlan,
    results: Sequence[SettingResult],
    comparisons: Sequence[Comparison],
    files: dict[str, Path],
) -> None:
    """The results and comparison tables, and where the files are, on the console."""
    o, console = plan.options, plan.console
    title = f"{o.data.source} {o.split}, {len(plan.records)} questions"
    print_table(console, title, RESULT_HEADER, result_rows(results))
    if comparisons:
        print_table(
            console,
            f"paired bootstrap, {100 * o.confidence:.0f}% intervals, percentage points",
            COMPARISON_HEADER,
            comparison_rows(comparisons),
        )
    out = plan.out
    console.print(f"results: {out / 'results.md'}   TensorBoard: tensorboard --logdir {out}")
    drawn = [str(files[n]) for n in (F1_BY_ROW, DIFFERENCE_TO_STANDARD) if n in files]
    console.print("figures: " + "   ".join(drawn))


def official_scores(
    predictions: Path, gold: Sequence[GoldExample], benchmark: str
) -> dict[str, object]:
    """A prediction file re-scored by the benchmark's official rules, as ``lmcot score`` gives
    it: the metrics, and which sections the file lacks (the settings predict answers only)."""
    report = official_report(read_prediction_file(predictions), gold, benchmark, str(predictions))
    return report.as_dict()


def judge_summary(judge: Judge | None) -> dict[str, Any] | None:
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


def _summary_head(
    plan: EvaluationPlan, shared_pass: dict[str, float] | None, judge: dict[str, Any] | None
) -> dict[str, Any]:
    """``summary.json`` up to its rows (``settings``, filled as each row's files are written)."""
    o = plan.options
    summary: dict[str, Any] = {
        "benchmark": o.data.source,
        "split": o.split,
        "questions": len(plan.records),
        "large_lm": o.llm.model,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {},
    }
    if shared_pass is not None:
        summary["shared_reader_pass"] = shared_pass
    if judge is not None:
        summary["judge"] = judge
    return summary


def _write_rows(
    plan: EvaluationPlan,
    results: Sequence[SettingResult],
    files: dict[str, Path],
    settings: dict[str, Any],
) -> None:
    """Each row's examples and predictions; its metrics, official scores and costs into
    ``settings`` (``summary.json``'s)."""
    gold = [r.gold_example() for r in plan.records]
    for result in results:
        written = write_setting_files(plan.out, result)
        files[f"{result.slug}/examples"] = written["examples"]
        files[f"{result.slug}/predictions"] = written["predictions"]
        settings[result.name] = {
            "metrics": result.metrics(),
            "official": official_scores(written["predictions"], gold, plan.options.data.source),
            "usage": result.usage,
            "judge_usage": result.judge_usage,
            "judge": result.judge,
            "seconds": result.seconds,
        }


def _title(plan: EvaluationPlan) -> str:
    o = plan.options
    return f"# {o.data.source} {o.split}: {len(plan.records)} questions, large LM `{o.llm.model}`"


def _table_note(rows: RowsRun) -> str:
    """What the results table's columns mean, as a paragraph after it."""
    return (
        "\n\nEM, F1 and inclusion in %; aspects: the judge's mean score; words: mean rationale "
        "length; LLM calls and tokens: the large LM's replies the row used (cached ones "
        "included; the judge's are in summary.json); cost: what was paid for them in this run."
        + _unparsed_note(rows.results)
        + _shared_pass_note(rows.shared_pass)
    )


def _judge_note(judge: dict[str, Any]) -> str:
    low, high = judge["scale"]
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
    results: Sequence[SettingResult], folder: Path, markdown: str, num_logged_examples: int
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        writer.add_text("eval/results", markdown)
        for result in results:
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
