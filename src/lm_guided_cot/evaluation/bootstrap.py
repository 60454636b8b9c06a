"""Paired bootstrap confidence intervals for the difference between two settings.

Both settings answered the same questions, so the per-question differences are resampled
together (Koehn 2004; Berg-Kirkpatrick et al. 2012): the interval reflects which questions
happened to be drawn, which is the noise that decides whether a gain on a few hundred
questions is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the questions, its bootstrap percentile interval, and a p-value.

    ``p_value`` is two-sided: twice the share of resamples on the other side of zero from
    the observed mean (capped at 1). It says how often the sign of the gain flips when the
    questions are redrawn.
    """

    mean: float
    low: float
    high: float
    p_value: float
    n: int
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Bootstrap interval of ``mean(a) - mean(b)`` for per-question scores of two settings."""
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diffs.ndim != 1 or len(a) != len(b):
        raise ValueError(f"paired scores must have the same length ({len(a)} vs {len(b)})")
    if diffs.size == 0:
        raise ValueError("paired_bootstrap needs at least one question")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    n = diffs.size
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // n)  # bounds memory to ~16 MB of indices per chunk
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        means[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    observed = float(diffs.mean())
    if observed == 0:
        p_value = 1.0
    else:
        flipped = np.mean(means <= 0) if observed > 0 else np.mean(means >= 0)
        p_value = min(1.0, 2 * float(flipped))
    return PairedDifference(observed, float(low), float(high), p_value, n, confidence)


def bootstrap_mean(
    scores: Sequence[float],
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Bootstrap interval of ``mean(scores)`` for one setting's per-question scores: the paired
    bootstrap against a setting that scores 0 everywhere (same resamples, same percentiles).
    Its ``p_value`` only says how often a resample's mean is 0 or less."""
    return paired_bootstrap(scores, [0.0] * len(scores), resamples, confidence, seed)
