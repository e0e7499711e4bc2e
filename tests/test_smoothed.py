"""Smoothed dMMSE (paper Fig. 12) against a brute-force loop written from the mixture prior: per prefix,
each component's evidence N(y | X w_i, sigma^2 I + s^2 X X^T) from scipy and its Gaussian posterior mean,
averaged with the normalised evidences. Limits: s = 0 is dMMSE, one task at 0 is ridge."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from test_baselines import CASES, assert_close, dmmse_reference, regression_data

import baselines.dmmse
import baselines.prefix
from baselines import dmmse_predictions, ridge_predictions
from baselines.metrics import loss_vs_noiseless
from baselines.smoothed import best_smoothing, smoothed_dmmse_predictions


def smoothed_reference(xs, ys, pool, noise_scale, smoothing):
    """sum_i pi_i mu_i with pi_i prop. to N(y_<k | X w_i, sigma^2 I + s^2 X X^T) and
    mu_i = (I/s^2 + X^T X/sigma^2)^-1 (w_i/s^2 + X^T y/sigma^2), per sequence and prefix."""
    batch, n_points, n_dims = xs.shape
    preds = np.zeros((batch, n_points))
    for b in range(batch):
        for k in range(n_points):
            x, y = xs[b, :k], ys[b, :k]
            if k == 0:
                log_w = np.zeros(len(pool))
            else:
                cov = noise_scale**2 * np.eye(k) + smoothing**2 * x @ x.T
                log_w = np.array([multivariate_normal.logpdf(y, x @ w, cov) for w in pool])
            weights = np.exp(log_w - logsumexp(log_w))
            sigma = np.linalg.inv(np.eye(n_dims) / smoothing**2 + x.T @ x / noise_scale**2)
            means = (pool / smoothing**2 + x.T @ y / noise_scale**2) @ sigma  # (M, D), sigma symmetric
            preds[b, k] = xs[b, k] @ (weights @ means)
    return preds


@pytest.mark.parametrize("n_dims, n_points, n_tasks, noise_scale", CASES)
@pytest.mark.parametrize("smoothing", [0.05, 0.5, 3.0])
def test_smoothed_dmmse_equals_the_mixture_posterior_mean(n_dims, n_points, n_tasks, noise_scale, smoothing):
    rng = np.random.default_rng(n_dims * 100 + n_tasks + 7)
    pool = rng.standard_normal((min(n_tasks, 60), n_dims))
    xs, ys = regression_data(rng, 4, n_points, n_dims, noise_scale, pool)
    preds = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=noise_scale, smoothing=smoothing)
    assert preds.shape == (4, n_points) and preds.dtype == np.float64
    assert_close(preds, smoothed_reference(xs, ys, pool, noise_scale, smoothing), rtol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_smoothed_dmmse_streams_over_pool_chunks_and_blocks(backend, monkeypatch):
    monkeypatch.setattr(baselines.dmmse, "ROWS", 7)
    monkeypatch.setattr(baselines.dmmse, "POOL_CHUNK", 5)
    monkeypatch.setattr(baselines.prefix, "BLOCK_BYTES", 4096)
    rng = np.random.default_rng(12)
    pool = rng.standard_normal((37, 3))
    xs, ys = regression_data(rng, 9, 10, 3, 0.5, pool)
    preds = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, smoothing=0.3, backend=backend)
    assert_close(preds, smoothed_reference(xs, ys, pool, 0.5, 0.3), rtol=1e-9)


def test_smoothing_zero_is_dmmse_bit_for_bit_and_small_smoothing_tends_to_it():
    rng = np.random.default_rng(13)
    pool = rng.standard_normal((30, 4))
    xs, ys = regression_data(rng, 6, 12, 4, 0.5, pool)
    dmmse = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5)
    zero = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, smoothing=0.0)
    np.testing.assert_array_equal(zero, dmmse)
    tiny = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, smoothing=1e-5)
    assert_close(tiny, dmmse_reference(xs, ys, pool, 0.5), rtol=1e-6)


def test_one_task_at_the_origin_is_ridge_with_lambda_sigma2_over_s2():
    rng = np.random.default_rng(14)
    xs, ys = regression_data(rng, 5, 11, 3, 0.5, rng.standard_normal((5, 3)))
    for smoothing in (0.3, 1.0, 4.0):
        preds = smoothed_dmmse_predictions(xs, ys, pool=np.zeros((1, 3)), noise_scale=0.5, smoothing=smoothing)
        assert_close(preds, ridge_predictions(xs, ys, lam=0.25 / smoothing**2))


def test_best_smoothing_finds_the_minimum_of_the_held_out_loss():
    rng = np.random.default_rng(15)
    pool = rng.standard_normal((16, 3))
    ws = rng.standard_normal((200, 3))  # fresh tasks: T_True
    xs = rng.standard_normal((200, 6, 3))
    ys = np.einsum("bkd,bd->bk", xs, ws) + 0.5 * rng.standard_normal((200, 6))
    best, loss = best_smoothing(xs, ys, ws, pool=pool, noise_scale=0.5)

    def loss_at(s):
        preds = smoothed_dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, smoothing=s)
        return loss_vs_noiseless(preds, xs, ws).mean()

    assert loss == pytest.approx(loss_at(best), rel=1e-12)
    grid = [0.0, *np.logspace(-3, 1, 41)]
    assert loss <= min(loss_at(s) for s in grid) + 1e-9  # no grid point beats the search
    assert best > 0 and loss < loss_at(0.0)  # on fresh tasks smoothing beats dMMSE


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"smoothing": -0.1}, "smoothing must be a finite number >= 0, got -0.1"),
        ({"smoothing": float("nan")}, "smoothing must be a finite number >= 0, got nan"),
        ({"smoothing": 0.1, "noise_scale": 0.0}, "noise_scale must be a positive finite number, got 0.0"),
    ],
)
def test_bad_smoothing_raises_naming_the_value(kwargs, message):
    rng = np.random.default_rng(16)
    xs, ys, pool = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4)), rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match=message):
        smoothed_dmmse_predictions(xs, ys, pool=pool, **{"noise_scale": 0.5} | kwargs)
