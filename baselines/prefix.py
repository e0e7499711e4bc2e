"""Sufficient statistics of every prefix of a context, shared by ridge and dMMSE.

For position k (0-based) they cover the pairs j < k: G_k = sum_j x_j x_j^T and b_k = sum_j y_j x_j.
Both estimators depend on the context only through them, so all K prefixes come from one cumulative
sum instead of a loop over k.
"""

import numpy as np

# The Gram matrices of a block of sequences stay under this many bytes (64 MiB), whatever N is.
BLOCK_BYTES = 2**26


def sequence_blocks(xs):
    """Slices over the sequences of xs (B, K, D) small enough that their (b, K, D, D) Gram stack fits
    in BLOCK_BYTES: the estimators' memory then does not grow with the number of sequences."""
    _, n_points, n_dims = xs.shape
    size = max(1, BLOCK_BYTES // (n_points * n_dims * n_dims * 8))
    return [slice(start, start + size) for start in range(0, len(xs), size)]


def prefix_moments(xs, ys):
    """Gram matrices and moments of the pairs before each position.

    Shapes: xs (B, K, D), ys (B, K) -> gram (B, K, D, D), moment (B, K, D); position 0 gets zeros.
    """
    gram = _exclusive_cumsum(xs[..., :, None] * xs[..., None, :])
    moment = _exclusive_cumsum(xs * ys[..., None])
    return gram, moment


def _exclusive_cumsum(a):
    out = np.zeros_like(a)
    np.cumsum(a[:, :-1], axis=1, out=out[:, 1:])
    return out
