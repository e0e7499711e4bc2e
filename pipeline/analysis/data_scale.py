"""Data scale (paper Fig. 3): Delta_PT,dMMSE and Delta_PT,Ridge on T_Pretrain and T_True against M, one
curve per data scale (batch_size x total_steps), and where each scale's Delta^True_PT,Ridge curve crosses
the smallest scale's. The paper's claim: doubling the steps and doubling the batch move the curves alike
and cross the base scale at the same M."""

import math

from matplotlib.figure import Figure

from pipeline.analysis.plots import mean_curve
from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import PANELS, TITLES, m_axis
from pipeline.sweep import summary
from pipeline.sweep.grid import DATA_SCALE
from pipeline.sweep.summary import data_seen, first_sign_change, group_key, group_label, groups, scale_label
from pipeline.types import InputError

PANEL_KEYS = [f"{dist}/{kind}" for kind in ("delta_pt_dmmse", "delta_pt_ridge") for dist in ("pretrain", "true")]


def data_scale(client, sweep):
    """The Analysis of `sweep`, whose axes include a data scale (batch_size and/or total_steps) with two or
    more values: per group of the other axes, each scale's crossing with the smallest (log2 M)."""
    if not any(axis in DATA_SCALE for axis in sweep.axes[1:]):
        raise InputError("data_scale needs a sweep over batch_size or total_steps (two data scales or more)")
    table = {"group": [], "scale": [], "sequences_seen": [], "n_tasks": [], "log2_n_tasks": []}
    table |= {key: [] for key in PANEL_KEYS} | {"train_run": []}
    metrics, findings = {}, []
    for group, rows in groups(sweep.rows, sweep.axes):
        label = group_label(group)
        ordered = sorted(rows, key=lambda r: (data_seen(r), r["log2_n_tasks"]))
        for row in ordered:
            table["group"].append(label)
            table["scale"].append(scale_label(row, sweep.axes))
            table["sequences_seen"].append(data_seen(row))
            table["n_tasks"].append("inf" if row["n_tasks"] == math.inf else row["n_tasks"])
            table["log2_n_tasks"].append(row["log2_n_tasks"])
            for key in PANEL_KEYS:
                table[key].append(row[key])
            table["train_run"].append(row["train_run"])
        scales = list(dict.fromkeys(scale_label(r, sweep.axes) for r in ordered))
        base = _curve(ordered, sweep.axes, scales[0])
        for scale in scales[1:]:
            other = _curve(ordered, sweep.axes, scale)
            xs = sorted(set(base) & set(other))
            crossing = first_sign_change(xs, [base[x] - other[x] for x in xs])
            suffix = f"{group_key(group)}/{scales[0]}_vs_{scale}".lstrip("/")
            metrics[f"crossover_log2_n_tasks/{suffix}"] = crossing
            where = f"M ~ 2^{crossing:.2f}" if math.isfinite(crossing) else "no crossing inside the grid"
            findings.append(f"- {label + ': ' if label else ''}{scale} against {scales[0]}: {where}")
    return Analysis(
        figures={"data_scale/data_scale.png": _figure(sweep, table)},
        tables={"data_scale/data_scale.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(table["train_run"])),
    )


def _curve(rows, axes, scale):
    """{log2 M: Delta^True_PT,Ridge} of one data scale's finite M (the mean over its replicates, if any)."""
    found = {}
    for r in rows:
        if scale_label(r, axes) == scale and math.isfinite(r["log2_n_tasks"]):
            found.setdefault(r["log2_n_tasks"], []).append(r["true/delta_pt_ridge"])
    return {x: sum(values) / len(values) for x, values in found.items()}


def _figure(sweep, table):
    """A panel per Delta: a curve per group and data scale, the mean over replicates with its 95% interval;
    on T_True's Delta_PT,Ridge the sweep's threshold (the crossing of the smallest and largest scales) with
    its interval as a band."""
    x_of, ticks = m_axis(table["log2_n_tasks"])
    fig = Figure(figsize=(16, 4.6))
    panels = fig.subplots(1, 4, sharex=True)
    series = [
        (group, scale, [r for r in rows if scale_label(r, sweep.axes) == scale])
        for group, rows in groups(sweep.rows, sweep.axes)
        for scale in dict.fromkeys(scale_label(r, sweep.axes) for r in sorted(rows, key=data_seen))
    ]
    for ax, key in zip(panels, PANEL_KEYS, strict=True):
        for c, (group, scale, rows) in enumerate(series):
            name = scale + (f" ({group_label(group)})" if group else "")
            dodge = 0.08 * (c - (len(series) - 1) / 2)  # the scales' points side by side at each M
            mean_curve(ax, rows, sweep.axes, key, x_of, dodge, marker="os^vDP"[c % 6], color=f"C{c % 10}", label=name)
        dist, kind = key.split("/")
        ax.set(yscale="log", title=f"{TITLES[dist]}: {PANELS[kind]}", xlabel="log2 M")
        ticks(ax)
        ax.grid(alpha=0.3)
    for found in summary.thresholds(sweep.rows, sweep.axes):  # the paper's rule: where the scales' curves cross
        if math.isfinite(found.log2_m):
            panels[3].axvline(found.log2_m, color="black", ls=":", lw=1, label="M* (crossing)")
            if math.isfinite(found.low) and math.isfinite(found.high):
                panels[3].axvspan(found.low, found.high, color="black", alpha=0.08, lw=0)
    panels[0].legend(fontsize=7, title="mean, 95% interval", title_fontsize=7)
    panels[3].legend(fontsize=7)
    fig.suptitle("Data scale: more steps against a bigger batch\n" + sweep.setting)
    fig.tight_layout()
    return fig
