"""The numbers the claims decide on, each computed from one replicate's summary rows (and the Context:
pipeline/claims/criteria.py), below 0 when the claim holds (about 0 for a `Within` criterion)."""

import math

import numpy as np

from pipeline.analysis.fits import power_law
from pipeline.analysis.lmc import barrier
from pipeline.sweep.summary import data_seen

TRANSITION, PATHS, LMC = "transition_time/t_star.json", "interpolation/interpolation.json", "lmc/lmc.json"
SMOOTHING, LAPLACE = "smoothing/smoothing.json", "laplace/laplace.json"


def at(rows, key, pick, scale=max):
    """`key` at the finite M that `pick` (min, max) chooses among one replicate's `rows`, on the data scale
    that `scale` chooses there (max: the longest-trained curve). The rows may differ on no other axis."""
    finite = [r for r in rows if math.isfinite(r["log2_n_tasks"])]
    chosen = [r for r in finite if r["log2_n_tasks"] == pick(r["log2_n_tasks"] for r in finite)]
    if len({data_seen(r) for r in chosen}) < len(chosen):
        raise ValueError("the claim reads one curve per data scale; the sweep has other axes too")
    return scale(chosen, key=data_seen)[key]


def more_data_nearer_dmmse_at_smallest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", min, min) - at(rows, "true/delta_pt_ridge", min, max)


def more_data_nearer_ridge_at_largest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", max, max) - at(rows, "true/delta_pt_ridge", max, min)


def pt_on_dmmse_at_smallest_m(rows, _):
    return at(rows, "pretrain/delta_pt_dmmse", min) - at(rows, "pretrain/delta_pt_ridge", min) / 10


def pt_nearer_ridge_at_largest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", max) - at(rows, "true/delta_pt_dmmse", max)


def largest_m_against_inf(rows, _):
    """The transformer's T_True loss/D at the largest finite M relative to its loss at M = inf, minus 1."""
    infinite = max((r for r in rows if r["log2_n_tasks"] == math.inf), key=data_seen)
    return at(rows, "true/pt/loss_noiseless", max) / infinite["true/pt/loss_noiseless"] - 1


def inf_against_ridge(rows, _):
    """The M = inf transformer's T_True loss/D relative to ridge's on the same sequences, minus 1."""
    [infinite] = [r for r in rows if r["log2_n_tasks"] == math.inf]
    return infinite["true/pt/loss_noiseless"] / infinite["true/ridge/loss_noiseless"] - 1


def _finite(table, **equal):
    """The rows of an analysis table at finite M whose columns equal `equal`."""
    return [r for r in table if math.isfinite(r["n_tasks"]) and all(r[k] == v for k, v in equal.items())]


def _nearest_threshold(ms, context):
    """The M of `ms` nearest M* on log axes (nan where the sweep has no threshold)."""
    star = context.threshold()
    if not math.isfinite(star):
        return math.nan
    return min(ms, key=lambda m: abs(math.log2(m) - math.log2(star)))


def t_star_exponent(rows, context):
    """-alpha of the least-squares t* ~ M^alpha over the finite M below M* (all finite M where the sweep has no
    threshold) whose T_True Delta_PT,Ridge curve is U-shaped (pipeline/analysis/transition.py); nan with
    fewer than two such M."""
    star = context.threshold()
    below = [r for r in _finite(context.table, dist="true") if r["u_shaped"] and not r["n_tasks"] >= star]
    if len({r["n_tasks"] for r in below}) < 2:
        return math.nan
    return -power_law([r["n_tasks"] for r in below], [r["t_star"] for r in below])[0]


def _paths(context):
    """{M: {alpha: row}} of the interpolation table (pipeline/analysis/interpolation.py), one curve."""
    found = {}
    for row in _finite(context.table):
        if row["alpha"] in found.setdefault(row["n_tasks"], {}):
            raise ValueError("the claim reads one interpolation curve per M; the sweep has other axes too")
        found[row["n_tasks"]][row["alpha"]] = row
    return found


