"""Task dimension (paper Fig. 6): the threshold M* per D (a sweep over n_dims, usually linked with n_points
for K = 2D and with the model's size), and at the largest finite M of each D, Delta^True_PT,Ridge and
Delta^True_dMMSE,Ridge against D. The paper's claims: M* grows about linearly with D (2^14, 2^15, 2^16 at
D = 8, 16, 32), while at M = 2^20 the first Delta stays flat in D and the second grows.

Everything is read from the sweep: its threshold estimate per group and its summary rows.
"""

import math

from matplotlib.figure import Figure

from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import m_axis
from pipeline.sweep.summary import data_seen, group_key, group_label, groups, scale_label
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
    table = {"group": [], "n_dims": [], "threshold_log2_n_tasks": [], "largest_n_tasks": [], **{k: [] for k in DELTAS}}
    metrics, findings, curves = {}, [], {}
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
        top |= {key: sum(r[key] for r in replicates) / len(replicates) for key in DELTAS}
        log2_m = sweep.metrics.get(f"threshold_log2_n_tasks{suffix}", math.nan)
        table["group"].append(label)
        table["n_dims"].append(top["n_dims"])
        table["threshold_log2_n_tasks"].append(log2_m)
        table["largest_n_tasks"].append(top["n_tasks"])
        for key in DELTAS:
            table[key].append(top[key])
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
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(16, 4.2))
    curve_ax, threshold_ax, delta_ax = fig.subplots(1, 3)
    for c, (label, rows) in enumerate(curves.items()):
        scales = list(dict.fromkeys(scale_label(r, sweep.axes) for r in sorted(rows, key=data_seen)))
        for s, scale in enumerate(scales):
            points = sorted(
                (x_of(r["log2_n_tasks"]), r["true/delta_pt_ridge"]) for r in rows if scale_label(r, sweep.axes) == scale
            )
            name = label + (f" {scale}" if scale else "")
            curve_ax.plot(
                *zip(*points, strict=True), marker="o", color=f"C{c % 10}", ls=("-", "--", ":")[s % 3], label=name
            )
    curve_ax.set(yscale="log", xlabel="log2 M", title=r"$\Delta^{True}_{PT,Ridge}$ per D")
    ticks(curve_ax)
    curve_ax.legend(fontsize=6)
    points = sorted((d, t) for d, t in zip(table["n_dims"], table["threshold_log2_n_tasks"], strict=True) if t == t)
    if points:
        threshold_ax.plot(*zip(*points, strict=True), marker="o", color="black")
    threshold_ax.set(xlabel="D", ylabel="log2 M*", title="threshold against D")
    for (key, label), color in zip(DELTAS.items(), ("C0", "C1"), strict=True):
        delta_ax.plot(
            *zip(*sorted(zip(table["n_dims"], table[key], strict=True)), strict=True),
            marker="o",
            color=color,
            label=label,
        )
    delta_ax.set(yscale="log", xlabel="D", title="at the largest finite M of each D")
    delta_ax.legend(fontsize=7)
    for ax in (curve_ax, threshold_ax, delta_ax):
        ax.grid(alpha=0.3)
    fig.suptitle("Task dimension: the threshold and the Deltas against D\n" + sweep.setting)
    fig.tight_layout()
    return fig
