"""The sweep's summary: one row per grid point, Fig. 2-style plots and the threshold estimate per group.

Rows hold the point's axis values, loss/D (noiseless targets) on T_Pretrain and T_True for the
transformer (pt), dMMSE and ridge, and Delta_{PT,dMMSE}, Delta_{PT,Ridge}, Delta_{dMMSE,Ridge} on both.
At M = inf the two distributions coincide (every task is fresh), so the T_True numbers fill both and
dMMSE is absent (it tends to ridge).

Threshold M*, per group (all axes but M, the data scale and the replicate fixed): with two or more data
scales, where the Delta^{T_True}_{PT,Ridge} curves of the smallest and largest cross (the paper's rule);
with one, where the transformer becomes closer to ridge than to dMMSE on T_True. Both are where a gap
curve changes sign (positive on dMMSE's side: the larger scale's Delta minus the smaller's, or
Delta_PT,Ridge - Delta_PT,dMMSE), interpolated linearly in log2 M between grid points, on the mean of the
replicates' gap curves (each replicate's from its own trainings), with a 95% bootstrap interval over the
replicates (pipeline/stats.py) when there are several: none when fewer than 95% of the redraws cross;
(grid end, inf) or (-inf, grid start) when at most 5% cross and M* lies beyond the grid on that side.

With replicates, `aggregate` gives one row per grid point: the mean of each number over its replicates,
with its 95% interval as `<key>:low` and `<key>:high`, and `replicates`.
"""

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.presets import REPLICATE
from pipeline.stats import LEVEL, t_interval, threshold_interval
from pipeline.sweep.grid import DATA_SCALE, axis_text
from pipeline.types import as_text

LOSSES = [f"{dist}/{name}/loss_noiseless" for dist in ("pretrain", "true") for name in ("pt", "dmmse", "ridge")]
DELTAS = [f"{dist}/delta_{pair}" for dist in ("pretrain", "true") for pair in ("pt_dmmse", "pt_ridge", "dmmse_ridge")]
RUNS = ["generate_pool_run", "evaluate_baselines_run", "train_run"]
CLOSER_TO_RIDGE = "PT closer to ridge than to dMMSE on T_True"


def columns(axes):
    """The table's columns for a sweep over `axes` (n_tasks first)."""
    return ["n_tasks", "log2_n_tasks", *axes[1:], *LOSSES, *DELTAS, *RUNS]


def summary_row(values, axes, baseline_metrics, train_metrics, runs=None):
    """One row from a point's `values` on `axes` and the final metrics of its evaluate_baselines and train
    runs; `runs` maps each stage to the id of the run that made it (reused runs belong to older sweeps)."""
    n_tasks = values["n_tasks"]
    metrics = baseline_metrics | train_metrics
    if n_tasks == math.inf:  # T_Pretrain is T_True: every sequence has a fresh task
        metrics |= {key.replace("true/", "pretrain/", 1): value for key, value in metrics.items()}
    row = {"n_tasks": "inf" if n_tasks == math.inf else n_tasks, "log2_n_tasks": math.log2(n_tasks)}
    row |= {axis: values[axis] for axis in axes[1:]}
    row |= {f"{stage}_run": run_id for stage, run_id in (runs or {}).items()}
    return row | {key: metrics.get(key, math.nan) for key in LOSSES + DELTAS}


def group_axes(axes):
    return [axis for axis in axes[1:] if axis not in DATA_SCALE and axis != REPLICATE]


def point_axes(axes):
    """The axes that tell grid points apart (every axis but the replicate)."""
    return [axis for axis in axes if axis != REPLICATE]


def aggregate(rows, axes):
    """One row per grid point: its axis values, `replicates`, and per number the mean over its replicates
    with the 95% t interval (`<key>:low`, `<key>:high`; nan for one replicate)."""
    points = {}
    for row in rows:
        points.setdefault(tuple(row[axis] for axis in point_axes(axes)), []).append(row)
    means = []
    for members in points.values():
        mean = {key: members[0][key] for key in ("n_tasks", "log2_n_tasks", *point_axes(axes)[1:])}
        mean["replicates"] = len(members)
        for key in LOSSES + DELTAS:
            values = [row[key] for row in members if math.isfinite(row[key])]
            mean[key], mean[f"{key}:low"], mean[f"{key}:high"] = t_interval(values) if values else (math.nan,) * 3
        means.append(mean)
    return means


