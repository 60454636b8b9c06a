"""The compare step of ``lmcot evaluate``: the paired bootstrap comparisons of the rows and the
intervals the figures show, computed from the rows before any file is written."""

from __future__ import annotations

from collections.abc import Sequence

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.evaluation.bootstrap import paired_bootstrap
from lm_guided_cot.evaluation.check import EvaluationPlan
from lm_guided_cot.evaluation.figures import (
    DIFFERENCE_TO_STANDARD,
    Figures,
    differences_to,
    f1_intervals,
)
from lm_guided_cot.evaluation.results import SettingResult
from lm_guided_cot.evaluation.table import Comparison


def compare(
    plan: EvaluationPlan, results: Sequence[SettingResult]
) -> tuple[list[Comparison], Figures]:
    """Each configured pair (default: every row against the baseline, the first row unless
    named) in EM and F1, and the figures' intervals."""
    o = plan.options
    pairs = o.comparisons or [[r.name, o.baseline or results[0].name] for r in results]
    resampling = (o.bootstrap_resamples, o.confidence, o.seed)
    compared = paired_comparisons(results, pairs, *resampling)
    standard = plan.names["standard"]
    figures = Figures(
        f1_intervals(results, *resampling), o.confidence, standard if o.standard else None
    )
    if o.standard and len(results) > 1:
        figures.differences = differences_to(standard, results, compared, *resampling)
    else:
        why = "no standard prompting row" if not o.standard else "no row besides standard prompting"
        plan.console.log(f"[yellow]figures: {why}, so no {DIFFERENCE_TO_STANDARD}")
    return compared, figures


def paired_comparisons(
    results: Sequence[SettingResult],
    pairs: Sequence[Sequence[str]],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[Comparison]:
    """The paired bootstrap of each ``[setting, baseline]`` pair, in EM then F1."""
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
