"""Final accuracy (paper Fig. 10): the final T_True loss/D of the transformers trained on M above the
threshold against the one trained on M = inf (and ridge, the Bayes estimator for T_True). The paper's
claim: above the threshold they match."""

import math
import textwrap

from matplotlib.figure import Figure

from pipeline.analysis.plots import mean_curve
from pipeline.analysis.sweep_runs import Analysis
from pipeline.presets import REPLICATE
from pipeline.sweep.summary import aggregate, group_axes, group_key, point_axes
from pipeline.types import InputError

LOSS, RIDGE = "true/pt/loss_noiseless", "true/ridge/loss_noiseless"


def final_accuracy(client, sweep, above=None):
    """The Analysis of `sweep`: per curve, the models with log2 M above `above` (default: the threshold
    the sweep estimated for the curve's group) against the curve's M = inf model."""
    table = {
        "curve": [],
        "n_tasks": [],
        "log2_n_tasks": [],
        "pt": [],
        "pt_inf": [],
        "ridge": [],
        "gap": [],
        "train_run": [],
    }
    metrics, findings = {}, []
    for curve in dict.fromkeys(sweep.curve(row) for row in sweep.rows):
        rows = [row for row in sweep.rows if sweep.curve(row) == curve]
        infinite = [row for row in rows if row["n_tasks"] == math.inf]
        if not infinite:
            raise InputError(f"final_accuracy needs M = inf in the sweep ({curve or 'its only curve'} has none)")
        cut = above if above is not None else sweep.metrics.get(_threshold_key(sweep, rows[0]), math.nan)
        name = curve or "the sweep"
        if not math.isfinite(cut):
            findings.append(f"- {name}: no threshold estimate (pass `above`): no model compared")
            continue
        reference = infinite[0][LOSS]
        picked = sorted((r for r in rows if cut < r["log2_n_tasks"] < math.inf), key=lambda r: r["log2_n_tasks"])
        for row in picked:
            table["curve"].append(curve)
            table["n_tasks"].append(row["n_tasks"])
            table["log2_n_tasks"].append(row["log2_n_tasks"])
            table["pt"].append(row[LOSS])
            table["pt_inf"].append(reference)
            table["ridge"].append(row[RIDGE])
            table["gap"].append(row[LOSS] / reference - 1)
            table["train_run"].append(row["train_run"])
        suffix = f"/{curve}" if curve else ""
        gaps = [row[LOSS] / reference - 1 for row in picked]
        metrics |= {f"models_above_threshold{suffix}": len(picked), f"pt_inf_loss{suffix}": reference}
        if gaps:
            worst = max(gaps, key=abs)
            metrics[f"largest_relative_gap{suffix}"] = worst
            findings.append(
                f"- {name}: {len(picked)} models with log2 M > {cut:.2f}; their T_True loss/D is within "
                f"{abs(worst):.1%} of the M = inf model's ({reference:.4f})"
            )
        else:
            findings.append(f"- {name}: no grid point with log2 M above {cut:.2f}")
    runs = sorted(set(table["train_run"]) | {r["train_run"] for r in sweep.rows if r["n_tasks"] == math.inf})
    return Analysis(
        figures={"final_accuracy/final_accuracy.png": _figure(sweep, table)},
        tables={"final_accuracy/final_accuracy.json": table},
        metrics=metrics,
        findings=findings,
        runs=runs,
    )


def _threshold_key(sweep, row):
    """The sweep run's metric holding the threshold of `row`'s group (pipeline/main.py _log_summary)."""
    group = [(axis, row[axis]) for axis in group_axes(sweep.axes)]
    return "threshold_log2_n_tasks" + group_key(group)


def _figure(sweep, table):
    """Per curve of the sweep (its replicates pooled), the mean final T_True loss/D of the models above the
    threshold with its 95% interval, and the M = inf model's mean as a dashed line in a band of its interval."""
    fig = Figure(figsize=(6.5, 4.8))
    ax = fig.subplots()
    picked = set(table["train_run"])
    shown = point_axes(sweep.axes)[1:]
    drawn = [(group, rows) for group, rows in _curves(sweep.rows, shown) if any(r["train_run"] in picked for r in rows)]
    for c, (group, rows) in enumerate(drawn):  # those with a threshold and a model above it
        label = f" ({', '.join(f'{axis}={value}' for axis, value in group)})" if group else ""
        above = [row for row in rows if row["train_run"] in picked]
        mean_curve(ax, above, sweep.axes, LOSS, float, color=f"C{c}", label=f"transformer, M > M*{label}")
        [inf] = aggregate([r for r in rows if r["n_tasks"] == math.inf], sweep.axes)
        ax.axhline(inf[LOSS], color=f"C{c}", ls="--", label=f"transformer, M = inf{label}")
        if math.isfinite(inf[f"{LOSS}:low"]):
            ax.axhspan(inf[f"{LOSS}:low"], inf[f"{LOSS}:high"], color=f"C{c}", alpha=0.12, lw=0)
    ridge = next((r[RIDGE] for r in sweep.rows if r["n_tasks"] == math.inf), None)
    if ridge is not None:
        ax.axhline(ridge, color="grey", ls=":", label="ridge (Bayes for T_True)")
    replicates = len({row.get(REPLICATE, 0) for row in sweep.rows})
    ax.set(
        xlabel="log2 M",
        ylabel="final loss / D on T_True (vs x.w)",
        title="Above the threshold: the M = inf accuracy"
        + (f" (means of {replicates} replicates, 95% intervals)" if replicates > 1 else ""),
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_xticks(sorted({row["log2_n_tasks"] for row in sweep.rows if row["train_run"] in picked}))
    if sweep.setting:
        fig.suptitle(textwrap.fill(sweep.setting, 110), fontsize=7)
    fig.tight_layout()
    return fig


def _curves(rows, shown):
    """[(((axis, value), ...), rows)] per value of the `shown` axes (the replicates pooled), in order."""
    found = {}
    for row in rows:
        found.setdefault(tuple((axis, row[axis]) for axis in shown), []).append(row)
    return list(found.items())