def group_key(group):
    """A group as part of a metric key: '' for the only group, else /weight_decay_0.001_n_embd_64 (MLflow
    refuses '=' in keys)."""
    return "/" + "_".join(f"{axis}_{as_text(value)}" for axis, value in group) if group else ""


def group_label(group):
    """'' for the only group, else weight_decay=0.001, n_embd=64."""
    return ", ".join(axis_text(axis, value) for axis, value in group)


def groups(rows, axes):
    """[(group, rows)] in order of first appearance; a group is ((axis, value), ...) of group_axes."""
    found = {}
    for row in rows:
        found.setdefault(tuple((axis, row[axis]) for axis in group_axes(axes)), []).append(row)
    return list(found.items())


def curve_label(row, axes):
    """The row's values on every axis but M: one curve of the sweep figure (B512, weight_decay=0.001)."""
    return ", ".join(axis_text(axis, row[axis]) for axis in axes[1:])


def scale_label(row, axes):
    return "-".join(axis_text(axis, row[axis]) for axis in axes[1:] if axis in DATA_SCALE)


def data_seen(row):
    """Sequences a training saw: orders the data scales of a group."""
    return row.get("batch_size", 1) * row.get("total_steps", 1)


class Threshold(NamedTuple):
    """A group's threshold: log2 M* (nan where the grid shows no crossing), the rule that found it, what the
    grid shows in words, the 95% interval over replicates (nan, nan with one replicate, or when the
    crossing itself is in doubt) and the share of redraws of the replicates' means that cross."""

    group: tuple
    log2_m: float
    rule: str
    finding: str
    low: float = math.nan
    high: float = math.nan
    share: float = math.nan


def thresholds(rows, axes):
    """[Threshold] per group of `rows` (one per training, replicates included)."""
    return [Threshold(group, *threshold(members, axes)) for group, members in groups(rows, axes)]


def threshold(rows, axes):
    """(log2 M*, rule, finding, low, high, share) of one group's rows."""
    finite = sorted((r for r in rows if math.isfinite(r["log2_n_tasks"])), key=lambda r: r["log2_n_tasks"])
    scales = list(dict.fromkeys(scale_label(r, axes) for r in sorted(rows, key=data_seen)))

    def values(key, scale=None):
        """{(replicate, log2 M): row[key]} of the rows at `scale` (None: all)."""
        chosen = (r for r in finite if scale is None or scale_label(r, axes) == scale)
        return {(r.get(REPLICATE, 0), r["log2_n_tasks"]): key(r) for r in chosen}

    if len(scales) >= 2:
        small, large = scales[0], scales[-1]
        a, b = (values(lambda r: r["true/delta_pt_ridge"], scale) for scale in (small, large))
        gap = {point: b[point] - a[point] for point in set(a) & set(b)}  # paired: one replicate's own trainings
        rule = f"crossing of Delta^True_PT,Ridge for {small} and {large}"
        sides = (f"{large} is closer to ridge than {small}", f"{small} is closer to ridge than {large}")
    else:
        gap = values(lambda r: r["true/delta_pt_ridge"] - r["true/delta_pt_dmmse"])  # each training's own gap
        rule = CLOSER_TO_RIDGE
        sides = ("the transformer is closer to ridge than to dMMSE", "the transformer is closer to dMMSE than to ridge")
    xs = sorted({x for _, x in gap})
    replicates = sorted({r for r, _ in gap})
    curves = np.array([[gap.get((r, x), math.nan) for x in xs] for r in replicates]).reshape(len(replicates), len(xs))
    gaps = [float(np.mean(c[np.isfinite(c)])) if np.isfinite(c).any() else math.nan for c in curves.T]
    if len(replicates) >= 2:
        log2_m, low, high, share = threshold_interval(xs, curves, first_sign_change)
        signs = {np.sign(g) for g in gaps if math.isfinite(g)}
        if share <= 1 - LEVEL and len(signs) == 1:  # (almost) no redraw crosses: M* lies beyond the grid
            low, high = (xs[-1], math.inf) if signs == {1.0} else (-math.inf, xs[0])
    else:
        log2_m, low, high, share = first_sign_change(xs, gaps), math.nan, math.nan, math.nan
    return log2_m, rule, _finding(log2_m, xs, gaps, sides, (low, high, share, len(replicates))), low, high, share


