"""Intervals over replicates: how sure a sweep's numbers are.

A sweep with `replicates` N trains every grid point N times with independent seeds. Each of its numbers
(a loss, a Delta, the threshold M*) is reported as the mean over the replicates with a 95% interval. One
grid point's mean gets Student's t interval. A number computed from several points (the crossing of two
curves: `threshold_interval`) gets a bootstrap interval: each point's mean is drawn again, every point on
its own (they are independent trainings), the number is computed again from the drawn means, and the
interval is the 2.5th and 97.5th percentiles of those recomputations. The resampling is seeded: the same
runs give the same interval.

How a point's mean is drawn again (`method`):
- "student" (the default): the mean plus its standard error times a draw of Student's t with n - 1 degrees
  of freedom: for one point this is the t interval, and it keeps its coverage with few replicates.
- "percentile": the mean of the replicates drawn with replacement (the textbook bootstrap). With 3
  replicates there are only 10 distinct draws and the interval is too narrow to decide a claim with.
Measured over seeded experiments with 3 replicates of normal noise (tests/test_stats.py): a mean's interval
held the truth in 95.0% of 2000 (student) against 74% (percentile); a crossing's, in 99.5% of 200 against
83%.
"""

import math

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 20230615  # arXiv 2306.15063
METHODS = ("student", "percentile")


def percentile_interval(samples, level=LEVEL):
    """(low, high): the central `level` of `samples` (finite ones; nan, nan when none)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(values, level=LEVEL):
    """(mean, low, high): Student's t interval of the mean of `values` (nan, nan for fewer than 2)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def resampled_means(cells, method="student", resamples=RESAMPLES, seed=SEED):
    """For each cell (the values of one grid point's replicates), `resamples` draws of its mean (see the
    module docstring): a list of (resamples,) arrays, each cell from its own seeded stream. A cell of one
    replicate has no spread to draw from: its mean every time."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    means = []
    for index, values in enumerate(cells):
        values = np.asarray(values, dtype=float)
        rng = np.random.default_rng([seed, index])
        if len(values) < 2:
            means.append(np.full(resamples, values.mean()))
        elif method == "student":
            error = values.std(ddof=1) / math.sqrt(len(values))
            means.append(values.mean() + error * rng.standard_t(len(values) - 1, size=resamples))
        else:
            picks = rng.integers(0, len(values), size=(resamples, len(values)))
            means.append(values[picks].mean(axis=1))
    return means


def mean_interval(values, method="student", level=LEVEL, resamples=RESAMPLES, seed=SEED):
    """(mean, low, high) of one grid point's replicate `values` (a single value: nan, nan)."""
    if method == "student":
        return t_interval(values, level)
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else math.nan, math.nan, math.nan
    [means] = resampled_means([values], method, resamples, seed)
    return (float(values.mean()), *percentile_interval(means, level))


def threshold_interval(xs, small, large, crossing, method="student", level=LEVEL, resamples=RESAMPLES, seed=SEED):
    """(estimate, low, high, found) of a crossing between two curves over `xs`: `small` and `large` hold, per
    x, the replicate values of each curve; `crossing(xs, gaps)` gives the x where gaps = small - large first
    changes sign (nan: nowhere). The estimate is the crossing of the mean curves; the interval is that of
    the crossings of redrawn mean curves, and `found` the share of redraws with a crossing. When fewer
    than `level` of the redraws cross, whether there is a crossing at all is in doubt, and the interval is
    nan, nan: the percentiles of the few that cross would say where it is, not whether."""
    estimate = crossing(xs, [np.mean(a) - np.mean(b) for a, b in zip(small, large, strict=True)])
    means = resampled_means([*small, *large], method, resamples, seed)
    a, b = np.array(means[: len(xs)]), np.array(means[len(xs) :])  # (x, resample)
    crossings = np.array([crossing(xs, list(gaps)) for gaps in (a - b).T])
    found = float(np.isfinite(crossings).mean())
    if found < level or not math.isfinite(estimate):
        return estimate, math.nan, math.nan, found
    return estimate, *percentile_interval(crossings, level), found
