"""The numbers behind the transition-time analysis (paper Fig. 4), as plain functions of arrays."""

import numpy as np


def t_star(steps, values):
    """The evaluated step at which `values` (one metric's history) is smallest; the first such step on a tie.
    NaN values are ignored; raises ValueError when every value is NaN."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("no finite value in the history")
    return int(steps[finite][np.argmin(values[finite])])


def power_law(ms, ts):
    """(alpha, log2 c) of the least-squares line log2 t = alpha log2 M + log2 c through the points (M, t);
    needs two distinct finite M."""
    x, y = np.log2(np.asarray(ms, dtype=float)), np.log2(np.asarray(ts, dtype=float))
    if len(set(x)) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"a power law needs two distinct finite M with positive t, got M={list(ms)}, t={list(ts)}")
    alpha, intercept = np.polyfit(x, y, 1)
    return float(alpha), float(intercept)


def u_shaped(steps, values):
    """Whether the history has its minimum inside, clear of both ends: the transformer first came closer to
    ridge, then moved away again (the paper's U below the threshold). The first and last values must both
    exceed the minimum by 1% of it, so that float noise on a flat end is no U, and a minimum at the first
    evaluation (t* not resolved by the evaluations) or at the last (still approaching) is none either."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) < 3:
        return False
    lowest = finite.min()
    return bool(finite[0] > 1.01 * lowest and finite[-1] > 1.01 * lowest)
