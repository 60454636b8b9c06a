"""The comparison as pictures: each row's F1 with its bootstrap interval, and each row's paired
F1 difference to standard prompting with its interval (``lmcot evaluate`` writes both under
``<output_dir>/figures/``).

The intervals are those of ``evaluation.bootstrap``; the plots are pure functions of
``Interval`` rows, so they are tested without a large LM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lm_guided_cot.evaluation.bootstrap import PairedDifference, bootstrap_mean, paired_bootstrap
from lm_guided_cot.evaluation.results import SettingResult
from lm_guided_cot.evaluation.table import Comparison
from lm_guided_cot.plots import new_figure, save_png

F1_BY_ROW = "figures/f1_by_row.png"
DIFFERENCE_TO_STANDARD = "figures/difference_to_standard.png"


@dataclass(frozen=True)
class Interval:
    """One bar of a figure: a row's name, a mean (0-1 scale) and its interval."""

    name: str
    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, name: str, difference: PairedDifference) -> Interval:
        return cls(name, difference.mean, difference.low, difference.high)


def f1_intervals(
    results: Sequence[SettingResult], resamples: int, confidence: float, seed: int
) -> list[Interval]:
    """Each row's mean F1 and its bootstrap interval over the questions."""
    return [
        Interval.of(r.name, bootstrap_mean(r.column("f1"), resamples, confidence, seed))
        for r in results
    ]


def differences_to(
    baseline: str,
    results: Sequence[SettingResult],
    comparisons: Sequence[Comparison],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[Interval]:
    """Each other row's paired F1 difference to ``baseline``: the comparison table's where it
    has one, else the same paired bootstrap."""
    done = {
        c.setting: c.difference for c in comparisons if c.baseline == baseline and c.metric == "f1"
    }
    base = next(r for r in results if r.name == baseline)
    out = []
    for result in results:
        if result.name == baseline:
            continue
        difference = done.get(result.name) or paired_bootstrap(
            result.column("f1"), base.column("f1"), resamples, confidence, seed
        )
        out.append(Interval.of(result.name, difference))
    return out


def _interval_plot(rows: Sequence[Interval], title: str, xlabel: str, zero_line: bool):
    """Horizontal points with interval bars, first row on top, in percentage points."""
    height = 1.2 + 0.45 * max(len(rows), 1)
    figure, axes = new_figure(figsize=(7.5, height))
    axis = axes[0][0]
    ys = list(range(len(rows)))[::-1]
    means = [100 * r.mean for r in rows]
    errors = [
        [100 * (r.mean - r.low) for r in rows],
        [100 * (r.high - r.mean) for r in rows],
    ]
    colors = ["tab:green" if r.low > 0 else "tab:red" if r.high < 0 else "tab:blue" for r in rows]
    if not zero_line:
        colors = ["tab:blue"] * len(rows)
    for y, mean, low, high, color in zip(ys, means, *errors, colors):
        axis.errorbar(mean, y, xerr=[[low], [high]], fmt="o", color=color, capsize=4)
        axis.annotate(
            f"{mean:.1f}", (mean, y), textcoords="offset points", xytext=(0, 7), ha="center"
        )
    if zero_line:
        axis.axvline(0, color="black", linewidth=1)
    axis.set_yticks(ys, [r.name for r in rows])
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_xlabel(xlabel)
    axis.set_title(title, fontsize="medium")
    axis.grid(axis="x", alpha=0.3)
    return figure


def plot_f1_by_row(rows: Sequence[Interval], path: Path | str, confidence: float = 0.95) -> Path:
    """Each row's F1 (in %) with its bootstrap interval, as a PNG at ``path``."""
    level = f"{100 * confidence:g}%"
    figure = _interval_plot(
        rows, f"answer F1 by row ({level} bootstrap intervals)", "answer F1 (%)", False
    )
    return save_png(figure, path)


def plot_difference_to_standard(
    rows: Sequence[Interval],
    path: Path | str,
    baseline: str = "standard prompting",
    confidence: float = 0.95,
) -> Path:
    """Each row's paired F1 difference to ``baseline`` (percentage points) with its interval
    and a line at 0, as a PNG at ``path``; green: the interval is above 0, red: below."""
    level = f"{100 * confidence:g}%"
    figure = _interval_plot(
        rows,
        f"F1 minus {baseline}, paired ({level} bootstrap intervals)",
        "difference in answer F1 (percentage points)",
        True,
    )
    return save_png(figure, path)


@dataclass
class Figures:
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
