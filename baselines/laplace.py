"""The Bayes predictor for a Laplace task prior (paper Fig. 14): the posterior mean of w when its
coordinates are i.i.d. Laplace with scale b = tau / sqrt(2) (variance tau^2, as the Gaussian prior's) and
y_j = w . x_j + N(0, sigma^2). It has no closed form in D > 1.

It is computed by the Gibbs sampler on the Laplace's Gaussian scale-mixture form (Park & Casella 2008,
with sigma known): w_d | v_d ~ N(0, v_d) with v_d ~ Exponential(mean 2 b^2) is Laplace(b), and

    w | v, data ~ N(m, P^-1),  P = G / sigma^2 + diag(1 / v),  m = P^-1 b_k / sigma^2,
    1 / v_d | w ~ InverseGaussian(mean 1 / (b |w_d|), shape 1 / b^2),

over the prefix moments G, b_k of baselines.prefix. The estimate is the Rao-Blackwellised average of the
conditional means m over the iterations after burn-in, which has far less Monte Carlo error than the
average of the draws. All prefixes of all sequences run as one batch of independent chains, seeded.
tests/test_laplace.py measures the error against numerical integration in D = 1 and 2.
"""

import math

import numpy as np

from baselines.checks import as_context
from baselines.prefix import prefix_moments, sequence_blocks

ITERATIONS = 2000
BURN_IN = 200
# 1 / v_d is drawn with mean 1 / (b |w_d|): a draw of exactly 0 would make it infinite.
SMALLEST_W = 1e-12


def laplace_predictions(xs, ys, *, noise_scale, task_scale, iterations=ITERATIONS, burn_in=BURN_IN, seed=0):
    """Posterior-mean predictions under the i.i.d. Laplace prior of standard deviation `task_scale`, every
    prefix (position k from the k pairs before it; 0 at k = 1, the prior mean). `iterations` Gibbs sweeps
    of which the first `burn_in` are discarded. Shapes: xs (B, K, D), ys (B, K) -> (B, K), float64."""
    xs, ys = as_context(xs, ys)
    for name, value in (("noise_scale", noise_scale), ("task_scale", task_scale)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if isinstance(iterations, bool) or int(iterations) != iterations or not 0 <= burn_in < iterations:
        raise ValueError(f"need 0 <= burn_in < iterations, got burn_in={burn_in!r}, iterations={iterations!r}")
    rng = np.random.default_rng(seed)
    scale = task_scale / math.sqrt(2.0)
    preds = np.empty(ys.shape)
    for block in sequence_blocks(xs):
        gram, moment = prefix_moments(xs[block], ys[block])  # (b, K, D, D), (b, K, D)
        w_hat = _posterior_means(gram, moment, noise_scale, scale, int(iterations), int(burn_in), rng)
        preds[block] = np.einsum("bkd,bkd->bk", xs[block], w_hat)
    return preds


def _posterior_means(gram, moment, noise_scale, scale, iterations, burn_in, rng):
    """Rao-Blackwellised Gibbs estimates of E[w | data] for every row of (gram, moment): (..., D)."""
    shape = moment.shape
    gram = gram.reshape(-1, shape[-1], shape[-1]) / noise_scale**2
    rhs = moment.reshape(-1, shape[-1]) / noise_scale**2
    inv_v = 1.0 / np.maximum(rng.exponential(2 * scale**2, size=rhs.shape), SMALLEST_W)  # v from its prior
    total = np.zeros_like(rhs)
    diagonal = np.arange(shape[-1])
    for i in range(iterations):
        precision = gram.copy()
        precision[:, diagonal, diagonal] += inv_v
        chol = np.linalg.cholesky(precision)  # P = L L^T
        mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
        if i >= burn_in:
            total += mean
        noise = rng.standard_normal(rhs.shape)
        w = mean + np.linalg.solve(np.swapaxes(chol, -1, -2), noise[..., None])[..., 0]  # N(m, P^-1)
        inv_v = rng.wald(1.0 / (scale * np.maximum(np.abs(w), SMALLEST_W)), 1.0 / scale**2)
    return (total / (iterations - burn_in)).reshape(shape)
