"""Ridge and dMMSE against brute-force per-prefix loops written straight from the paper's equations."""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.special import logsumexp

import baselines.dmmse
import baselines.prefix
from baselines import dmmse_predictions, ridge_predictions
from benchmarks.memory import peak_growth

RTOL = 1e-10
# dMMSE's backends; torch on CUDA joins where the machine has a device.
BACKENDS = [("numpy", None), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])


def ridge_reference(xs, ys, lam):
    """w_hat_k = (X^T X + lambda I)^-1 X^T y over the pairs before k; prediction 0 at k = 1."""
    batch, n_points, n_dims = xs.shape
    preds = np.zeros((batch, n_points))
    for b in range(batch):
        for k in range(1, n_points):
            x, y = xs[b, :k], ys[b, :k]
            w = scipy.linalg.solve(x.T @ x + lam * np.eye(n_dims), x.T @ y, assume_a="pos")
            preds[b, k] = xs[b, k] @ w
    return preds


def dmmse_reference(xs, ys, pool, noise_scale):
    """Paper Eq. 2: softmax over the pool of -1/(2 sigma^2) sum_{j<k} (y_j - w_i.x_j)^2, in log space."""
    batch, n_points, _ = xs.shape
    preds = np.zeros((batch, n_points))
    for b in range(batch):
        for k in range(n_points):
            residuals = ys[b, :k, None] - xs[b, :k] @ pool.T  # (k, M)
            log_w = -(residuals**2).sum(axis=0) / (2 * noise_scale**2)
            weights = np.exp(log_w - logsumexp(log_w))
            preds[b, k] = xs[b, k] @ (weights @ pool)
    return preds


def regression_data(rng, batch, n_points, n_dims, noise_scale, tasks):
    xs = rng.standard_normal((batch, n_points, n_dims))
    ws = tasks[rng.integers(len(tasks), size=batch)]
    ys = np.einsum("bkd,bd->bk", xs, ws) + noise_scale * rng.standard_normal((batch, n_points))
    return xs, ys


def assert_close(actual, expected, rtol=RTOL):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


CASES = [  # D, K, M, noise_scale
    (1, 5, 1, 0.5),
    (2, 9, 3, 0.1),
    (3, 16, 50, 0.5),
    (4, 11, 1, 1.0),  # K > 2D, M = 1
    (8, 16, 64, 0.5),
    (5, 13, 400, 2.0),
]


@pytest.mark.parametrize("n_dims, n_points, n_tasks, noise_scale", CASES)
@pytest.mark.parametrize("block_bytes", [None, 4096])
def test_ridge_equals_per_prefix_solve(n_dims, n_points, n_tasks, noise_scale, block_bytes, monkeypatch):
    if block_bytes:  # a few sequences per block: the block loop must stitch results in order
        monkeypatch.setattr(baselines.prefix, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(n_dims * 100 + n_points)
    xs, ys = regression_data(rng, 6, n_points, n_dims, noise_scale, rng.standard_normal((n_tasks, n_dims)))
    lam = noise_scale**2
    preds = ridge_predictions(xs, ys, lam=lam)
    assert preds.shape == (6, n_points) and preds.dtype == np.float64
    assert np.all(preds[:, 0] == 0)
    assert_close(preds, ridge_reference(xs, ys, lam))


@pytest.mark.parametrize("n_dims, n_points, n_tasks, noise_scale", CASES)
@pytest.mark.parametrize("chunks", [None, (7, 5)])
@pytest.mark.parametrize("backend, device", BACKENDS)
def test_dmmse_equals_per_prefix_softmax(n_dims, n_points, n_tasks, noise_scale, chunks, backend, device, monkeypatch):
    if chunks:  # tiny blocks and pool chunks exercise the streaming log-sum-exp across many chunks
        monkeypatch.setattr(baselines.dmmse, "ROWS", chunks[0])
        monkeypatch.setattr(baselines.dmmse, "POOL_CHUNK", chunks[1])
        monkeypatch.setattr(baselines.prefix, "BLOCK_BYTES", 4096)
    rng = np.random.default_rng(n_dims * 100 + n_tasks)
    pool = rng.standard_normal((n_tasks, n_dims))
    xs, ys = regression_data(rng, 5, n_points, n_dims, noise_scale, pool)
    preds = dmmse_predictions(xs, ys, pool=pool, noise_scale=noise_scale, backend=backend, device=device)
    assert preds.shape == (5, n_points) and preds.dtype == np.float64
    np.testing.assert_allclose(preds[:, 0], xs[:, 0] @ pool.mean(axis=0), rtol=1e-12)
    assert_close(preds, dmmse_reference(xs, ys, pool, noise_scale))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dmmse_one_thread_equals_two(backend):
    rng = np.random.default_rng(3)
    pool = rng.standard_normal((3000, 4))
    xs, ys = regression_data(rng, 70, 8, 4, 0.5, pool)
    one = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, workers=1, backend=backend)
    two = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, workers=2, backend=backend)
    np.testing.assert_array_equal(one, two)


