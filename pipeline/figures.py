"""Per-position loss curves of the predictors on each distribution (logged by train and evaluate_baselines)."""

import math

from matplotlib.figure import Figure  # not pyplot: no display needed, nothing kept alive after logging

STYLE = {"pt": ("transformer", "C0"), "dmmse": ("dMMSE", "C1"), "ridge": ("ridge", "C2")}
# Per-position curves also draw the Laplace prior's Bayes predictor when the tasks are Laplace.
CURVE_STYLE = STYLE | {"laplace": ("Laplace Bayes", "C4")}
TITLES = {"pretrain": "T_Pretrain (pool tasks)", "true": "T_True (fresh tasks)"}
PANELS = {"loss": "loss / D", "delta_pt_dmmse": r"$\Delta_{PT,dMMSE}$", "delta_pt_ridge": r"$\Delta_{PT,Ridge}$"}


def m_axis(log2_values):
    """(x, ticks) for an axis of log2 M: x(log2 M) draws M = inf two units right of the largest finite M,
    ticks(ax) labels every M of `log2_values` (inf as "inf")."""
    finite = sorted({v for v in log2_values if v != math.inf})
    inf_x = max(finite, default=0) + 2

    def x(value):
        return inf_x if value == math.inf else value

    def ticks(ax):
        ax.set_xticks([*finite, inf_x], [*(f"{v:g}" for v in finite), "inf"])

    return x, ticks


def per_position_figure(curves, dists, title):
    """loss/D (noiseless targets) against context position k, one panel per distribution."""
    fig = Figure(figsize=(5 * len(dists), 3.8))
    axes = fig.subplots(1, len(dists), squeeze=False)
    for ax, dist in zip(axes[0], dists, strict=True):
        for name, (label, color) in CURVE_STYLE.items():
            curve = curves.get(f"{dist}/{name}/loss_noiseless")
            if curve is not None:
                ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=label, color=color)
        ax.set(title=TITLES[dist], xlabel="context position k", ylabel="loss / D (vs x.w)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