def _finding(log2_m, xs, gaps, sides, interval):
    """What the grid shows, in words: the threshold (with its interval), or on which side of it every grid
    point lies."""
    low, high, share, replicates = interval
    if math.isfinite(log2_m):
        if replicates < 2:
            return f"M* ~ 2^{log2_m:.2f}"
        if not math.isfinite(low):
            doubt = f"a crossing in only {share:.0%} of redraws over {replicates} replicates"
            return f"M* ~ 2^{log2_m:.2f} ({doubt}: no interval)"
        found = "" if share >= 0.975 else f"; a crossing in {share:.0%} of redraws"
        return f"M* ~ 2^{log2_m:.2f} (95% interval 2^{low:.2f} to 2^{high:.2f} over {replicates} replicates{found})"
    signs = {np.sign(g) for g in gaps if math.isfinite(g)}  # no 0 among them: a zero is a threshold
    if not signs:
        return "no threshold inside the grid (no finite point to compare)"
    side = sides[0] if signs == {-1.0} else sides[1]
    every = f", in {1 - share:.0%} of redraws over {replicates} replicates" if share <= 1 - LEVEL else ""
    return f"no threshold inside the grid: {side} on T_True at every finite M (2^{xs[0]:g} ... 2^{xs[-1]:g}){every}"


def first_sign_change(xs, ys):
    """The x where ys first changes sign, interpolated linearly between grid points (nan: nowhere)."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]  # a failed metric is no crossing
    xs, ys = [x for x, _ in points], [y for _, y in points]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if y0 == 0:
            return x0
        if np.sign(y0) != np.sign(y1) and y1 != 0:
            return x0 + (x1 - x0) * y0 / (y0 - y1)
    return xs[-1] if ys and ys[-1] == 0 else math.nan


def summary_table(rows, axes):
    """Columns -> lists, the shape `mlflow.log_table` takes (inf as text)."""
    return {column: [_table_cell(row.get(column, "")) for row in rows] for column in columns(axes)}


def setting_text(settings):
    """The setting of a sweep's `settings` ({option: [values]}) in one line, for its figure: D, K, sigma^2,
    the model, the training, the replicates (an axis's values joined by /)."""

    def value(name):
        return "/".join(as_text(v) for v in settings[name])

    noise = "/".join(f"{v**2:g}" for v in settings["noise_scale"])
    model = f"{value('n_layer')} layers, width {value('n_embd')}, {value('n_head')} heads"
    return (
        f"D = {value('n_dims')}, K = {value('n_points')}, sigma^2 = {noise}; {model}; {value('total_steps')} steps "
        f"of batch {value('batch_size')}, lr {value('lr')}, weight decay {value('weight_decay')}; "
        f"{value('replicates')} replicate(s)"
    )


def means_table(means, axes):
    """The `aggregate` rows as columns -> lists: each number's mean with its interval."""
    keys = [f"{key}{part}" for key in LOSSES + DELTAS for part in ("", ":low", ":high")]
    names = ["n_tasks", "log2_n_tasks", *axes[1:], "replicates", *keys]
    return {name: [_table_cell(row[name]) for row in means] for name in names}


def summary_csv(rows, axes):
    lines = [",".join(columns(axes))]
    for row in rows:
        lines.append(",".join(_cell(row.get(column, "")) for column in columns(axes)))
    return "\n".join(lines) + "\n"


def _table_cell(value):
    return "inf" if isinstance(value, float) and value == math.inf else value


def _cell(value):
    if isinstance(value, float):
        return "inf" if value == math.inf else f"{value:.6g}"
    return str(value)


# The terminal's summary table: (header, row key).
TEXT_COLUMNS = [
    ("PT loss/D Pre", "pretrain/pt/loss_noiseless"),
    ("PT loss/D True", "true/pt/loss_noiseless"),
    ("dMMSE True", "true/dmmse/loss_noiseless"),
    ("ridge True", "true/ridge/loss_noiseless"),
    ("D_PT,dMMSE Pre", "pretrain/delta_pt_dmmse"),
    ("D_PT,dMMSE True", "true/delta_pt_dmmse"),
    ("D_PT,Ridge Pre", "pretrain/delta_pt_ridge"),
    ("D_PT,Ridge True", "true/delta_pt_ridge"),
]


def summary_text(rows, axes):
    """The summary as an aligned text table (the main numbers; the CSV artifact holds every column)."""
    table = pd.DataFrame(
        {"M": [str(r["n_tasks"]) for r in rows]}
        | {axis: [str(_table_cell(r[axis])) for r in rows] for axis in axes[1:]}
        | {header: [r[key] for r in rows] for header, key in TEXT_COLUMNS}
    )
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")
