"""What moves the threshold (paper Fig. 7 and Fig. 13): the threshold M* per value of a swept axis other
than M and the data scale (weight_decay, n_embd, n_layer, ...), as the sweep estimated it per group, with
each value's Delta^True_PT,Ridge and T_True loss/D against M. The paper's claims: more weight decay, lower
threshold, and worse T_True loss (Fig. 13); threshold rising with the small model's width and depth."""

import math

from matplotlib.figure import Figure

from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import m_axis
from pipeline.sweep.summary import group_axes, group_key, group_label, groups, scale_label
from pipeline.types import InputError

CURVES = {
    "true/delta_pt_ridge": r"T_True: $\Delta_{PT,Ridge}$",
    "true/pt/loss_noiseless": "T_True: loss / D of the transformer",
    "true/delta_dmmse_ridge": r"T_True: $\Delta_{dMMSE,Ridge}$",
}


def thresholds(client, sweep):
    """The Analysis of `sweep`, which has an axis besides M and the data scale: per group (a value of those
    axes) the sweep's threshold estimate (its metric threshold_log2_n_tasks/<group>) and its curves."""
    axes = group_axes(sweep.axes)
    if not axes:
        raise InputError("thresholds needs a sweep over an axis besides n_tasks and the data scale (e.g. weight_decay)")
    table = {"group": [], **{axis: [] for axis in axes}, "threshold_log2_n_tasks": [], "finding": []}
    metrics, findings, rows_by_group = {}, [], {}
    for group, rows in groups(sweep.rows, sweep.axes):
        suffix = group_key(group)
        log2_m = sweep.metrics.get(f"threshold_log2_n_tasks{suffix}", math.nan)
        label = group_label(group)
        rows_by_group[label] = rows
        table["group"].append(label)
        for axis, value in group:
            table[axis].append(value)
        table["threshold_log2_n_tasks"].append(log2_m)
        finding = f"M* ~ 2^{log2_m:.2f}" if math.isfinite(log2_m) else "no threshold inside the grid"
        table["finding"].append(finding)
        findings.append(f"- {label}: {finding}")
        metrics[f"threshold_log2_n_tasks{suffix}"] = log2_m
        finite_loss = [r["true/pt/loss_noiseless"] for r in rows if math.isfinite(r["log2_n_tasks"])]
        if finite_loss:
            metrics[f"mean_true_loss{suffix}"] = sum(finite_loss) / len(finite_loss)
    return Analysis(
        figures={"thresholds/thresholds.png": _figure(sweep, table, rows_by_group, axes)},
        tables={"thresholds/thresholds.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted({r["train_run"] for r in sweep.rows}),
    )


def _figure(sweep, table, rows_by_group, axes):
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(18, 4.2))
    panels = fig.subplots(1, 4)
    for ax, (key, title) in zip(panels[:3], CURVES.items(), strict=True):
        for c, (label, rows) in enumerate(rows_by_group.items()):
            scales = list(dict.fromkeys(scale_label(r, sweep.axes) for r in rows))
            for s, scale in enumerate(scales):
                points = sorted(
                    (x_of(r["log2_n_tasks"]), r[key])
                    for r in rows
                    if scale_label(r, sweep.axes) == scale and r[key] == r[key]
                )
                if points:
                    name = label + (f" {scale}" if scale else "")
                    ax.plot(
                        *zip(*points, strict=True),
                        color=f"C{c % 10}",
                        ls=("-", "--", ":")[s % 3],
                        marker="o",
                        label=name,
                    )
        ax.set(yscale="log", title=title, xlabel="log2 M")
        ticks(ax)
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    ax = panels[3]
    axis = axes[0]
    points = [(v, t) for v, t in zip(table[axis], table["threshold_log2_n_tasks"], strict=True) if math.isfinite(t)]
    if points:
        ax.plot(*zip(*sorted(points), strict=True), marker="o", color="black")
    numeric = all(isinstance(v, int | float) and v > 0 for v in table[axis])
    ax.set(xscale="log" if numeric else "linear", xlabel=axis, ylabel="log2 M*", title=f"threshold against {axis}")
    ax.grid(alpha=0.3)
    fig.suptitle("What moves the threshold")
    fig.tight_layout()
    return fig
