"""Boundary checks shared by the estimators and metrics: shapes, dtypes and finiteness."""

import numpy as np


def as_context(xs, ys):
    """Validate a batch of contexts and return it as float64. Shapes: xs (B, K, D), ys (B, K)."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    if xs.ndim != 3 or min(xs.shape) == 0:
        raise ValueError(f"xs must have shape (B, K, D) with every size > 0, got {xs.shape}")
    if ys.shape != xs.shape[:2]:
        raise ValueError(f"ys must have shape (B, K) = {xs.shape[:2]}, got {ys.shape}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("xs and ys must be finite (found NaN or inf)")
    return xs, ys


def as_pool(pool, n_dims):
    """Validate a task pool for contexts of dimension `n_dims`. Shapes: pool (M, D) float64."""
    pool = np.asarray(pool, dtype=np.float64)
    if pool.ndim != 2 or pool.shape[0] == 0:
        raise ValueError(f"pool must have shape (M, D) with M > 0, got {pool.shape}")
    if pool.shape[1] != n_dims:
        raise ValueError(f"pool has D={pool.shape[1]} but the contexts have D={n_dims}")
    if not np.isfinite(pool).all():
        raise ValueError("pool must be finite (found NaN or inf)")
    return pool
