"""Linear mode connectivity (paper Fig. 11): the training loss along the straight line between the weights
of the transformer trained at M and the one trained at M = inf,

    barrier = max_t  L((1 - t) theta_M + t theta_inf) - ((1 - t) L(theta_M) + t L(theta_inf)),

with L the training loss (MSE against the noisy y, as the training step takes it) on fresh sequences of
the M = inf distribution and of the model's own pool. The paper's claim: for M above the threshold the
barrier is about the one between two M = inf models, and large below it.

The comparison means something only when both models started from the same weights: every training of a
sweep does (one model_seed for all M, unless model_seed is an axis, and then pairs stay within a value).
The models are the sweep's registered ones; a sweep with two or more M = inf trainings (e.g. an axis
`data_seed=101,201`) also gets the barrier between the first two of them, the paper's reference.
"""

import copy
import math

import numpy as np
import torch
from matplotlib.figure import Figure

from pipeline.analysis.plots import pooled, pooled_curves, with_intervals
from pipeline.analysis.sweep_runs import Analysis, registered_model_uri
from pipeline.cli import open_pool
from pipeline.figures import m_axis
from pipeline.generate_pool import POOL_ARTIFACT
from pipeline.presets import REPLICATE
from pipeline.stats import t_interval
from pipeline.tracking.registry import load_registered
from pipeline.types import InputError
from tasks import DataSettings, sample_batch

DISTS = {"true": "fresh tasks (M = inf)", "pool": "the model's own pool"}


