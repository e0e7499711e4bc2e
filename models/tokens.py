"""Token layout of the paper: x_1, y_1, ..., x_K, y_K as 2K vectors of width D + 1.

An x-token is [0, x] and a y-token is [y, 0, ..., 0], so the first coordinate says which kind a
token is. The prediction for y_k is read at the x_k token (even positions 0, 2, ...), where causal
attention has seen x_1, y_1, ..., x_k and nothing after. So y_K, after every x token, reaches no
prediction: the models read the first 2K - 1 tokens only (`context`).
"""

import torch

# The x tokens' positions, as a slice of the token axis.
X_TOKENS = slice(0, None, 2)


def to_tokens(xs, ys):
    """Interleave inputs and targets. Shapes: xs (B, K, D), ys (B, K) -> (B, 2K, D + 1)."""
    batch, n_points, n_dims = xs.shape
    x_tokens = torch.cat([xs.new_zeros(batch, n_points, 1), xs], dim=2)
    y_tokens = torch.cat([ys[..., None], ys.new_zeros(batch, n_points, n_dims)], dim=2)
    return torch.stack([x_tokens, y_tokens], dim=2).reshape(batch, 2 * n_points, n_dims + 1)


def context(xs, ys):
    """The tokens the predictions depend on: all but y_K. Shapes: xs (B, K, D), ys (B, K) -> (B, 2K - 1, D + 1)."""
    return to_tokens(xs, ys)[:, :-1]


def causal_mask(length, queries, device):
    """Which of `length` tokens each token of the slice `queries` attends to: itself and those before.
    Shape: (len(queries), length) bool."""
    positions = torch.arange(length, device=device)
    return positions[None, :] <= positions[queries][:, None]
