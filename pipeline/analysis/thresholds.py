"""What moves the threshold (paper Fig. 7 and Fig. 13): the threshold M* per value of a swept axis other
than M and the data scale (weight_decay, n_embd, n_layer, ...), as the sweep estimated it per group, with
each value's Delta^True_PT,Ridge and T_True loss/D against M. The paper's claims: more weight decay, lower
threshold, and worse T_True loss (Fig. 13); threshold rising with the small model's width and depth."""

import math

from matplotlib.figure import Figure

from pipeline.analysis.plots import mean_curve, with_intervals
from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import m_axis
from pipeline.presets import REPLICATE
from pipeline.sweep import summary
from pipeline.sweep.summary import group_axes, group_key, group_label, groups, scale_label
from pipeline.types import InputError

THRESHOLD = ("threshold_log2_n_tasks", "low", "high")  # M* and its interval, columns of the table
CURVES = {
    "true/delta_pt_ridge": r"T_True: $\Delta_{PT,Ridge}$",
    "true/pt/loss_noiseless": "T_True: loss / D of the transformer",
    "true/delta_dmmse_ridge": r"T_True: $\Delta_{dMMSE,Ridge}$",
}


def thresholds(client, sweep):
    """The Analysis of `sweep`, which has an axis besides M and the data scale: per group (a value of those
    axes) the threshold estimated from the sweep's rows as the sweep estimates it, and its curves."""
    axes = group_axes(sweep.axes)
    if not axes:
        raise InputError("thresholds needs a sweep over an axis besides n_tasks and the data scale (e.g. weight_decay)")
    table = {"group": [], **{axis: [] for axis in axes}, "threshold_log2_n_tasks": [], "low": [], "high": []}
    table["finding"] = []
    metrics, findings, rows_by_group = {}, [], {}
    found = {t.group: t for t in summary.thresholds(sweep.rows, sweep.axes)}  # as the sweep estimates them
    for group, rows in groups(sweep.rows, sweep.axes):
        suffix = group_key(group)
        log2_m = found[group].log2_m
        label = group_label(group)
        rows_by_group[label] = rows
        table["group"].append(label)
        for axis, value in group:
            table[axis].append(value)
        table["threshold_log2_n_tasks"].append(log2_m)
        table["low"].append(found[group].low)  # the 95% interval (nan where the sweep has none)
        table["high"].append(found[group].high)
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
    """Three panels of a curve per group (and data scale) against M: the mean over replicates with its 95%
    interval as error bars; the fourth: M* per value of the first axis with the sweep's interval."""
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(18, 4.6))
    panels = fig.subplots(1, 4)
    shown = [axis for axis in sweep.axes if axis != REPLICATE]
    for ax, (key, title) in zip(panels[:3], CURVES.items(), strict=True):
        for c, (label, rows) in enumerate(rows_by_group.items()):
            scales = list(dict.fromkeys(scale_label(r, sweep.axes) for r in rows))
            for s, scale in enumerate(scales):
                dodge = 0.08 * (c - (len(rows_by_group) - 1) / 2)  # curves that coincide stay apart
                chosen = [r for r in rows if scale_label(r, sweep.axes) == scale]
                name = label + (f" {scale}" if scale else "")
                mean_curve(
                    ax, chosen, sweep.axes, key, x_of, dodge, color=f"C{c % 10}", ls=("-", "--", ":")[s % 3], label=name
                )
        ax.set(yscale="log", title=title, xlabel="log2 M")
        ticks(ax)
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7, title=f"mean over replicates, 95% interval ({', '.join(shown[1:])})", title_fontsize=7)
    _threshold_panel(panels[3], table, axes[0])
    fig.suptitle("What moves the threshold\n" + sweep.setting)
    fig.tight_layout()
    return fig


def _threshold_panel(ax, table, axis):
    """M* per value of `axis` with the sweep's interval; a numeric axis on a log scale, its 0
    (no weight decay) drawn on a linear stretch left of the smallest positive value."""
    values = table[axis]
    with_intervals(ax, values, *(table[k] for k in THRESHOLD), color="black")
    numeric = all(isinstance(v, int | float) and v >= 0 for v in values)
    positive = sorted(v for v in values if isinstance(v, int | float) and v > 0)
    if numeric and positive:
        ax.set_xscale("symlog", linthresh=positive[0]) if 0 in values else ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set(xlabel=axis, ylabel="log2 M* (95% interval where the redraws agree)", title=f"threshold against {axis}")
    ax.grid(alpha=0.3)
