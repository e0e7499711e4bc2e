"""Task dimension (paper Fig. 6): the threshold M* per D (a sweep over n_dims, usually linked with n_points
for K = 2D and with the model's size), and at the largest finite M of each D, Delta^True_PT,Ridge and
Delta^True_dMMSE,Ridge against D. The paper's claims: M* grows about linearly with D (2^14, 2^15, 2^16 at
D = 8, 16, 32), while at M = 2^20 the first Delta stays flat in D and the second grows.

Everything is read from the sweep's summary rows; the threshold per group is estimated from them as the sweep
estimates it (pipeline/sweep/summary.py), not looked up by a metric key that spells float values.
"""

import math

from matplotlib.figure import Figure

from pipeline.analysis.plots import mean_curve, with_intervals
from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import m_axis
from pipeline.stats import t_interval
from pipeline.sweep.summary import data_seen, group_key, group_label, groups, scale_label, thresholds
from pipeline.types import InputError

DELTAS = {
    "true/delta_pt_ridge": r"$\Delta^{True}_{PT,Ridge}$",
    "true/delta_dmmse_ridge": r"$\Delta^{True}_{dMMSE,Ridge}$",
}


def dimension(client, sweep):
    """The Analysis of a sweep over n_dims: per group (D and the axes linked or crossed with it), the
    sweep's threshold and the Deltas at the group's largest finite M (largest data scale; the mean over
    replicates, if any)."""
    if "n_dims" not in sweep.axes:
        raise InputError("dimension needs a sweep over n_dims (e.g. n_dims=4,8 n_points=8,16 link=n_dims,n_points)")
    table = {"group": [], "n_dims": [], "threshold_log2_n_tasks": [], "low": [], "high": [], "largest_n_tasks": []}
    table |= {f"{k}{part}": [] for k in DELTAS for part in ("", ":low", ":high")}
    metrics, findings, curves = {}, [], {}
    found = {t.group: t for t in thresholds(sweep.rows, sweep.axes)}  # as the sweep estimates them
    for group, rows in groups(sweep.rows, sweep.axes):
        suffix, label = group_key(group), group_label(group)
        finite = [r for r in rows if math.isfinite(r["n_tasks"])]
        if not finite:
            continue
        largest_scale = scale_label(max(rows, key=data_seen), sweep.axes)
        largest = [r for r in finite if scale_label(r, sweep.axes) == largest_scale]
        m = max(r["n_tasks"] for r in largest)
        replicates = [r for r in largest if r["n_tasks"] == m]  # one row, or one per replicate: their mean
        top = {"n_dims": replicates[0]["n_dims"], "n_tasks": m}
        for key in DELTAS:  # the mean over replicates with its 95% interval
            top[key], top[f"{key}:low"], top[f"{key}:high"] = t_interval([r[key] for r in replicates])
        log2_m = found[group].log2_m
        table["group"].append(label)
        table["n_dims"].append(top["n_dims"])
        table["threshold_log2_n_tasks"].append(log2_m)
        table["low"].append(found[group].low)  # the 95% interval of M* (nan where the sweep has none)
        table["high"].append(found[group].high)
        table["largest_n_tasks"].append(top["n_tasks"])
        for key in DELTAS:
            for part in ("", ":low", ":high"):
                table[f"{key}{part}"].append(top[f"{key}{part}"])
            metrics[f"{key.replace('true/', '')}_at_largest_m{suffix}"] = top[key]
        metrics[f"threshold_log2_n_tasks{suffix}"] = log2_m
        curves[label] = rows
        where = f"M* ~ 2^{log2_m:.2f}" if math.isfinite(log2_m) else "no threshold inside the grid"
        findings.append(
            f"- {label}: {where}; at M = {top['n_tasks']}: Delta^True_PT,Ridge {top['true/delta_pt_ridge']:.4f}, "
            f"Delta^True_dMMSE,Ridge {top['true/delta_dmmse_ridge']:.4f}"
        )
    if not table["group"]:
        raise InputError("dimension found no finite M in the sweep")
    return Analysis(
        figures={"dimension/dimension.png": _figure(sweep, table, curves)},
        tables={"dimension/dimension.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted({r["train_run"] for r in sweep.rows}),
    )


def _figure(sweep, table, curves):
    """Delta^True_PT,Ridge against M per D (means over replicates with their 95% intervals), M* against D
    with the sweep's interval, and the two Deltas at each D's largest finite M."""
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(16, 4.6))
    curve_ax, threshold_ax, delta_ax = fig.subplots(1, 3)
    for c, (label, rows) in enumerate(curves.items()):
        scales = list(dict.fromkeys(scale_label(r, sweep.axes) for r in sorted(rows, key=data_seen)))
        for s, scale in enumerate(scales):
            chosen = [r for r in rows if scale_label(r, sweep.axes) == scale]
            style = {
                "color": f"C{c % 10}",
                "ls": ("-", "--", ":")[s % 3],
                "label": label + (f" {scale}" if scale else ""),
            }
            mean_curve(
                curve_ax, chosen, sweep.axes, "true/delta_pt_ridge", x_of, 0.08 * (c - (len(curves) - 1) / 2), **style
            )
    curve_ax.set(yscale="log", xlabel="log2 M", title=r"$\Delta^{True}_{PT,Ridge}$ per D (mean, 95% interval)")
    ticks(curve_ax)
    curve_ax.legend(fontsize=6)
    dims = table["n_dims"]
    with_intervals(threshold_ax, dims, *(table[k] for k in ("threshold_log2_n_tasks", "low", "high")), color="black")
    threshold_ax.set(xlabel="D", ylabel="log2 M* (95% interval)", title="threshold against D", xscale="log")
    for (key, label), color in zip(DELTAS.items(), ("C0", "C1"), strict=True):
        ends = (table[f"{key}{part}"] for part in ("", ":low", ":high"))
        with_intervals(delta_ax, dims, *ends, color=color, label=label)
    delta_ax.set(yscale="log", xscale="log", xlabel="D", title="at the largest finite M of each D (mean, 95% interval)")
    delta_ax.legend(fontsize=7)
    for ax in (threshold_ax, delta_ax):
        ax.minorticks_off()
        ax.set_xticks(dims, [f"{d:g}" for d in dims])
    for ax in (curve_ax, threshold_ax, delta_ax):
        ax.grid(alpha=0.3)
    fig.suptitle("Task dimension: the threshold and the Deltas against D\n" + sweep.setting)
    fig.tight_layout()
    return fig
