"""Intervals over replicates (pipeline/stats.py) against cases with known answers."""

import math

import numpy as np
import pytest

from pipeline.stats import METHODS, mean_interval, percentile_interval, resampled_means, t_interval, threshold_interval
from pipeline.sweep.summary import first_sign_change


def test_both_intervals_of_a_mean_are_the_normal_one_for_many_replicates():
    """400 draws of N(0, 1): the mean's 95% interval is mean +- 1.96 / 20 (to the bootstrap's error)."""
    values = np.random.default_rng(0).standard_normal(400)
    half = 1.96 * values.std(ddof=1) / 20
    for method in METHODS:
        mean, low, high = mean_interval(values, method)
        assert mean == pytest.approx(values.mean())
        assert (low, high) == pytest.approx((mean - half, mean + half), abs=0.1 * half), method


def test_with_three_replicates_the_student_interval_covers_and_the_percentile_one_does_not():
    """The reason the claims use method="student": 2000 experiments of 3 draws of N(0, 1), how often each
    95% interval holds the true mean 0."""
    rng = np.random.default_rng(1)
    covered = {method: 0 for method in METHODS}
    for trial in range(2000):
        values = rng.standard_normal(3)
        for method in METHODS:
            _, low, high = mean_interval(values, method, resamples=500, seed=trial)
            covered[method] += low <= 0 <= high
    assert 0.93 <= covered["student"] / 2000 <= 0.97
    assert covered["percentile"] / 2000 < 0.85


def test_students_interval_of_three_values_is_the_textbook_one():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def test_equal_replicates_give_no_width_and_a_single_one_no_interval():
    assert mean_interval([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    assert t_interval([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    mean, low, high = mean_interval([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in percentile_interval([math.nan, math.inf]))


def test_the_redraws_are_seeded():
    values = np.random.default_rng(2).standard_normal(50)
    for method in METHODS:
        assert np.array_equal(resampled_means([values], method)[0], resampled_means([values], method)[0])
        assert not np.array_equal(resampled_means([values], method, seed=1)[0], resampled_means([values], method)[0])


def noisy_lines(xs, crossing, replicates, noise, seed):
    """Two curves over xs whose means cross at `crossing`: small = 1 - x / crossing, large = 0, each with
    `replicates` values per x of N(0, noise^2) noise."""
    rng = np.random.default_rng(seed)
    small = [1 - x / crossing + noise * rng.standard_normal(replicates) for x in xs]
    large = [noise * rng.standard_normal(replicates) for _ in xs]
    return small, large


def test_the_crossing_interval_covers_the_true_crossing_and_narrows_with_replicates():
    """Two noisy lines crossing at x = 4: over 200 experiments of 3 replicates the interval holds 4 at least
    90% of the time; with 30 replicates it is narrower by about sqrt(10)."""
    xs = list(range(9))
    covered, widths = 0, {3: [], 30: []}
    for trial in range(200):
        small, large = noisy_lines(xs, 4.0, 3, 0.1, seed=trial)
        estimate, low, high, found = threshold_interval(xs, small, large, first_sign_change, resamples=2000)
        covered += low <= 4.0 <= high
        widths[3].append(high - low)
    assert covered >= 180
    for trial in range(20):
        small, large = noisy_lines(xs, 4.0, 30, 0.1, seed=1000 + trial)
        estimate, low, high, found = threshold_interval(xs, small, large, first_sign_change, resamples=2000)
        assert low <= estimate <= high and found == 1.0
        widths[30].append(high - low)
    assert np.median(widths[30]) < np.median(widths[3]) / 2.5


def test_no_crossing_is_nan_with_the_share_of_resamples_that_found_one():
    xs = list(range(5))
    small = [np.full(3, 1.0) for _ in xs]
    large = [np.zeros(3) for _ in xs]
    estimate, low, high, found = threshold_interval(xs, small, large, first_sign_change)
    assert math.isnan(estimate) and math.isnan(low) and math.isnan(high) and found == 0.0
    # Mean curves that do not cross, but some redraws do: still no interval (not the few crossings' spread).
    small, large = noisy_lines(xs, 6.0, 3, 0.1, seed=5)  # crossing at 6, beyond the grid's 4
    estimate, low, high, found = threshold_interval(xs, small, large, first_sign_change)
    assert math.isnan(estimate) and 0 < found < 0.95 and math.isnan(low) and math.isnan(high)