def test_dmmse_backends_agree_and_the_default_is_cpu_backend_without_cuda(monkeypatch):
    rng = np.random.default_rng(12)
    pool = rng.standard_normal((5000, 5))
    xs, ys = regression_data(rng, 60, 10, 5, 0.5, pool)
    by_numpy = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend="numpy")
    assert_close(dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend="torch"), by_numpy, rtol=1e-12)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for cpu_backend in ("numpy", "torch"):
        monkeypatch.setattr(baselines.dmmse, "CPU_BACKEND", cpu_backend)
        chosen = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5)
        np.testing.assert_array_equal(
            chosen, dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend=cpu_backend)
        )


def test_dmmse_with_one_task_predicts_with_that_task():
    rng = np.random.default_rng(4)
    task = rng.standard_normal((1, 6))
    xs, ys = regression_data(rng, 4, 10, 6, 0.5, rng.standard_normal((3, 6)))
    preds = dmmse_predictions(xs, ys, pool=task, noise_scale=0.5)
    np.testing.assert_allclose(preds, xs @ task[0], rtol=1e-13)


def test_ridge_without_penalty_is_least_squares_once_determined():
    rng = np.random.default_rng(5)
    n_dims, n_points = 4, 12
    xs, ys = regression_data(rng, 5, n_points, n_dims, 0.5, rng.standard_normal((5, n_dims)))
    preds = ridge_predictions(xs, ys, lam=1e-12)
    for k in range(n_dims + 1, n_points):  # k > D pairs: least squares is unique
        w = np.stack([np.linalg.lstsq(xs[b, :k], ys[b, :k], rcond=None)[0] for b in range(5)])
        np.testing.assert_allclose(preds[:, k], np.einsum("bd,bd->b", xs[:, k], w), rtol=1e-8)


