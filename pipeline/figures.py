"""Figures logged to MLflow: per-position loss curves of the predictors on each distribution."""

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"pt": ("transformer", "C0"), "dmmse": ("dMMSE", "C1"), "ridge": ("ridge", "C2")}
TITLES = {"pretrain": "T_Pretrain (pool tasks)", "true": "T_True (fresh tasks)"}
PANELS = {"loss": "loss / D", "delta_pt_dmmse": r"$\Delta_{PT,dMMSE}$", "delta_pt_ridge": r"$\Delta_{PT,Ridge}$"}


def per_position_figure(curves, dists, title):
    """loss/D (noiseless targets) against context position k, one panel per distribution."""
    fig, axes = plt.subplots(1, len(dists), figsize=(5 * len(dists), 3.8), squeeze=False)
    for ax, dist in zip(axes[0], dists, strict=True):
        for name, (label, color) in STYLE.items():
            curve = curves.get(f"{dist}/{name}/loss_noiseless")
            if curve is not None:
                ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=label, color=color)
        ax.set(title=TITLES[dist], xlabel="context position k", ylabel="loss / D (vs x.w)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_figure(rows, log2_threshold, rule):
    """Paper Fig. 2 style: rows T_Pretrain / T_True; columns loss/D, Delta_PT,dMMSE, Delta_PT,Ridge vs M.

    log2 M on the x axis, M = inf drawn two units right of the largest finite M; one line style per
    data scale; the threshold estimate as a dashed vertical line.
    """
    finite = [r["log2_n_tasks"] for r in rows if r["log2_n_tasks"] != float("inf")]
    inf_x = max(finite, default=0) + 2
    scales = sorted({r["scale"] for r in rows})
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), sharex=True)
    for i, dist in enumerate(("pretrain", "true")):
        for j, (kind, names) in enumerate(
            (("loss", ("pt", "dmmse", "ridge")), ("delta_pt_dmmse", ("pt",)), ("delta_pt_ridge", ("pt",)))
        ):
            ax = axes[i, j]
            for s, scale in enumerate(scales):
                for name in names:
                    key = f"{dist}/{name}/loss_noiseless" if kind == "loss" else f"{dist}/{kind}"
                    points = sorted(
                        (inf_x if r["log2_n_tasks"] == float("inf") else r["log2_n_tasks"], r[key])
                        for r in rows
                        if r["scale"] == scale and r[key] == r[key]
                    )
                    label, color = STYLE[name]
                    label = label if kind == "loss" else PANELS[kind]
                    ax.plot(
                        *zip(*points, strict=True),
                        marker="os^v"[s],
                        ls=("-", "--")[s % 2],
                        color=color,
                        label=f"{label} {scale}".strip(),
                    )
            if log2_threshold == log2_threshold:  # not NaN
                ax.axvline(log2_threshold, color="grey", ls=":", label=f"M* = 2^{log2_threshold:.1f}")
            ax.set(yscale="log", title=f"{TITLES[dist]}: {PANELS[kind]}")
            ax.set_xticks([*sorted(set(finite)), inf_x], [*(f"{x:g}" for x in sorted(set(finite))), "inf"])
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("log2 M (number of pretraining tasks)")
        axes[i, 0].legend(fontsize=8)
        axes[i, 2].legend(fontsize=8)
    fig.suptitle(f"Task-diversity sweep (loss against noiseless targets); threshold: {rule}")
    fig.tight_layout()
    return fig
