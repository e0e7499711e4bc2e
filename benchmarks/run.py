"""Benchmarks (not in CI; `make bench`): training speed, and the estimators against per-prefix loops.

Everything is measured side by side in one run on this machine and printed as a table:
- training steps/s of the small and base transformers (D = 8, K = 16, batch 256);
- time and peak memory of ridge and dMMSE on 4096 sequences at M = 2^10, 2^15, 2^20, next to the
  straightforward per-prefix loop (the original code's algorithm). Where the loop would take too long
  it is timed on a slice of the sequences and scaled up; the table says so.
Peak memory is the largest amount numpy/Python held at once during the call (tracemalloc).
"""

import functools
import time
import tracemalloc

import click
import numpy as np
import torch
from scipy.special import softmax

from baselines import dmmse_predictions, ridge_predictions
from models import ModelConfig, build_model, make_optimizer, train_step
from tasks import DataSettings, make_pool, sample_batch

N_DIMS, N_POINTS, NOISE = 8, 16, 0.5


def measure(fn, *args):
    """Seconds and peak traced bytes of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def ridge_loop(xs, ys, *, lam):
    """One batched solve per prefix length k: the original's algorithm, in float64."""
    preds = np.zeros(ys.shape)
    for k in range(1, xs.shape[1]):
        x, y = xs[:, :k], ys[:, :k]
        gram = np.einsum("bkd,bke->bde", x, x) + lam * np.eye(xs.shape[2])
        w = np.linalg.solve(gram, np.einsum("bkd,bk->bd", x, y)[..., None])[..., 0]
        preds[:, k] = np.einsum("bd,bd->b", xs[:, k], w)
    return preds


def dmmse_loop(xs, ys, *, pool, noise_scale):
    """One (B, k, M) residual tensor per prefix length k, then a softmax over the pool."""
    preds = np.zeros(ys.shape)
    preds[:, 0] = xs[:, 0] @ pool.mean(axis=0)
    for k in range(1, xs.shape[1]):
        residuals = ys[:, :k, None] - xs[:, :k] @ pool.T  # (B, k, D) @ (D, M) -> (B, k, M)
        weights = softmax(-(residuals**2).sum(axis=1) / (2 * noise_scale**2), axis=1)
        preds[:, k] = np.einsum("bd,bd->b", xs[:, k], weights @ pool)
    return preds


def training_rate(size, batch_size, steps):
    model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
    optimizer = make_optimizer(model, lr=1e-4)
    spec = DataSettings(batch_size, N_POINTS, N_DIMS, NOISE, 1.0, 101, 102, 103)
    pool = torch.from_numpy(make_pool(1024, N_DIMS, seed=0, task_scale=1.0).tasks)
    for step in range(3):  # warm-up: allocator, first-call overheads
        xs, _, ys = sample_batch(spec, step, pool=pool, task_scale=1.0)
        train_step(model, optimizer, xs, ys, 1e-4)
    start = time.perf_counter()
    for step in range(steps):
        xs, _, ys = sample_batch(spec, step, pool=pool, task_scale=1.0)
        train_step(model, optimizer, xs, ys, 1e-4)
    return steps / (time.perf_counter() - start)


def estimator_rows(n_seqs, log2_sizes, loop_budget):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((n_seqs, N_POINTS, N_DIMS))
    for log2_m in log2_sizes:
        pool = rng.standard_normal((2**log2_m, N_DIMS))
        ws = pool[rng.integers(len(pool), size=n_seqs)]
        ys = np.einsum("bkd,bd->bk", xs, ws) + NOISE * rng.standard_normal((n_seqs, N_POINTS))
        if log2_m == log2_sizes[0]:  # ridge does not depend on M
            ridge = functools.partial(ridge_predictions, lam=NOISE**2)
            compare("ridge", "-", ridge, functools.partial(ridge_loop, lam=NOISE**2), xs, ys, n_seqs)
        # Time the loop on a slice whose cost fits the budget, then scale to all sequences.
        n_slice = max(1, min(n_seqs, int(loop_budget * 2**20 / len(pool))))
        dmmse = functools.partial(dmmse_predictions, pool=pool, noise_scale=NOISE)
        loop = functools.partial(dmmse_loop, pool=pool, noise_scale=NOISE)
        compare("dMMSE", f"2^{log2_m}", dmmse, loop, xs, ys, n_slice)


def compare(name, size, fast, loop, xs, ys, n_slice):
    """Print one table row: the vectorised estimator on all sequences, the loop on n_slice of them."""
    n_seqs = len(xs)
    t_fast, m_fast = measure(fast, xs, ys)
    t_loop, m_loop = measure(loop, xs[:n_slice], ys[:n_slice])
    t_loop *= n_seqs / n_slice
    diff = np.abs(fast(xs[:n_slice], ys[:n_slice]) - loop(xs[:n_slice], ys[:n_slice])).max()
    note = "" if n_slice == n_seqs else f" (timed on {n_slice}, x{n_seqs // n_slice})"
    print(
        f"| {name} | {size} | {t_fast:.2f} s | {m_fast / 2**20:.1f} MiB | {t_loop:.1f} s{note} "
        f"| {m_loop / 2**20:.1f} MiB | {t_loop / t_fast:.1f}x | {diff:.1e} |",
        flush=True,
    )


@click.command()
@click.option("--n-seqs", default=4096, show_default=True, help="Sequences for the estimator timings.")
@click.option("--log2-sizes", default="10,15,20", show_default=True, help="Pool sizes M = 2^x to time.")
@click.option(
    "--loop-budget",
    default=8,
    show_default=True,
    help="Sequences of the per-prefix dMMSE loop to time at M = 2^20 (more at smaller M).",
)
@click.option("--train-steps", default=20, show_default=True, help="Timed steps per model size.")
def main(n_seqs, log2_sizes, loop_budget, train_steps):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}\n")
    print("| model | batch | steps/s |\n|---|---|---|")
    for size, batch_size, steps in (("small", 256, 3 * train_steps), ("base", 256, train_steps)):
        print(f"| {size} | {batch_size} | {training_rate(size, batch_size, steps):.2f} |", flush=True)
    print(f"\n{n_seqs} sequences, K={N_POINTS}, D={N_DIMS}, float64")
    print("| estimator | M | vectorised | peak | per-prefix loop | loop peak | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    estimator_rows(n_seqs, [int(v) for v in log2_sizes.split(",")], loop_budget)


if __name__ == "__main__":
    main()