def test_dmmse_on_a_large_pool_approaches_ridge_on_fresh_tasks():
    # Uniform over M draws from N(0, I) tends to the Gaussian prior, so dMMSE tends to ridge.
    rng = np.random.default_rng(6)
    n_dims, n_points, noise_scale = 2, 8, 0.5
    xs, ys = regression_data(rng, 300, n_points, n_dims, noise_scale, rng.standard_normal((300, n_dims)))
    ridge = ridge_predictions(xs, ys, lam=noise_scale**2)
    gaps = []
    for n_tasks in (16, 2**15):
        pool = rng.standard_normal((n_tasks, n_dims))
        gaps.append(np.mean((dmmse_predictions(xs, ys, pool=pool, noise_scale=noise_scale) - ridge) ** 2))
    spread = np.mean(ridge[:, 1:] ** 2)
    assert gaps[1] < 5e-4 * spread, gaps  # measured 7e-5 of the predictions' variance
    assert gaps[1] < gaps[0] / 20, gaps  # and far closer than with a small pool


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_dmmse_is_exact_when_every_likelihood_underflows(backend, device):
    rng = np.random.default_rng(7)
    pool = rng.standard_normal((200, 3))
    xs = rng.standard_normal((3, 10, 3))
    ys = np.einsum("bkd,d->bk", xs, np.full(3, 40.0))  # far from every pool task
    with np.errstate(under="ignore"):
        naive = np.exp(-((ys[:, :, None] - xs @ pool.T) ** 2).sum(1) / (2 * 0.25))
    assert np.all(naive == 0)  # raw likelihoods are all zero: a softmax without log space fails
    preds = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend=backend, device=device)
    assert np.isfinite(preds).all()
    assert_close(preds, dmmse_reference(xs, ys, pool, 0.5), rtol=1e-9)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_dmmse_is_exact_when_every_log_weight_is_far_below_zero(backend, device, monkeypatch):
    # y = 0 against large pool tasks: every log-weight of the first chunk is below -709, so exp of
    # minus the first maximum overflows; the running state must not multiply it into anything.
    monkeypatch.setattr(baselines.dmmse, "POOL_CHUNK", 16)
    rng = np.random.default_rng(11)
    pool = 30.0 * rng.standard_normal((64, 3))
    xs = 3.0 * rng.standard_normal((4, 12, 3))
    ys = np.zeros((4, 12))
    preds = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend=backend, device=device)
    assert np.isfinite(preds).all()
    assert_close(preds, dmmse_reference(xs, ys, pool, 0.5), rtol=1e-9)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda xs, ys, pool: ridge_predictions(xs, ys, lam=-1.0), "lam must be a positive finite number, got -1.0"),
        (lambda xs, ys, pool: ridge_predictions(xs[0], ys, lam=1.0), r"xs must have shape \(B, K, D\).*\(5, 3\)"),
        (lambda xs, ys, pool: ridge_predictions(xs, ys[:, :2], lam=1.0), r"ys must have shape.*\(4, 2\)"),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool[:, :2], noise_scale=0.5), "pool has D=2 but"),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool, noise_scale=0.0), "noise_scale .* got 0.0"),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool[:0], noise_scale=0.5), r"got \(0, 3\)"),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys * np.nan, pool=pool, noise_scale=0.5), "NaN"),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend="jax"), "got 'jax'"),
        (
            lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, backend="numpy", device="cpu"),
            "backend='numpy' was given with device='cpu'",
        ),
        (lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, device="gpu"), "got 'gpu'"),
    ]
    + (
        []
        if torch.cuda.is_available()
        else [(lambda xs, ys, pool: dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, device="cuda"), "no CUDA")]
    ),
)
def test_bad_input_raises_value_error_naming_the_value(call, message):
    rng = np.random.default_rng(8)
    xs, ys, pool = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5)), rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match=message):
        call(xs, ys, pool)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dmmse_memory_stays_bounded_at_a_million_tasks(backend):
    rng = np.random.default_rng(9)
    pool = rng.standard_normal((2**20, 8))
    xs, ys = regression_data(rng, 64, 16, 8, 0.5, pool)
    preds, peak = peak_growth(dmmse_predictions, xs, ys, pool=pool, noise_scale=0.5, backend=backend)
    assert np.isfinite(preds).all()
    print(f"peak {peak / 2**20:.0f} MiB")
    assert peak < 2 * 2**30, f"peak {peak / 2**20:.0f} MiB"  # the acceptance bound; measured 30-100 MiB
    # a (B, K, M) log-weight tensor would be 64 * 16 * 2^20 * 8 bytes = 8 GiB


@pytest.mark.slow
def test_dmmse_at_paper_scale_equals_the_per_prefix_softmax():
    # D = 8, K = 16, M = 2^18: many pool chunks, row blocks in both threads, denormal-range weights.
    rng = np.random.default_rng(10)
    pool = rng.standard_normal((2**18, 8))
    xs, ys = regression_data(rng, 40, 16, 8, 0.5, pool)
    fresh_xs, fresh_ys = regression_data(rng, 40, 16, 8, 0.5, rng.standard_normal((40, 8)))
    xs, ys = np.concatenate([xs, fresh_xs]), np.concatenate([ys, fresh_ys])
    assert_close(dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5), dmmse_reference(xs, ys, pool, 0.5))
