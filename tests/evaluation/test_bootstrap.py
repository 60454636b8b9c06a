"""Paired bootstrap intervals on synthetic scores whose difference is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_guided_cot.evaluation.bootstrap import paired_bootstrap


def _pair_with_gain(n: int = 400, flipped: int = 40, seed: int = 1):
    """Scores ``a`` and ``b`` equal except ``flipped`` questions ``a`` gets right and ``b``
    wrong: the true mean difference is exactly flipped / n."""
    rng = np.random.default_rng(seed)
    b = (rng.random(n) < 0.5).astype(float)
    wrong = np.flatnonzero(b == 0)[:flipped]
    a = b.copy()
    a[wrong] = 1.0
    return a, b


def test_known_difference_is_inside_and_zero_outside():
    a, b = _pair_with_gain()
    result = paired_bootstrap(a, b, resamples=20_000, seed=0)
    assert result.mean == pytest.approx(0.1)
    assert result.low < 0.1 < result.high
    assert result.significant and result.p_value < 0.001
    # per-question differences are 0/1 with p = 0.1: the normal interval is 0.1 +- 1.96 * se
    se = math.sqrt(0.1 * 0.9 / 400)
    assert result.low == pytest.approx(0.1 - 1.96 * se, abs=0.006)
    assert result.high == pytest.approx(0.1 + 1.96 * se, abs=0.006)


def test_pairing_removes_the_noise_shared_by_both_settings():
    # Both settings share the hard and easy questions; only pairing sees a 0.1 gain as sure.
    a, b = _pair_with_gain(n=200, flipped=20)
    paired = paired_bootstrap(a, b, seed=0)
    assert paired.low > 0
    unpaired_se = math.sqrt(a.var() / 200 + b.var() / 200)
    assert (paired.high - paired.low) < 2 * 1.96 * unpaired_se / 2


def test_no_difference():
    a, _ = _pair_with_gain()
    same = paired_bootstrap(a, a, seed=0)
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not same.significant
    # a noisy difference with mean zero: the interval straddles zero
    rng = np.random.default_rng(3)
    x = rng.random(300)
    y = x.copy()
    swap = rng.permutation(300)[:100]
    y[swap] = rng.random(100)
    y = y - (y.mean() - x.mean())
    noisy = paired_bootstrap(x, y, seed=0)
    assert noisy.low < 0 < noisy.high and noisy.p_value > 0.5


def test_swapping_the_settings_negates_and_the_seed_repeats():
    a, b = _pair_with_gain()
    forward = paired_bootstrap(a, b, seed=7)
    backward = paired_bootstrap(b, a, seed=7)
    assert backward.mean == pytest.approx(-forward.mean)
    assert backward.low == pytest.approx(-forward.high)
    assert backward.high == pytest.approx(-forward.low)
    assert paired_bootstrap(a, b, seed=7) == forward


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [0.0], confidence=95)


def test_bootstrap_mean_of_one_setting_matches_the_normal_interval():
    from lm_guided_cot.evaluation.bootstrap import bootstrap_mean

    scores = (np.arange(400) % 10 < 3).astype(float)  # 0/1 scores with mean 0.3
    result = bootstrap_mean(scores, resamples=20_000, seed=0)
    se = math.sqrt(0.3 * 0.7 / 400)
    assert result.mean == pytest.approx(0.3)
    assert result.low == pytest.approx(0.3 - 1.96 * se, abs=0.006)
    assert result.high == pytest.approx(0.3 + 1.96 * se, abs=0.006)
