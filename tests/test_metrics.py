"""loss/D against both targets and Delta (Eq. 4), on worked examples with known answers."""

import numpy as np
import pytest

from baselines import delta, loss_vs_noiseless, loss_vs_noisy


def test_worked_example():
    xs = np.array([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 0.0]]])  # (B=2, K=2, D=2)
    ws = np.array([[1.0, 1.0], [2.0, 0.0]])  # noiseless targets [[1, 2], [2, 0]]
    ys = np.array([[1.5, 2.0], [2.0, -1.0]])
    preds = np.array([[0.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(loss_vs_noiseless(preds, xs, ws), [(1 + 0) / 2 / 2, (0 + 1) / 2 / 2])
    np.testing.assert_allclose(loss_vs_noisy(preds, ys, n_dims=2), [(2.25 + 0) / 2 / 2, (0 + 4) / 2 / 2])
    np.testing.assert_allclose(delta(preds, np.zeros_like(preds), n_dims=2), [(0 + 4) / 4, (4 + 1) / 4])


def test_noisy_and_noiseless_losses_differ_by_noise_variance_over_d():
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((200_000, 2, 4)), rng.standard_normal((200_000, 4))
    clean = np.einsum("bkd,bd->bk", xs, ws)
    ys = clean + 0.5 * rng.standard_normal(clean.shape)
    gap = loss_vs_noisy(clean, ys, n_dims=4) - loss_vs_noiseless(clean, xs, ws)
    np.testing.assert_allclose(gap, 0.25 / 4, rtol=0.02)


def test_delta_is_symmetric_and_zero_on_itself():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((10, 5)), rng.standard_normal((10, 5))
    np.testing.assert_array_equal(delta(a, b, n_dims=3), delta(b, a, n_dims=3))
    assert np.all(delta(a, a, n_dims=3) == 0)


def test_bad_shapes_name_them():
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(3, 4\)"):
        delta(np.zeros((3, 2)), np.zeros((3, 4)), n_dims=2)
    with pytest.raises(ValueError, match="n_dims must be a positive integer, got 0"):
        loss_vs_noisy(np.zeros((3, 2)), np.zeros((3, 2)), n_dims=0)
