"""Intervals over replicates (pipeline/stats.py) against cases with known answers."""

import math

import numpy as np
import pytest

from pipeline.stats import (
    METHODS,
    bootstrap_means,
    mean_interval,
    percentile_interval,
    redrawn_curves,
    t_interval,
    threshold_interval,
)
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
    values = np.random.default_rng(2).standard_normal((5, 4))
    for redraw in (bootstrap_means, redrawn_curves):
        assert np.array_equal(redraw(values), redraw(values))
        assert not np.array_equal(redraw(values, seed=1), redraw(values))


def noisy_gaps(xs, crossing, replicates, noise, seed, shared=0.0):
    """Replicates' gap curves over xs whose mean crosses 0 at `crossing`: 1 - x / crossing plus N(0, noise^2)
    noise per point and, with `shared`, N(0, shared^2) per replicate added at every point (a replicate that
    is high at one x is high at all: its seeds are the same at every M)."""
    rng = np.random.default_rng(seed)
    line = 1 - np.asarray(xs, dtype=float) / crossing
    own = noise * rng.standard_normal((replicates, len(xs)))
    return line + own + shared * rng.standard_normal((replicates, 1))


def test_a_redrawn_mean_curve_is_students_at_each_point():
    """At each point the redraws spread like the mean's t distribution: their 2.5 and 97.5 percentiles are
    Student's 95% interval of that point's replicates."""
    curves = noisy_gaps(range(4), 2.0, 3, 0.3, seed=4)
    redrawn = redrawn_curves(curves, resamples=200_000)
    for x in range(4):
        _, low, high = t_interval(curves[:, x])
        assert np.percentile(redrawn[:, x], [2.5, 97.5]) == pytest.approx([low, high], rel=0.02, abs=0.01)


@pytest.mark.parametrize("shared", [0.0, 0.1])
def test_the_crossing_interval_covers_the_true_crossing_and_narrows_with_replicates(shared):
    """Gap curves crossing at x = 4, with noise of their own per point and, or not, shared along a
    replicate: over 200 experiments of 3 replicates the interval holds 4 at least 90% of the time (it is
    built to be 95%); with 30 replicates it is narrower by more than 2.5."""
    xs = list(range(9))
    covered, widths = 0, {3: [], 30: []}
    for trial in range(200):
        curves = noisy_gaps(xs, 4.0, 3, 0.1, seed=trial, shared=shared)
        estimate, low, high, found = threshold_interval(xs, curves, first_sign_change, resamples=2000)
        covered += low <= 4.0 <= high
        widths[3].append(high - low)
    assert covered >= 180
    for trial in range(20):
        curves = noisy_gaps(xs, 4.0, 30, 0.1, seed=1000 + trial, shared=shared)
        estimate, low, high, found = threshold_interval(xs, curves, first_sign_change, resamples=2000)
        assert low <= estimate <= high and found == 1.0
        widths[30].append(high - low)
    assert np.median(widths[30]) < np.median(widths[3]) / 2.5


def test_a_crossing_in_doubt_gets_no_interval():
    xs = list(range(5))
    estimate, low, high, found = threshold_interval(xs, np.ones((3, 5)), first_sign_change)
    assert math.isnan(estimate) and math.isnan(low) and math.isnan(high) and found == 0.0
    # Mean curves that do not cross, but some redraws do: no interval (not the few crossings' spread) ...
    estimate, low, high, found = threshold_interval(xs, noisy_gaps(xs, 6.0, 3, 0.1, seed=5), first_sign_change)
    assert math.isnan(estimate) and 0 < found < 0.95 and math.isnan(low) and math.isnan(high)
    # ... nor when the mean curve crosses but too few redraws do.
    curves = noisy_gaps(xs, 3.8, 3, 0.1, seed=1)  # the mean crosses at 2^3.86, near the grid's end at 4
    estimate, low, high, found = threshold_interval(xs, curves, first_sign_change)
    assert math.isfinite(estimate) and found < 0.95 and math.isnan(low) and math.isnan(high)
