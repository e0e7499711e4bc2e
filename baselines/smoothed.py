"""Smoothed dMMSE (paper Fig. 12): the posterior mean under the prior (1/M) sum_i N(w_i, s^2 I), a
mixture of isotropic Gaussians of standard deviation s = `smoothing` centred on the pool tasks.

With the likelihood y_j = w . x_j + N(0, sigma^2) over the pairs before position k (X, y; G = X^T X,
b = X^T y), each component's posterior is Gaussian,

    w | i ~ N(mu_i, Sigma),   Sigma = (I / s^2 + G / sigma^2)^-1,   mu_i = Sigma (w_i / s^2 + b / sigma^2),

and its weight is its evidence N(y | X w_i, sigma^2 I + s^2 X X^T). With A = sigma^2 I + s^2 G, the
push-through identity X^T (sigma^2 I + s^2 X X^T)^-1 = A^-1 X^T makes the task-dependent part of the
log-evidence

    (A^-1 b) . w_i - 1/2 w_i^T (A^-1 G) w_i,

which is dMMSE's log-weight (2 b . w - w^T G w) / (2 sigma^2) with (G, b) replaced by
sigma^2 A^-1 (G, b) (A^-1 commutes with G). So the weights are dMMSE's softmax, streamed over the pool
in the same way (baselines/dmmse.py, memory independent of M), and the posterior mean is

    w_hat = sum_i pi_i mu_i = A^-1 (sigma^2 w_bar + s^2 b),   w_bar = sum_i pi_i w_i.

At s = 0 this is dMMSE; with one task w_0 = 0 it is ridge with lambda = sigma^2 / s^2.
"""

import math

import numpy as np
from scipy.optimize import minimize_scalar

from baselines.checks import as_context
from baselines.dmmse import mixture_predictions
from baselines.metrics import loss_vs_noiseless

# The search interval of log10 s: from a hundredth of dMMSE's noise-free limit to well past the task scale.
LOG10_BOUNDS = (-3.0, 1.0)


def smoothed_dmmse_predictions(
    xs, ys, *, pool, noise_scale, smoothing, workers=None, progress=None, backend=None, device=None
):
    """Posterior-mean predictions under the Gaussian mixture of standard deviation `smoothing` on
    `pool`, every prefix (position k from the k pairs before it). Shapes: xs (B, K, D), ys (B, K),
    pool (M, D) -> (B, K), float64. `workers`, `progress`, `backend` and `device` as in dmmse_predictions."""
    return mixture_predictions(
        xs,
        ys,
        pool=pool,
        noise_scale=noise_scale,
        smoothing=smoothing,
        workers=workers,
        progress=progress,
        backend=backend,
        device=device,
    )


def best_smoothing(xs, ys, ws, *, pool, noise_scale, bounds=LOG10_BOUNDS, xatol=0.01):
    """The s that minimises the mean loss/D against the noiseless targets x . w on the held-out
    sequences (xs, ys) drawn with tasks ws (B, D): a bounded 1-D search on log10 s within `bounds`, with
    s = 0 (dMMSE) as a candidate too. Returns (s, its loss/D)."""
    xs, ys = as_context(xs, ys)
    ws = np.asarray(ws, dtype=np.float64)
    if ws.shape != (xs.shape[0], xs.shape[2]):
        raise ValueError(f"ws must have shape (B, D) = {(xs.shape[0], xs.shape[2])}, got {ws.shape}")
    low, high = bounds
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"bounds must be two finite log10 values, low < high, got {bounds!r}")

    def loss(smoothing):
        preds = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=noise_scale, smoothing=smoothing)
        return float(loss_vs_noiseless(preds, xs, ws).mean())

    found = minimize_scalar(lambda t: loss(10.0**t), bounds=bounds, method="bounded", options={"xatol": xatol})
    candidates = [(loss(0.0), 0.0), (float(found.fun), 10.0 ** float(found.x))]
    best_loss, best = min(candidates)
    return best, best_loss
