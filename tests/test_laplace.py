"""The Laplace-prior posterior mean (paper Fig. 14) against numerical integration of the posterior in
D = 1 (quad) and D = 2 (dblquad over the four quadrants, the prior's kinks on their edges).

Measured with 3800 kept Gibbs sweeps: the largest error over these prefixes is 0.005 (D = 1) and 0.009
(D = 2) on predictions whose prior standard deviation is |x| tau ~ sqrt(D); the tests allow 0.02, and check
that the error is far below ridge's distance from the exact answer, so a Gaussian-prior estimator could not
pass for it."""

import math

import numpy as np
import pytest
from scipy import integrate

from baselines import ridge_predictions
from baselines.laplace import laplace_predictions

NOISE, TAU, R = 0.5, 1.0, 12.0


def exact_mean(x, y):
    """E[w | data] for the Laplace(tau / sqrt 2) prior by quadrature, per coordinate."""
    scale, n_dims = TAU / math.sqrt(2), x.shape[1]
    gram, moment = x.T @ x, x.T @ y

    def log_post(w):
        w = np.asarray(w)
        return -(w @ gram @ w - 2 * moment @ w) / (2 * NOISE**2) - np.abs(w).sum() / scale

    offset = log_post(np.linalg.solve(gram + NOISE**2 / TAU**2 * np.eye(n_dims), moment))  # no underflow
    halves = ((-R, 0.0), (0.0, R))
    if n_dims == 1:
        moments = [
            sum(
                integrate.quad(lambda w, k=k: w**k * math.exp(log_post([w]) - offset), a, b, epsrel=1e-12)[0]
                for a, b in halves
            )
            for k in (0, 1)
        ]
        return np.array([moments[1] / moments[0]])
    means = []
    for coordinate in range(2):
        moments = [0.0, 0.0]
        for a0, a1 in halves:
            for b0, b1 in halves:
                for k in (0, 1):
                    f = lambda v, u, k=k, c=coordinate: (u, v)[c] ** k * math.exp(log_post([u, v]) - offset)  # noqa: E731
                    moments[k] += integrate.dblquad(f, a0, a1, b0, b1, epsabs=1e-12, epsrel=1e-10)[0]
        means.append(moments[1] / moments[0])
    return np.array(means)


@pytest.mark.parametrize("n_dims", [1, 2])
def test_laplace_posterior_mean_matches_numerical_integration(n_dims):
    rng = np.random.default_rng(n_dims)
    xs = rng.standard_normal((3, 5, n_dims))
    ws = rng.laplace(0.0, TAU / math.sqrt(2), size=(3, n_dims))
    ys = np.einsum("bkd,bd->bk", xs, ws) + NOISE * rng.standard_normal((3, 5))
    preds = laplace_predictions(xs, ys, noise_scale=NOISE, task_scale=TAU, iterations=4000, seed=1)
    exact = np.zeros((3, 5))
    for b in range(3):
        for k in range(1, 5):
            exact[b, k] = xs[b, k] @ exact_mean(xs[b, :k], ys[b, :k])
    assert np.all(preds[:, 0] == 0)  # no context: the prior mean
    error = np.abs(preds - exact).max()
    assert error < 0.02, error
    ridge = ridge_predictions(xs, ys, lam=NOISE**2 / TAU**2)
    assert error < np.abs(ridge - exact).max() / 3  # the Laplace prior's answer, not the Gaussian's


def test_laplace_is_seeded_and_tends_to_least_squares_with_much_data():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((4, 40, 3))
    ys = np.einsum("bkd,bd->bk", xs, rng.standard_normal((4, 3))) + 0.05 * rng.standard_normal((4, 40))
    one = laplace_predictions(xs, ys, noise_scale=0.05, task_scale=1.0, iterations=300, seed=5)
    np.testing.assert_array_equal(
        one, laplace_predictions(xs, ys, noise_scale=0.05, task_scale=1.0, iterations=300, seed=5)
    )
    ridge = ridge_predictions(xs, ys, lam=1e-10)
    np.testing.assert_allclose(one[:, -1], ridge[:, -1], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task_scale": 0.0}, "task_scale must be a positive finite number, got 0.0"),
        ({"noise_scale": -1.0}, "noise_scale must be a positive finite number, got -1.0"),
        ({"burn_in": 10, "iterations": 10}, "need 0 <= burn_in < iterations, got burn_in=10, iterations=10"),
    ],
)
def test_bad_input_is_refused_naming_the_value(kwargs, message):
    rng = np.random.default_rng(4)
    xs, ys = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4))
    with pytest.raises(ValueError, match=message):
        laplace_predictions(xs, ys, **{"noise_scale": 0.5, "task_scale": 1.0} | kwargs)
