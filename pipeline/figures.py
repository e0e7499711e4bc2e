"""Figures logged to MLflow: per-position loss curves of the predictors on each distribution."""

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"pt": ("transformer", "C0"), "dmmse": ("dMMSE", "C1"), "ridge": ("ridge", "C2")}
TITLES = {"pretrain": "T_Pretrain (pool tasks)", "true": "T_True (fresh tasks)"}


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
