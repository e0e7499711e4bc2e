"""Smoothed dMMSE (paper Fig. 12): is the transformer better on fresh tasks than the Bayes predictor for a
pool blurred into a mixture of Gaussians, (1/M) sum_i N(w_i, s^2 I), even with the best s?

Per finite M of the sweep, smoothed dMMSE's T_True loss/D and its s are read from the evaluate_baselines
run where it scored them (sweeps run with smoothed_held_out > 0). Otherwise s is chosen here by a 1-D
search on `held_out` fresh-task (T_True) sequences of its own (seeded, distinct from the eval set), then
smoothed dMMSE is scored on the sweep's tracked T_True eval set, the one the transformer, dMMSE and ridge
were scored on; their losses are read from the summary. The table's `source` column says which.
"""

import math
import tempfile

import numpy as np
from matplotlib.figure import Figure

from baselines import loss_vs_noiseless, smoothed_dmmse_predictions
from pipeline.analysis.plots import pooled_curves, replicates_note, with_intervals
from pipeline.analysis.sweep_runs import Analysis
from pipeline.cli import open_pool
from pipeline.evaluation import EVAL_SEEDS, choose_smoothing
from pipeline.figures import STYLE, m_axis
from pipeline.generate_pool import POOL_ARTIFACT
from pipeline.types import InputError
from tasks import EvalSettings

LOSS = "true/{}/loss_noiseless"
SMOOTHED = ("smoothed dMMSE (best s)", "C3")
# What an evaluate_baselines run with smoothed_held_out > 0 logs: s, its held-out loss/D, T_True loss/D.
TRACKED = ("smoothed_dmmse/smoothing", "smoothed_dmmse/held_out_loss", "true/smoothed_dmmse/loss_noiseless")


def smoothing(client, sweep, *, held_out, seed):
    """The Analysis of `sweep`: per finite M, the best s on `held_out` sequences drawn with `seed`, and
    T_True loss/D of the transformer, dMMSE, smoothed dMMSE at that s and ridge."""
    clash = [name for name in EVAL_SEEDS if int(sweep.params.get(name, -1)) == seed]
    if clash:
        raise InputError(f"seed={seed} is the sweep's {clash[0]}: the held-out sequences would be its eval set")
    table = {"curve": [], "n_tasks": [], "smoothing": [], "held_out_loss": [], "pt": [], "dmmse": []}
    table |= {"smoothed_dmmse": [], "ridge": [], "source": [], "train_run": []}
    metrics, findings, runs = {}, [], []
    for row in sweep.rows:
        if not (math.isfinite(row["n_tasks"]) and row["n_tasks"] >= 2):
            continue
        tracked = client.get_run(row["evaluate_baselines_run"]).data.metrics
        if TRACKED[0] in tracked:
            best, held_out_loss, loss = (tracked[key] for key in TRACKED)
            table["source"].append(f"runs:/{row['evaluate_baselines_run']}")
        else:
            best, held_out_loss, loss = _computed(client, sweep, row, held_out, seed)
            table["source"].append("computed here")
        curve, m = sweep.curve(row), row["n_tasks"]
        found = {name: row[LOSS.format(name)] for name in ("pt", "dmmse", "ridge")}
        for key, item in (("curve", curve), ("n_tasks", m), ("smoothing", best), ("held_out_loss", held_out_loss)):
            table[key].append(item)
        for name, item in found.items():
            table[name].append(item)
        table["smoothed_dmmse"].append(loss)
        table["train_run"].append(row["train_run"])
        runs += [row["train_run"], row["evaluate_baselines_run"], row["generate_pool_run"]]
        suffix = sweep.metric_key(row)
        metrics |= {f"smoothing/{suffix}": best, f"true/smoothed_dmmse/loss_noiseless/{suffix}": loss}
        metrics[f"pt_over_smoothed/{suffix}"] = found["pt"] / loss
        verdict = "beats" if found["pt"] < loss else "does not beat"
        findings.append(
            f"- M = {m}{' (' + curve + ')' if curve else ''}: T_True loss/D {found['pt']:.3f} (transformer), "
            f"{loss:.3f} (smoothed dMMSE, s = {best:.3g}), {found['dmmse']:.3f} (dMMSE), {found['ridge']:.3f} "
            f"(ridge): the transformer {verdict} smoothed dMMSE ({found['pt'] / loss - 1:+.1%})"
        )
    if not table["n_tasks"]:
        raise InputError("smoothing needs a sweep with a finite M >= 2 (smoothed dMMSE blurs a pool)")
    return Analysis(
        figures={"smoothing/smoothing.png": _figure(sweep, table)},
        tables={"smoothing/smoothing.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(runs)),
    )


def _computed(client, sweep, row, held_out, seed):
    """(s, its held-out loss/D, T_True loss/D) of smoothed dMMSE for a sweep row whose evaluate_baselines run
    did not score it: s chosen on `held_out` sequences drawn with `seed`, scored on the tracked T_True set."""
    value = {key: float(row.get(key, sweep.params[key])) for key in ("noise_scale", "data_scale", "n_points")}
    pool = open_pool(f"runs:/{row['generate_pool_run']}/{POOL_ARTIFACT}")
    noise = value["noise_scale"]
    best, held_out_loss = choose_smoothing(
        pool, EvalSettings(held_out, int(value["n_points"]), noise, value["data_scale"], seed, seed, seed)
    )
    with tempfile.TemporaryDirectory() as folder:
        arrays = np.load(client.download_artifacts(row["evaluate_baselines_run"], "eval/true.npz", folder))
        xs, ys, ws = (arrays[key].astype(np.float64) for key in ("xs", "ys", "ws"))
    preds = smoothed_dmmse_predictions(xs, ys, pool=pool.tasks, noise_scale=noise, smoothing=best)
    return best, held_out_loss, float(loss_vs_noiseless(preds, xs, ws).mean())


def _figure(sweep, table):
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(11, 4.2))
    loss_ax, s_ax = fig.subplots(1, 2)
    style = {**STYLE, "smoothed_dmmse": SMOOTHED}
    for ls, suffix, xs, values in pooled_curves(table, x_of):
        for name, (label, color) in style.items():
            with_intervals(loss_ax, xs, *values(name), color=color, ls=ls, label=label + suffix)
        with_intervals(s_ax, xs, *values("smoothing"), color="black", ls=ls)
    loss_ax.set(yscale="log", xlabel="log2 M", ylabel="T_True loss / D (vs x.w)", title="fresh tasks")
    s_ax.set(yscale="symlog", xlabel="log2 M", ylabel="s", title="best smoothing s (held-out T_True)")
    for ax in (loss_ax, s_ax):
        ticks(ax)
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=7)
    fig.suptitle(
        f"Smoothed dMMSE: the pool blurred into a Gaussian mixture, with the best s{replicates_note(table)}\n"
        + sweep.setting
    )
    fig.tight_layout()
    return fig