def lmc(client, sweep, *, alphas, fresh, seed):
    """The Analysis of `sweep`: per finite M, the losses at `alphas` points t in [0, 1] between PT(M) and the
    PT(inf) of the same curve (other axes), on `fresh` sequences per distribution drawn with `seed`."""
    if not any(r["n_tasks"] == math.inf for r in sweep.rows):
        raise InputError("lmc needs a sweep with M = inf: each model is joined to the M = inf one")
    ts = np.linspace(0.0, 1.0, alphas)
    table = {"pair": [], "curve": [], "n_tasks": [], "t": [], "true": [], "pool": [], "train_run": []}
    metrics, findings, curves, runs = {}, [], {}, []
    infs = [r for r in sweep.rows if r["n_tasks"] == math.inf]
    by_curve = {sweep.curve(r): r for r in infs}
    pairs = [(r, by_curve.get(sweep.curve(r))) for r in sweep.rows if math.isfinite(r["n_tasks"])]
    reference = _reference(infs)
    if reference:
        pairs.append(reference)  # two M = inf models from the same initial weights
    models = {}

    def model(row):
        if row["train_run"] not in models:
            models[row["train_run"]] = load_registered(registered_model_uri(client, row["train_run"]))
        return models[row["train_run"]]

    for row, inf in pairs:
        if inf is None:
            continue
        spec, task_scale = _data(row, sweep, fresh, seed)
        pool = None
        if math.isfinite(row["n_tasks"]):
            pool = torch.from_numpy(open_pool(f"runs:/{row['generate_pool_run']}/{POOL_ARTIFACT}").tasks)
        batches = {
            "true": sample_batch(spec, 0, pool=None, task_scale=task_scale),
            "pool": sample_batch(spec, 1, pool=pool, task_scale=task_scale),
        }
        losses = _path_losses(model(row), model(inf), ts, batches)
        reference = not math.isfinite(row["n_tasks"])
        name = "inf_vs_inf" if reference else sweep.metric_key(row)
        curves[name] = losses
        runs += [row["train_run"], inf["train_run"]]
        for i, t in enumerate(ts):
            table["pair"].append(name)
            table["curve"].append(sweep.curve(row))
            table["n_tasks"].append(row["n_tasks"])
            table["t"].append(float(t))
            for dist in DISTS:
                table[dist].append(float(losses[dist][i]))
            table["train_run"].append(row["train_run"])
        barriers = {dist: barrier(ts, losses[dist]) for dist in DISTS}
        for dist, value in barriers.items():
            metrics[f"barrier/{dist}/{name}"] = value
        what = "two M = inf models" if reference else f"M = {row['n_tasks']} and M = inf"
        findings.append(
            f"- {what}: barrier {barriers['true']:.4f} on fresh tasks, {barriers['pool']:.4f} on "
            f"{'a second fresh draw' if reference else 'its pool'} (endpoints: {losses['true'][0]:.3f}, "
            f"{losses['true'][-1]:.3f})"
        )
    if not curves:
        raise InputError("lmc needs a sweep with a finite M and M = inf on the same curve")
    return Analysis(
        figures={"lmc/lmc.png": _figure(sweep, table, curves, ts)},
        tables={"lmc/lmc.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(runs)),
    )


def _reference(infs):
    """The reference pair: two M = inf trainings from the same initial weights (the same replicate, which
    draws the model seed; they differ by another axis, such as the data seed), or None."""
    for i, first in enumerate(infs):
        for second in infs[i + 1 :]:
            if first.get(REPLICATE, 0) == second.get(REPLICATE, 0):
                return second, first
    return None


def _data(row, sweep, fresh, seed):
    value = {key: row.get(key, sweep.params[key]) for key in ("n_points", "n_dims", "noise_scale", "data_scale")}
    spec = DataSettings(
        fresh,
        int(value["n_points"]),
        int(value["n_dims"]),
        float(value["noise_scale"]),
        float(value["data_scale"]),
        seed,
        seed,
        seed,
    )
    return spec, float(row.get("task_scale", sweep.params["task_scale"]))


@torch.no_grad()
def _path_losses(start, end, ts, batches):
    """{dist: losses at each t} of the model with weights (1 - t) start + t end."""
    if start.config != end.config:
        raise InputError(f"lmc joins models of one architecture, got {start.config} and {end.config}")
    a, b = start.state_dict(), end.state_dict()
    between = copy.deepcopy(start)
    losses = {dist: [] for dist in batches}
    for t in ts:
        between.load_state_dict({k: (1 - t) * a[k] + t * b[k] if a[k].is_floating_point() else a[k] for k in a})
        for dist, (xs, _, ys) in batches.items():
            losses[dist].append(float(torch.nn.functional.mse_loss(between(xs, ys), ys)))
    return {dist: np.array(values) for dist, values in losses.items()}


def barrier(ts, losses):
    """max over t of the loss above the chord between the endpoints' losses."""
    return float(np.max(losses - ((1 - ts) * losses[0] + ts * losses[-1])))


def _figure(sweep, table, curves, ts):
    """Per curve of the other axes (the replicates and any seed axis pooled: plots.pooled_curves), the barrier
    against M per distribution (mean with its 95% interval) beside the reference barrier of two M = inf
    models; and the loss along the line per M and curve (mean, band) beside the two M = inf models' line."""
    x_of, ticks = m_axis(r["log2_n_tasks"] for r in sweep.rows)
    fig = Figure(figsize=(15, 4.4))
    bar_ax, true_ax, pool_ax = fig.subplots(1, 3)
    first = {name: table["pair"].index(name) for name in curves if name != "inf_vs_inf"}  # a row of each pair
    barriers = {"curve": [table["curve"][i] for i in first.values()]}
    barriers["n_tasks"] = [table["n_tasks"][i] for i in first.values()]
    barriers |= {dist: [barrier(ts, curves[name][dist]) for name in first] for dist in DISTS}
    for d, dist in enumerate(DISTS):
        for ls, suffix, xs, values in pooled_curves(barriers, x_of):
            with_intervals(bar_ax, xs, *values(dist), color=f"C{d}", ls=ls, label=DISTS[dist] + suffix)
        if "inf_vs_inf" in curves:
            reference = barrier(ts, curves["inf_vs_inf"][dist])
            other = DISTS["true"] if dist == "true" else "a second fresh draw"
            bar_ax.axhline(reference, color=f"C{d}", ls="-.", lw=1, label=f"two M = inf models ({other})")
    bar_ax.set(xlabel="log2 M", ylabel="barrier (training loss)", title="barrier between PT(M) and PT(inf)")
    ticks(bar_ax)
    bar_ax.legend(fontsize=7)
    by_m = {}  # (curve, M) -> its pairs
    for name, i in first.items():
        by_m.setdefault((pooled(table["curve"][i]), table["n_tasks"][i]), []).append(name)
    for ax, dist in ((true_ax, "true"), (pool_ax, "pool")):
        for c, ((curve, m), names) in enumerate(sorted(by_m.items(), key=lambda item: (item[0][0], item[0][1]))):
            stacked = np.array([curves[name][dist] for name in names])  # (pairs, points on the line)
            mean, low, high = np.array([t_interval(stacked[:, j]) for j in range(len(ts))]).T
            label = f"M = {m:g} and M = inf{f' ({curve})' if curve else ''}, {len(names)} pair(s)"
            ax.plot(ts, mean, marker="o", ms=3, color=f"C{c % 10}", label=label)
            if np.isfinite(low).all():
                ax.fill_between(ts, low, high, color=f"C{c % 10}", alpha=0.15, lw=0)
        if "inf_vs_inf" in curves:
            other = "fresh tasks" if dist == "true" else "a second fresh draw"
            ax.plot(ts, curves["inf_vs_inf"][dist], color="grey", ls="-.", label=f"two M = inf models ({other})")
        ax.set(xlabel="t (0: PT(M), 1: PT(inf))", ylabel="training loss", title=f"along the line, {DISTS[dist]}")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in (bar_ax, true_ax, pool_ax):
        ax.grid(alpha=0.3)
    title = "Linear mode connectivity: training loss on the straight line between the weights"
    fig.suptitle(title + " (means over replicates and seeds, 95% intervals)\n" + sweep.setting)
    fig.tight_layout()
    return fig
