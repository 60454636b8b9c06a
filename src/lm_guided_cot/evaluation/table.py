"""The comparison table and the paired differences, as rows for the terminal, Markdown and CSV.

Each table is built once as ``(header, raw rows)``; Markdown and the terminal show rounded
numbers, CSV keeps them whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from lm_guided_cot.evaluation.bootstrap import PairedDifference
from lm_guided_cot.evaluation.results import SettingResult
from lm_guided_cot.markdown import markdown_table, print_rows
from lm_guided_cot.roles.judge import PROTOCOLS

RESULT_HEADER = (
    "setting",
    "n",
    "EM",
    "F1",
    "inclusion",
    "aspects",
    "words",
    "LLM calls",
    "cached",
    "tokens",
    "cost $",
    "seconds",
)
COMPARISON_HEADER = ("setting", "vs", "metric", "difference", "ci low", "ci high", "p")
JUDGE_COLUMNS = ("mean", "parsed %", "protocol", "judge calls", "prompt tokens/call")


def judge_header(aspects: Sequence[str]) -> tuple[str, ...]:
    """The judge table's columns: the setting, each aspect's mean score, then ``JUDGE_COLUMNS``."""
    return ("setting", *aspects, *JUDGE_COLUMNS)


@dataclass(frozen=True)
class Comparison:
    """``setting`` minus ``baseline`` on one per-question metric."""

    setting: str
    baseline: str
    metric: str
    difference: PairedDifference


def result_rows(results: Sequence[SettingResult]) -> list[tuple[Any, ...]]:
    """One raw row per setting, in ``RESULT_HEADER`` order (aspects: ``None`` when unjudged)."""
    rows = []
    for result in results:
        m = result.metrics()
        usage = result.usage
        rows.append(
            (
                result.name,
                int(m["n"]),
                m["answer_em"],
                m["answer_f1"],
                m["answer_inclusion"],
                m.get("aspect/mean"),
                m.get("rationale_words"),
                int(usage.get("replies", 0) + usage.get("failures", 0)),
                int(usage.get("cache_hits", 0)),
                # of every reply the row used, sent or read from the cache: what the setting
                # costs, whatever an earlier run left in the cache
                int(
                    usage.get("prompt_tokens", 0)
                    + usage.get("completion_tokens", 0)
                    + usage.get("cached_tokens", 0)
                ),
                usage.get("cost", 0.0),
                result.seconds,
            )
        )
    return rows


def judge_rows(results: Sequence[SettingResult], aspects: Sequence[str]) -> list[tuple[Any, ...]]:
    """One raw row per judged setting (those with rationales), in ``judge_header`` order."""
    rows = []
    for result in results:
        m = result.metrics()
        if "aspect/mean" not in m:
            continue
        counts = result.judge
        calls = int(counts.get("calls", 0))
        protocols = "+".join(p for p in PROTOCOLS if counts.get(f"protocol/{p}"))
        rows.append(
            (
                result.name,
                *(m.get(f"aspect/{name}") for name in aspects),
                m["aspect/mean"],
                m["aspect/parsed"],
                protocols or None,
                calls,
                counts.get("prompt_tokens", 0.0) / calls if calls else None,
            )
        )
    return rows


def comparison_rows(comparisons: Sequence[Comparison]) -> list[tuple[Any, ...]]:
    """One raw row per comparison, in ``COMPARISON_HEADER`` order."""
    return [
        (
            c.setting,
            c.baseline,
            c.metric,
            c.difference.mean,
            c.difference.low,
            c.difference.high,
            c.difference.p_value,
        )
        for c in comparisons
    ]


def _fmt(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if column in ("EM", "F1", "inclusion", "difference", "ci low", "ci high"):
        return f"{100 * value:.1f}"  # percentage points, as the paper reports
    if column == "aspects":
        return f"{value:.2f}"
    if column == "words":
        return f"{value:.0f}"
    if column == "p":
        return f"{value:.3f}"
    if column == "cost $":
        return f"{value:.4f}"
    if column in ("seconds", "prompt tokens/call"):
        return f"{value:.0f}"
    if column == "parsed %":
        return f"{100 * value:.0f}"
    if isinstance(value, float):  # an aspect's mean score
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def formatted(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    """Rows as the strings the terminal and Markdown show."""
    return [[_fmt(v, c) for v, c in zip(row, header)] for row in rows]


def results_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The formatted rows as a Markdown table."""
    return markdown_table(header, formatted(header, rows))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The raw rows as CSV (full precision, empty cells for missing values)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def print_table(
    console: Console, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """The formatted rows as a table in the terminal (Markdown where output is not one)."""
    print_rows(console, title, header, formatted(header, rows))
