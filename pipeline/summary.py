"""The sweep's summary: one row per (M, data scale), Fig. 2-style plots and the threshold estimate.

Rows hold loss/D (noiseless targets) on T_Pretrain and T_True for the transformer (pt), dMMSE and
ridge, and Delta_{PT,dMMSE}, Delta_{PT,Ridge}, Delta_{dMMSE,Ridge} on both. At M = inf the two
distributions coincide (every task is fresh), so the T_True numbers fill both and dMMSE is absent
(it tends to ridge).

Threshold M*: with two data scales, where their Delta^{T_True}_{PT,Ridge} curves cross (the paper's
rule); with one, where the transformer becomes closer to ridge than to dMMSE on T_True. Both are
interpolated linearly in log2 M between grid points.
"""

import math

import numpy as np

LOSSES = [f"{dist}/{name}/loss_noiseless" for dist in ("pretrain", "true") for name in ("pt", "dmmse", "ridge")]
DELTAS = [f"{dist}/delta_{pair}" for dist in ("pretrain", "true") for pair in ("pt_dmmse", "pt_ridge", "dmmse_ridge")]
RUNS = ["generate_pool_run", "evaluate_baselines_run", "train_run"]
COLUMNS = ["n_tasks", "log2_n_tasks", "scale", *LOSSES, *DELTAS, *RUNS]


def summary_row(n_tasks, scale, baseline_metrics, train_metrics, runs=None):
    """One row from the final metrics of an evaluate_baselines run and of its train run; `runs` maps
    each stage to the id of the run that made it (a rerun's reused runs belong to an older sweep)."""
    metrics = baseline_metrics | train_metrics
    if n_tasks == math.inf:  # T_Pretrain is T_True: every sequence has a fresh task
        metrics |= {key.replace("true/", "pretrain/", 1): value for key, value in metrics.items()}
    row = {
        "n_tasks": "inf" if n_tasks == math.inf else n_tasks,
        "scale": scale,
        "log2_n_tasks": math.inf if n_tasks == math.inf else math.log2(n_tasks),
    }
    row |= {f"{stage}_run": run_id for stage, run_id in (runs or {}).items()}
    return row | {key: metrics.get(key, math.nan) for key in LOSSES + DELTAS}


def threshold(rows):
    """(log2 M*, rule) from the rows, or (nan, rule) when the grid shows no crossing."""
    scales = sorted({row["scale"] for row in rows})
    finite = sorted((r for r in rows if math.isfinite(r["log2_n_tasks"])), key=lambda r: r["log2_n_tasks"])
    if len(scales) == 2:
        a = {r["log2_n_tasks"]: r["true/delta_pt_ridge"] for r in finite if r["scale"] == scales[0]}
        b = {r["log2_n_tasks"]: r["true/delta_pt_ridge"] for r in finite if r["scale"] == scales[1]}
        xs = sorted(set(a) & set(b))
        rule = f"crossing of Delta^True_PT,Ridge for {scales[0]} and {scales[1]}"
        return _first_sign_change(xs, [a[x] - b[x] for x in xs]), rule
    xs = [r["log2_n_tasks"] for r in finite]
    gaps = [r["true/delta_pt_ridge"] - r["true/delta_pt_dmmse"] for r in finite]
    return _first_sign_change(xs, gaps), "PT closer to ridge than to dMMSE on T_True"


def _first_sign_change(xs, ys):
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]  # a failed metric is no crossing
    xs, ys = [x for x, _ in points], [y for _, y in points]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if y0 == 0:
            return x0
        if np.sign(y0) != np.sign(y1) and y1 != 0:
            return x0 + (x1 - x0) * y0 / (y0 - y1)
    return math.nan


def summary_table(rows):
    """Columns -> lists, the shape `mlflow.log_table` takes."""
    return {
        column: [row[column] if column != "log2_n_tasks" or math.isfinite(row[column]) else "inf" for row in rows]
        for column in COLUMNS
    }


def summary_csv(rows):
    lines = [",".join(COLUMNS)]
    for row in rows:
        lines.append(",".join(_cell(row.get(column, "")) for column in COLUMNS))
    return "\n".join(lines) + "\n"


def _cell(value):
    if isinstance(value, float):
        return "inf" if value == math.inf else f"{value:.6g}"
    return str(value)
