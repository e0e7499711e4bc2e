"""Metrics that compare predictors (paper Sec. 2 and Eq. 4), per position and averaged.

- loss/D against the noiseless targets x_k . w (what the original code logs) and against the noisy
  y_k (the paper's Eq. 1); on the same data they differ by about sigma^2 / D.
- Delta_{A,B} = E[ 1/(K D) sum_k (f_A(S_k) - f_B(S_k))^2 ]: how far apart two predictors are when
  fed the same noisy contexts (Eq. 4).
Each function returns the per-position curve, shape (K,); its mean over positions is the scalar.
"""

import numpy as np


def loss_vs_noiseless(preds, xs, ws):
    """Squared error / D against x_k . w, averaged over the batch.

    Shapes: preds (B, K), xs (B, K, D), ws (B, D) -> (K,).
    """
    xs = np.asarray(xs, dtype=np.float64)
    ws = np.asarray(ws, dtype=np.float64)
    if ws.shape != (xs.shape[0], xs.shape[2]):
        raise ValueError(f"ws must have shape (B, D) = {(xs.shape[0], xs.shape[2])}, got {ws.shape}")
    targets = np.einsum("bkd,bd->bk", xs, ws)
    return _squared_gap(preds, targets) / xs.shape[2]


def loss_vs_noisy(preds, ys, *, n_dims):
    """Squared error / D against the observed y_k, averaged over the batch.

    Shapes: preds (B, K), ys (B, K) -> (K,).
    """
    return _squared_gap(preds, ys) / _positive_int(n_dims)


def delta(preds_a, preds_b, *, n_dims):
    """Per-position Delta between two predictors on the same contexts (Eq. 4 before the mean over k).

    Shapes: preds_a (B, K), preds_b (B, K) -> (K,).
    """
    return _squared_gap(preds_a, preds_b) / _positive_int(n_dims)


def _squared_gap(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"predictions must be two (B, K) arrays of one shape, got {a.shape} and {b.shape}")
    return ((a - b) ** 2).mean(axis=0)


def _positive_int(n_dims):
    if int(n_dims) != n_dims or n_dims < 1:
        raise ValueError(f"n_dims must be a positive integer, got {n_dims!r}")
    return int(n_dims)
