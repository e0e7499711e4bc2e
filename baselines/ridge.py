"""Ridge regression: the posterior mean under the Gaussian task prior N(0, tau^2 I).

At position k the estimate from the k-1 pairs before it is

    w_hat_k = (X^T X + lambda I)^-1 X^T y,   lambda = sigma^2 / tau^2,

and the prediction is x_k . w_hat_k (0 at k = 1, where the context is empty). Every prefix is solved
at once from the prefix sums of `baselines.prefix`, one batched (D, D) solve per prefix.
"""

import numpy as np

from baselines.checks import as_context
from baselines.prefix import prefix_moments, sequence_blocks


def ridge_predictions(xs, ys, *, lam):
    """Ridge predictions with penalty `lam` for every position from the pairs before it.

    Shapes: xs (B, K, D), ys (B, K) -> (B, K), float64.
    """
    xs, ys = as_context(xs, ys)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    preds = np.empty(ys.shape)
    for block in sequence_blocks(xs):
        gram, moment = prefix_moments(xs[block], ys[block])  # (b, K, D, D), (b, K, D)
        gram += lam * np.eye(xs.shape[2])
        w_hat = np.linalg.solve(gram, moment[..., None])[..., 0]  # (b, K, D)
        preds[block] = np.einsum("bkd,bkd->bk", xs[block], w_hat)
    return preds
