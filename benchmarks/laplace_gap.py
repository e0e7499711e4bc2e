"""Where the Laplace prior's Bayes predictor and ridge differ most (paper Fig. 14 at CPU scale): a measurement
for choosing the Fig. 14 setting, with intervals.

For each setting (D, K, sigma), fresh Laplace tasks (i.i.d. coordinates of variance 1) and their T_True
sequences are drawn (n per setting), both predictors are computed on every prefix, and per sequence
(mean over the K positions, / D): ridge's loss against the noiseless targets minus the Laplace predictor's,
and the squared gap between the two predictors (Delta_Laplace,Ridge). Printed: ridge's loss, the Laplace
predictor's, the relative gap with Student's 95% interval over sequences, and Delta_Laplace,Ridge relative
to ridge's loss (how far apart a transformer must be able to tell them).

    python -m benchmarks.laplace_gap                         # the default grid, 2048 sequences each
    python -m benchmarks.laplace_gap --settings 4,8,0.35 --n 4096
"""

import itertools
import time

import click
import numpy as np

from baselines import laplace_predictions, ridge_predictions
from pipeline.stats import t_interval
from tasks import EvalSettings, make_eval_set, make_pool

GRID = list(itertools.product((4, 8), (8, 16), (0.1, 0.25, 0.35, 0.5)))


def measure(n_dims, n_points, noise_scale, n, iterations, seed=0):
    """(ridge loss, Laplace loss, relative gap (mean, low, high), Delta_Laplace,Ridge / ridge loss)."""
    pool = make_pool(float("inf"), n_dims, seed=seed, task_scale=1.0, task_prior="laplace")
    settings = EvalSettings(n, n_points, noise_scale, 1.0, seed + 1, seed + 2, seed + 3)
    eval_set = make_eval_set("true", pool, settings)
    xs, ys = eval_set.xs.astype(np.float64), eval_set.ys.astype(np.float64)
    target = np.einsum("nkd,nd->nk", xs, eval_set.ws.astype(np.float64))
    ridge = ridge_predictions(xs, ys, lam=noise_scale**2)
    laplace = laplace_predictions(xs, ys, noise_scale=noise_scale, task_scale=1.0, iterations=iterations, seed=seed)
    per_ridge = ((ridge - target) ** 2).mean(axis=1) / n_dims  # (n,)
    per_laplace = ((laplace - target) ** 2).mean(axis=1) / n_dims
    gap = t_interval((per_ridge - per_laplace) / per_ridge.mean())
    apart = ((ridge - laplace) ** 2).mean() / n_dims / per_ridge.mean()
    return per_ridge.mean(), per_laplace.mean(), gap, apart


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--settings", "chosen", default="", help="D,K,sigma[;D,K,sigma...] (default: a grid of 16)")
@click.option("--n", default=2048, show_default=True, help="sequences per setting")
@click.option("--iterations", default=1000, show_default=True, help="Gibbs sweeps of the Laplace predictor")
def main(chosen, n, iterations):
    grid = [tuple(float(v) for v in s.split(",")) for s in chosen.split(";")] if chosen else GRID
    print("| D | K | sigma | D/sigma^2 | ridge loss/D | Laplace loss/D | gap (95% interval) | Delta_L,R / ridge | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_dims, n_points, noise_scale in grid:
        start = time.perf_counter()
        ridge, laplace, (gap, low, high), apart = measure(int(n_dims), int(n_points), noise_scale, n, iterations)
        print(
            f"| {n_dims:g} | {n_points:g} | {noise_scale:g} | {n_dims / noise_scale**2:.0f} | {ridge:.4f} | "
            f"{laplace:.4f} | {gap:.2%} ({low:.2%} to {high:.2%}) | {apart:.2%} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
