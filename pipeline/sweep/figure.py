"""The sweep's Fig. 2-style figure: loss/D and the Deltas against M, a curve per value of the other axes."""

from math import nan

from matplotlib.figure import Figure

from pipeline.figures import PANELS, STYLE, TITLES, m_axis
from pipeline.sweep.summary import curve_label, group_label


def sweep_figure(rows, axes, found, setting=""):
    """Paper Fig. 2 style: rows T_Pretrain / T_True; columns loss/D, Delta_PT,dMMSE, Delta_PT,Ridge vs M.

    log2 M on the x axis, M = inf drawn two units right of the largest finite M; one curve per value of
    every axis other than M (line style and marker per curve; on the loss panels, colour per predictor);
    each group's threshold estimate (`found`: summary.thresholds) as a dotted vertical line. Rows that are
    means over replicates (summary.aggregate) get their 95% intervals as bands, the threshold too; the
    `setting` (summary.setting_text) is printed under the title.
    """
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in rows)
    curves = list(dict.fromkeys(curve_label(r, axes) for r in rows))
    fig = Figure(figsize=(14, 7.5))
    axes_grid = fig.subplots(2, 3, sharex=True)
    for i, dist in enumerate(("pretrain", "true")):
        for j, (kind, names) in enumerate(
            (("loss", ("pt", "dmmse", "ridge")), ("delta_pt_dmmse", ("pt",)), ("delta_pt_ridge", ("pt",)))
        ):
            ax = axes_grid[i, j]
            for c, curve in enumerate(curves):
                for name in names:
                    key = f"{dist}/{name}/loss_noiseless" if kind == "loss" else f"{dist}/{kind}"
                    points = sorted(
                        (x_of(r["log2_n_tasks"]), r[key], r.get(f"{key}:low", nan), r.get(f"{key}:high", nan))
                        for r in rows
                        if curve_label(r, axes) == curve and r[key] == r[key]
                    )
                    if not points:
                        continue
                    label, color = STYLE[name]
                    label = label if kind == "loss" else PANELS[kind]
                    color = color if kind == "loss" or len(curves) == 1 else f"C{c % 10}"
                    x, y, low, high = zip(*points, strict=True)
                    ax.plot(
                        x,
                        y,
                        marker="os^vDP*X"[c % 8],
                        ls=("-", "--", "-.", ":")[c % 4],
                        color=color,
                        label=f"{label} {curve}".strip(),
                    )
                    if any(v == v for v in low):  # the 95% interval over replicates
                        ax.fill_between(x, low, high, color=color, alpha=0.15, lw=0)
            for g, threshold in enumerate(found):
                if threshold.log2_m == threshold.log2_m:  # not NaN
                    group = f" ({group_label(threshold.group)})" if threshold.group else ""
                    color = "grey" if len(found) == 1 else f"C{g % 10}"
                    ax.axvline(threshold.log2_m, color=color, ls=":", label=f"M* = 2^{threshold.log2_m:.1f}{group}")
                    if threshold.low == threshold.low:
                        ax.axvspan(threshold.low, threshold.high, color=color, alpha=0.08, lw=0)
            ax.set(yscale="log", title=f"{TITLES[dist]}: {PANELS[kind]}")
            ticks(ax)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("log2 M (number of pretraining tasks)")
        axes_grid[i, 0].legend(fontsize=7)
        axes_grid[i, 2].legend(fontsize=7)
    rules = sorted({threshold.rule for threshold in found})
    replicates = max((r.get("replicates", 1) for r in rows), default=1)
    means = f"; means of {replicates} replicates, 95% intervals shaded" if replicates > 1 else ""
    title = f"Task-diversity sweep (loss against noiseless targets); threshold: {'; '.join(rules)}{means}"
    fig.suptitle(f"{title}\n{setting}" if setting else title)
    fig.tight_layout()
    return fig
