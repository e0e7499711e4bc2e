"""A Laplace task prior (paper Fig. 14): with task_prior=laplace, ridge is no longer the Bayes predictor on
fresh tasks; the posterior mean under the Laplace prior is (baselines/laplace.py). The paper's claim:
above the threshold the transformer matches that Bayes-optimal predictor, not ridge.

Everything is read from the sweep's runs: the transformer's final Delta_PT,Laplace and Delta_PT,Ridge
(its train run), the estimators' T_True loss/D (its baselines run).
"""

import math

from matplotlib.figure import Figure

from pipeline.analysis.plots import pooled_curves, replicates_note, with_intervals
from pipeline.analysis.sweep_runs import Analysis
from pipeline.figures import CURVE_STYLE, m_axis
from pipeline.types import InputError

LOSSES = ("pt", "dmmse", "ridge", "laplace")
DELTAS = {"true/delta_pt_laplace": r"$\Delta_{PT,Laplace}$", "true/delta_pt_ridge": r"$\Delta_{PT,Ridge}$"}


def laplace(client, sweep):
    """The Analysis of a sweep with task_prior=laplace: per M, T_True loss/D of the transformer, dMMSE,
    ridge and the Laplace Bayes predictor, and the transformer's Delta to the last two."""
    if sweep.params.get("task_prior", "gaussian") != "laplace" and "task_prior" not in sweep.axes:
        raise InputError("laplace needs a sweep with task_prior=laplace (its Bayes predictor is scored there)")
    table = {"curve": [], "n_tasks": [], **{name: [] for name in LOSSES}, **{key: [] for key in DELTAS}}
    table["train_run"] = []
    metrics, findings, runs = {}, [], []
    for row in sweep.rows:
        baselines = client.get_run(row["evaluate_baselines_run"]).data.metrics
        trained = client.get_run(row["train_run"]).data.metrics
        if "true/laplace/loss_noiseless" not in baselines:
            continue  # a gaussian point of a sweep over task_prior
        table["curve"].append(sweep.curve(row))
        table["n_tasks"].append(row["n_tasks"])
        table["pt"].append(trained["true/pt/loss_noiseless"])
        for name in ("dmmse", "ridge", "laplace"):
            table[name].append(baselines.get(f"true/{name}/loss_noiseless", math.nan))
        for key in DELTAS:
            table[key].append(trained[key])
        table["train_run"].append(row["train_run"])
        runs += [row["train_run"], row["evaluate_baselines_run"]]
        suffix = sweep.metric_key(row)
        closer = trained["true/delta_pt_laplace"] / trained["true/delta_pt_ridge"]
        metrics[f"laplace_over_ridge_delta/{suffix}"] = closer
        findings.append(
            f"- M = {row['n_tasks']}{' (' + sweep.curve(row) + ')' if sweep.curve(row) else ''}: T_True loss/D "
            f"{trained['true/pt/loss_noiseless']:.3f} (transformer), {baselines['true/laplace/loss_noiseless']:.3f} "
            f"(Laplace Bayes), {baselines['true/ridge/loss_noiseless']:.3f} (ridge); Delta_PT,Laplace "
            f"{trained['true/delta_pt_laplace']:.4f} against Delta_PT,Ridge {trained['true/delta_pt_ridge']:.4f}"
            f" ({'closer to the Laplace predictor' if closer < 1 else 'closer to ridge'})"
        )
    if not table["n_tasks"]:
        raise InputError("laplace found no point scored against the Laplace predictor in this sweep")
    return Analysis(
        figures={"laplace/laplace.png": _figure(sweep, table)},
        tables={"laplace/laplace.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(runs)),
    )


def _figure(sweep, table):
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(11, 4.2))
    loss_ax, delta_ax = fig.subplots(1, 2)
    for ls, suffix, xs, values in pooled_curves(table, x_of):
        for name in LOSSES:
            label, color = CURVE_STYLE[name]
            with_intervals(loss_ax, xs, *values(name), color=color, ls=ls, label=label + suffix)
        for (key, label), color in zip(DELTAS.items(), ("C4", "C2"), strict=True):
            with_intervals(delta_ax, xs, *values(key), color=color, ls=ls, label=label + suffix)
    loss_ax.set(yscale="log", xlabel="log2 M", ylabel="T_True loss / D (vs x.w)", title="fresh Laplace tasks")
    delta_ax.set(yscale="log", xlabel="log2 M", title="the transformer against the two Bayes predictors")
    for ax in (loss_ax, delta_ax):
        ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    title = "A Laplace task prior: which Bayes predictor does the transformer approach?"
    fig.suptitle(title + replicates_note(table) + "\n" + sweep.setting)
    fig.tight_layout()
    return fig
