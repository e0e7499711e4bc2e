"""Interpolation paths (paper Fig. 5): loss/D of the transformer, dMMSE and ridge on sequences whose task
lies on the path between two pool tasks (Eq. 5, tasks/paths.py), against alpha, averaged over random
pairs; one panel per M. The paper's claims: dMMSE's loss bumps near alpha = 1/2 at every M; the
transformer follows dMMSE at small M, lies between dMMSE and ridge in between, and is flat at ridge's
level at large M.

The transformers are the sweep's registered models; the pools its generate_pool runs' files. The
predictions on the new sequences are computed here: they are nowhere tracked."""

import math

import numpy as np
from matplotlib.figure import Figure

from baselines import dmmse_predictions, ridge_predictions
from pipeline.analysis.sweep_runs import Analysis, registered_model_uri
from pipeline.cli import open_pool
from pipeline.evaluation import transformer_predictions
from pipeline.figures import STYLE
from pipeline.generate_pool import POOL_ARTIFACT
from pipeline.presets import REPLICATE
from pipeline.tracking.registry import load_registered
from pipeline.types import InputError
from tasks import EvalSet, path_sequences

SETTINGS = ("noise_scale", "data_scale", "n_points")


def interpolation(client, sweep, *, pairs, alphas, sequences, seed):
    """The Analysis of `sweep`: for each finite M (M >= 2) of each curve, the three predictors' loss/D
    (against the noiseless targets) at `alphas` evenly spaced points of [0, 1], over `pairs` random pairs
    with `sequences` sequences each."""
    grid = np.linspace(0.0, 1.0, alphas)
    table = {"curve": [], "n_tasks": [], "alpha": [], **{name: [] for name in STYLE}, "train_run": []}
    metrics, findings, panels, runs = {}, [], {}, []
    for row in sweep.rows:
        if not (math.isfinite(row["n_tasks"]) and row["n_tasks"] >= 2):
            continue
        value = {key: float(row.get(key, sweep.params[key])) for key in SETTINGS}
        pool = open_pool(f"runs:/{row['generate_pool_run']}/{POOL_ARTIFACT}")
        xs, ws, ys, _ = path_sequences(
            pool.tasks,
            pairs=pairs,
            alphas=grid,
            sequences=sequences,
            n_points=int(value["n_points"]),
            noise_scale=value["noise_scale"],
            data_scale=value["data_scale"],
            seed=seed,
        )
        flat_xs, flat_ys = xs.reshape(-1, *xs.shape[-2:]), ys.reshape(-1, ys.shape[-1])
        model = load_registered(registered_model_uri(client, row["train_run"]))
        noise = value["noise_scale"]
        preds = {
            "pt": transformer_predictions(
                model, EvalSet(flat_xs.astype(np.float32), None, flat_ys.astype(np.float32)), device="cpu"
            ),
            "dmmse": dmmse_predictions(flat_xs, flat_ys, pool=pool.tasks, noise_scale=noise),
            "ridge": ridge_predictions(flat_xs, flat_ys, lam=noise**2 / pool.task_scale**2),
        }
        targets = np.einsum("pasku,pau->pask", xs, ws)
        losses = {
            name: ((p.reshape(targets.shape) - targets) ** 2).mean(axis=(0, 2, 3)) / xs.shape[-1]
            for name, p in preds.items()
        }
        curve, m = sweep.curve(row), row["n_tasks"]
        shown = ", ".join(f"{axis}={row[axis]}" for axis in sweep.axes[1:] if axis != REPLICATE)
        panels.setdefault((shown, m), []).append(losses)  # one panel per point, its replicates together
        runs += [row["train_run"], row["generate_pool_run"]]
        for a, alpha in enumerate(grid):
            table["curve"].append(curve)
            table["n_tasks"].append(m)
            table["alpha"].append(float(alpha))
            for name in STYLE:
                table[name].append(float(losses[name][a]))
            table["train_run"].append(row["train_run"])
        suffix = sweep.metric_key(row)
        middle = int(np.argmin(np.abs(grid - 0.5)))
        for name in STYLE:
            bump = losses[name][middle] - (losses[name][0] + losses[name][-1]) / 2
            metrics[f"bump/{name}/{suffix}"] = float(bump)
        findings.append(
            f"- M = {m}{' (' + curve + ')' if curve else ''}: at alpha = {grid[middle]:.2f} loss/D is "
            f"{losses['pt'][middle]:.3f} (transformer), {losses['dmmse'][middle]:.3f} (dMMSE), "
            f"{losses['ridge'][middle]:.3f} (ridge); dMMSE's bump over its endpoints' mean: "
            f"{metrics[f'bump/dmmse/{suffix}']:+.3f}"
        )
    if not panels:
        raise InputError("interpolation needs a sweep with a finite M >= 2 (paths run between pool tasks)")
    return Analysis(
        figures={"interpolation/interpolation.png": _figure(panels, grid, sweep.setting)},
        tables={"interpolation/interpolation.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(runs)),
    )


def _figure(panels, grid, setting):
    """A panel per grid point: each predictor's loss/D along the path, the mean over the point's replicates
    (bold) and each replicate's curve (thin: replicates differ in their pools, so their levels differ more
    than the predictors on one pool do, and a band over them would hide that comparison)."""
    columns = min(4, len(panels))  # rows of four panels: seven M in one row would be unreadable
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.5 * columns, 3.8 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    ordered = sorted(panels.items(), key=lambda item: item[0][1])
    for ax, ((curve, m), members) in zip(axes, ordered, strict=False):
        for name, (label, color) in STYLE.items():
            runs = np.array([losses[name] for losses in members])
            ax.plot(grid, runs.mean(axis=0), marker="o", ms=3, lw=2, color=color, label=label)
            if len(members) > 1:  # each replicate's own pool: the comparison that counts is within one
                ax.plot(grid, runs.T, color=color, lw=0.8, alpha=0.35)
        ax.set(xlabel="alpha (0: w_j, 1: w_i)", ylabel="loss / D (vs x.w)", yscale="log")
        replicates = f", {len(members)} replicates" if len(members) > 1 else ""
        ax.set_title(f"M = 2^{math.log2(m):g}" + (f" ({curve})" if curve else "") + replicates)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="mean (bold), each replicate (thin)", title_fontsize=7)
    fig.suptitle("Along paths between two pool tasks (Eq. 5), averaged over random pairs\n" + setting)
    fig.tight_layout()
    return fig
