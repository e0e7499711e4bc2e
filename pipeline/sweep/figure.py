"""The sweep's Fig. 2-style figure: loss/D and the Deltas against M, a curve per value of the other axes."""

from matplotlib.figure import Figure

from pipeline.figures import PANELS, STYLE, TITLES, m_axis
from pipeline.sweep.summary import curve_label, group_label


def sweep_figure(rows, axes, found):
    """Paper Fig. 2 style: rows T_Pretrain / T_True; columns loss/D, Delta_PT,dMMSE, Delta_PT,Ridge vs M.

    log2 M on the x axis, M = inf drawn two units right of the largest finite M; one curve per value of
    every axis other than M (line style and marker per curve; on the loss panels, colour per predictor);
    each group's threshold estimate (`found`: summary.thresholds) as a dotted vertical line.
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
                        (x_of(r["log2_n_tasks"]), r[key])
                        for r in rows
                        if curve_label(r, axes) == curve and r[key] == r[key]
                    )
                    if not points:
                        continue
                    label, color = STYLE[name]
                    label = label if kind == "loss" else PANELS[kind]
                    ax.plot(
                        *zip(*points, strict=True),
                        marker="os^vDP*X"[c % 8],
                        ls=("-", "--", "-.", ":")[c % 4],
                        color=color if kind == "loss" or len(curves) == 1 else f"C{c % 10}",
                        label=f"{label} {curve}".strip(),
                    )
            for g, (group, log2_m, *_) in enumerate(found):
                if log2_m == log2_m:  # not NaN
                    text = f"M* = 2^{log2_m:.1f}" + (f" ({group_label(group)})" if group else "")
                    ax.axvline(log2_m, color="grey" if len(found) == 1 else f"C{g % 10}", ls=":", label=text)
            ax.set(yscale="log", title=f"{TITLES[dist]}: {PANELS[kind]}")
            ticks(ax)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("log2 M (number of pretraining tasks)")
        axes_grid[i, 0].legend(fontsize=7)
        axes_grid[i, 2].legend(fontsize=7)
    rules = sorted({rule for _, _, rule, _ in found})
    fig.suptitle(f"Task-diversity sweep (loss against noiseless targets); threshold: {'; '.join(rules)}")
    fig.tight_layout()
    return fig
