"""Tasks on the paths between two pool tasks (paper Eq. 5, Fig. 5), and sequences drawn with them."""

import numpy as np

from tasks.streams import numpy_rng


def interpolation_path(w_i, w_j, alphas):
    """Paper Eq. 5: w_alpha = (|w_i| + |w_j|) / 2 * u / |u| with u = alpha w_i + (1 - alpha) w_j, for each
    alpha: the direction runs along the chord from w_j (alpha = 0) to w_i (alpha = 1), and every point has
    the endpoints' mean norm. Shapes: w_i, w_j (D,), alphas (A,) -> (A, D), float64."""
    w_i, w_j = np.asarray(w_i, dtype=np.float64), np.asarray(w_j, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)[:, None]
    chord = alphas * w_i + (1 - alphas) * w_j
    norms = np.linalg.norm(chord, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("the chord between w_i and w_j passes through 0 (opposite tasks of equal norm)")
    return (np.linalg.norm(w_i) + np.linalg.norm(w_j)) / 2 * chord / norms


def path_sequences(tasks, *, pairs, alphas, sequences, n_points, noise_scale, data_scale, seed):
    """Sequences drawn with the tasks on the paths between `pairs` random pairs (i != j) of the pool's
    `tasks` (M, D), at each of `alphas`, `sequences` per point: xs (P, A, S, K, D), ws (P, A, D),
    ys (P, A, S, K) float64, and the pairs (P, 2). Every draw comes from the keyed stream `path` of `seed`."""
    m, n_dims = tasks.shape
    if m < 2:
        raise ValueError(f"interpolation paths need two pool tasks or more, got M={m}")
    rng = numpy_rng(seed, "path")
    first = rng.integers(m, size=pairs)
    second = (first + rng.integers(1, m, size=pairs)) % m  # never the first
    ws = np.stack([interpolation_path(tasks[i], tasks[j], alphas) for i, j in zip(first, second, strict=True)])
    shape = (pairs, len(alphas), sequences, n_points, n_dims)
    xs = data_scale * rng.standard_normal(shape)
    ys = np.einsum("pasku,pau->pask", xs, ws) + noise_scale * rng.standard_normal(shape[:-1])
    return xs, ws, ys, np.stack([first, second], axis=1)