def _centre(path):
    """The row at the alpha nearest 1/2 of one path {alpha: row}."""
    return path[min(path, key=lambda a: abs(a - 0.5))]


def dmmse_bump_at_every_m(rows, context):
    """-(the smallest over M of dMMSE's loss/D at alpha = 1/2 minus the mean of its two ends)."""
    bumps = []
    for path in _paths(context).values():
        ends = (path[min(path)]["dmmse"] + path[max(path)]["dmmse"]) / 2
        bumps.append(_centre(path)["dmmse"] - ends)
    return -min(bumps)


def pt_bumps_at_smallest_m(rows, context):
    """Ridge's loss/D minus the transformer's at alpha = 1/2, at the smallest M."""
    paths = _paths(context)
    centre = _centre(paths[min(paths)])
    return centre["ridge"] - centre["pt"]


def pt_beats_dmmse_near_threshold(rows, context):
    """The transformer's loss/D over dMMSE's at alpha = 1/2, minus 1, at the M nearest M*."""
    paths = _paths(context)
    m = _nearest_threshold(paths, context)
    if not math.isfinite(m):
        return math.nan
    centre = _centre(paths[m])
    return centre["pt"] / centre["dmmse"] - 1


def pt_at_ridge_at_largest_m(rows, context):
    """The transformer's loss/D over ridge's at alpha = 1/2, minus 1, at the largest M."""
    paths = _paths(context)
    centre = _centre(paths[max(paths)])
    return centre["pt"] / centre["ridge"] - 1


def barrier_largest_against_smallest_m(rows, context):
    """The T_True loss barrier between PT(M) and PT(inf) (pipeline/analysis/lmc.py) at the largest finite M
    minus at the smallest, each the mean over the replicate's curves (e.g. data seeds)."""
    barriers = {}
    for pair in dict.fromkeys(r["pair"] for r in _finite(context.table)):
        path = sorted((r["t"], r["true"], r["n_tasks"]) for r in context.table if r["pair"] == pair)
        ts, losses = np.array([t for t, _, _ in path]), np.array([loss for _, loss, _ in path])
        barriers.setdefault(path[0][2], []).append(barrier(ts, losses))
    means = {m: sum(values) / len(values) for m, values in barriers.items()}
    return means[max(means)] - means[min(means)]


def pt_against_smoothed_near_threshold(rows, context):
    """The transformer's T_True loss/D over smoothed dMMSE's (its best s; pipeline/analysis/smoothing.py),
    minus 1, at the finite M nearest M*."""
    table = {r["n_tasks"]: r for r in _finite(context.table)}
    if len(table) < len(_finite(context.table)):
        raise ValueError("the claim reads one smoothing curve per M; the sweep has other axes too")
    m = _nearest_threshold(table, context)
    return table[m]["pt"] / table[m]["smoothed_dmmse"] - 1 if math.isfinite(m) else math.nan


def decay_costs_true_loss(rows, _):
    """The transformer's T_True loss/D at the smallest weight decay over its loss at the largest, minus 1, at
    the largest M (M = inf where the sweep has it)."""
    top = [r for r in rows if r["log2_n_tasks"] == max(r["log2_n_tasks"] for r in rows)]
    by_decay = {r["weight_decay"]: r["true/pt/loss_noiseless"] for r in top}
    if len(by_decay) < len(top):
        raise ValueError("the claim reads one curve per weight_decay; the sweep has other axes too")
    return by_decay[min(by_decay)] / by_decay[max(by_decay)] - 1


def nearer_laplace_than_ridge(rows, context):
    """Delta^True_PT,Laplace minus Delta^True_PT,Ridge (pipeline/analysis/laplace.py) at the largest M."""
    top = [r for r in context.table if r["n_tasks"] == max(r["n_tasks"] for r in context.table)]
    if len(top) != 1:
        raise ValueError("the claim reads one Laplace curve; the sweep has other axes too")
    return top[0]["true/delta_pt_laplace"] - top[0]["true/delta_pt_ridge"]
