"""Discrete MMSE estimator: the posterior mean under the uniform prior on a finite task pool.

Paper Eq. 2: at position k the estimate is

    w_hat_k = sum_i softmax_i( -1/(2 sigma^2) sum_{j<k} (y_j - w_i . x_j)^2 ) w_i,

and the prediction is x_k . w_hat_k (the pool mean at k = 1, where the context is empty).

Why it is written this way: at M = 2^20 tasks the log-weights of all (sequence, prefix, task)
triples would be hundreds of GiB, and the per-prefix loop takes an hour on two cores. Expanding the
square, the part of the log-weight that depends on the task is

    ( 2 b_k . w_i - w_i^T G_k w_i ) / (2 sigma^2),   G_k = sum_{j<k} x_j x_j^T,  b_k = sum_{j<k} y_j x_j,

which is linear in the task features phi(w) = [w, w_a w_b (a <= b)]. So the log-weights of every prefix
of a block of sequences against a chunk of the pool are one matrix product, and the softmax is
accumulated over pool chunks with a running maximum (log-sum-exp), exact even when every likelihood
underflows. Memory is bounded by the chunk sizes, independent of M. Position 0 (an empty context, equal
weights) is the pool mean and skips the stream.

Two backends run that stream, equal to 1e-10 of the per-prefix softmax: numpy (threads with one BLAS
thread each) and torch (baselines/dmmse_torch.py: the same on CPU threads, or on a CUDA device). On a CPU
the torch one is faster where numpy's float64 exp is not vectorised (AVX2 machines: `make bench`).
"""

import contextlib
import functools
import math
import os
import threading
import typing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from baselines import dmmse_torch
from baselines.checks import as_context, as_pool
from baselines.prefix import prefix_moments, sequence_blocks

# Sizes picked by measurement (benchmarks/estimators.py): a (ROWS, POOL_CHUNK) float64 block
# (4 MiB) stays in cache, and the matrix products are large enough for BLAS to be efficient.
ROWS = 512
POOL_CHUNK = 1024
# The torch backend clamps log-weights further than this below the running maximum to it before exp:
# e^-700 is 1e-304, so the bias is at most M * 1e-304 relative, and exp never has to produce a denormal
# or an underflow, which torch's exp handles 4-6x slower (measured; numpy's about 8x). The numpy loop
# skips them altogether (`_cut`).
FLOOR = -700.0
# The backend on a machine without CUDA: measured side by side in benchmarks/estimators.py (`make bench`).
CPU_BACKEND = "torch"


def dmmse_predictions(xs, ys, *, pool, noise_scale, workers=None, progress=None, backend=None, device=None):
    """Posterior-mean predictions under the uniform prior on `pool` (paper Eq. 2), every prefix.

    Position k (0-based) is predicted from the k pairs before it and x_k; `workers` threads (default:
    one per available core) share the sequences. `progress(done, total)`, if given, is called with 0
    first, then each time a thread finishes a pool chunk, up to done == total (units: one block of
    prefix rows against one pool chunk); calls come from the worker threads but one at a time, with
    done rising. `backend`: "numpy" or "torch" (None: torch on a CUDA device when there is one, else
    CPU_BACKEND); `device`: the torch backend's device (None: "cuda" when available, else "cpu"). Every
    backend equals the per-prefix softmax to 1e-10 (tests/test_baselines.py). An interrupt (KeyboardInterrupt,
    a signal's handler raising) in the calling thread stops the worker threads within one pool chunk.
    Shapes: xs (B, K, D), ys (B, K), pool (M, D) -> (B, K), float64.
    """
    return mixture_predictions(
        xs,
        ys,
        pool=pool,
        noise_scale=noise_scale,
        smoothing=0.0,
        workers=workers,
        progress=progress,
        backend=backend,
        device=device,
    )


def mixture_predictions(
    xs, ys, *, pool, noise_scale, smoothing, workers=None, progress=None, backend=None, device=None
):
    """Posterior-mean predictions under the prior (1/M) sum_i N(w_i, s^2 I) on the tasks, s = `smoothing`
    (0: dMMSE itself). baselines.smoothed explains the algebra; the streaming is dMMSE's, unchanged."""
    xs, ys = as_context(xs, ys)
    pool = as_pool(pool, xs.shape[2])
    if not np.isfinite(noise_scale) or noise_scale <= 0:
        raise ValueError(f"noise_scale must be a positive finite number, got {noise_scale!r}")
    if not np.isfinite(smoothing) or smoothing < 0:
        raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
    workers = _available_cores() if workers is None else workers
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    engine = _engine(backend, device, pool)
    workers = 1 if engine.device is not None and engine.device.type != "cpu" else workers
    preds = np.empty(ys.shape)
    pool_mean = pool.mean(axis=0)
    blocks = sequence_blocks(xs)
    # Position 0 has an empty context: every weight is equal and its estimate is the pool mean, so only
    # the rows of positions 1..K-1 go through the pool (a sixteenth less work at K = 16).
    rows = [_row_slices(len(xs[block]) * (xs.shape[1] - 1), engine.rows) for block in blocks]
    cancelled = threading.Event()
    tick = _counter(progress, -(-len(pool) // engine.chunk) * sum(map(len, rows)), cancelled)
    # Threads, each with single-threaded BLAS (and torch ops): numpy's exp and max release the GIL but
    # run on one core, so this keeps every core busy in them too; threads that each ask a multi-threaded
    # BLAS for all cores are slower than one thread (measured in benchmarks/).
    with engine.limits(), ThreadPoolExecutor(workers) as executor:
        for block, block_rows in zip(blocks, rows, strict=True):
            gram, moment = prefix_moments(xs[block], ys[block])  # (b, K, D, D), (b, K, D)
            if smoothing > 0:  # the mixture's evidence: (gram, moment) -> sigma^2 A^-1 (gram, moment)
                shrink = noise_scale**2 * np.eye(xs.shape[2]) + smoothing**2 * gram  # A
                gram = noise_scale**2 * np.linalg.solve(shrink, gram)
                gram = (gram + np.swapaxes(gram, -1, -2)) / 2  # symmetric in exact arithmetic
                moment_a = noise_scale**2 * np.linalg.solve(shrink, moment[..., None])[..., 0]
            else:
                moment_a = moment
            features = _prefix_features(gram[:, 1:], moment_a[:, 1:], noise_scale)  # (b*(K-1), F)
            w_hat = np.empty(xs[block].shape)
            w_hat[:, 0] = pool_mean
            later = np.empty((len(features), xs.shape[2]))
            # A thread with no rows would stream the whole pool for nothing: only non-empty shares.
            shares = [share for share in (block_rows[i::workers] for i in range(workers)) if share]
            try:
                list(executor.map(functools.partial(engine.means, features, out=later, tick=tick), shares))
            except BaseException:  # an interrupt (or error) in this thread: the others stop within a chunk
                cancelled.set()
                raise
            w_hat[:, 1:] = later.reshape(w_hat[:, 1:].shape)
            if smoothing > 0:  # each component's posterior mean, averaged: A^-1 (sigma^2 w_bar + s^2 b)
                rhs = noise_scale**2 * w_hat + smoothing**2 * moment
                w_hat = np.linalg.solve(shrink, rhs[..., None])[..., 0]
            preds[block] = np.einsum("bkd,bkd->bk", xs[block], w_hat)
    return preds


class _Engine(typing.NamedTuple):
    """How the pool is streamed: `means(features, blocks, out=, tick=)` on row slices of `rows` rows, in
    pool chunks of `chunk` tasks, under `limits()`; `device` is the torch device (None: numpy)."""

    means: typing.Callable
    rows: int
    chunk: int
    limits: typing.Callable
    device: typing.Any


def _engine(backend, device, pool):
    """The backend that computes the posterior means, checked and placed on its device."""
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and device is not None:
        raise ValueError(f"device is the torch backend's, but backend='numpy' was given with device={device!r}")
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError as error:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from error
    cuda = torch.cuda.is_available()
    if backend is None:
        backend = "torch" if device is not None or cuda else CPU_BACKEND
    if backend == "numpy":
        means = functools.partial(_posterior_means, pool=pool)
        return _Engine(means, ROWS, POOL_CHUNK, lambda: threadpool_limits(limits=1, user_api="blas"), None)
    device = device or torch.device("cuda" if cuda else "cpu")
    if device.type == "cuda" and not cuda:
        raise ValueError(f"device={str(device)!r} was asked for, but torch sees no CUDA device")
    on_cpu = device.type == "cpu"
    rows, chunk = (ROWS, POOL_CHUNK) if on_cpu else (dmmse_torch.CUDA_ROWS, dmmse_torch.CUDA_CHUNK)
    pool_t = torch.as_tensor(pool, device=device)
    means = functools.partial(dmmse_torch.posterior_means, pool=pool_t, chunk=chunk, floor=FLOOR)
    limits = dmmse_torch.one_thread_per_op if on_cpu else contextlib.nullcontext
    return _Engine(means, rows, chunk, limits, device)


def _row_slices(n_rows, size):
    """The `size`-row slices that split n_rows prefix rows between the threads."""
    return [slice(i, min(i + size, n_rows)) for i in range(0, n_rows, size)]


class Cancelled(Exception):
    """Raised in a worker thread whose caller stopped waiting for it (interrupted, or failed)."""


def _counter(progress, total, cancelled):
    """`tick(n)`, called by a thread after each pool chunk: raises Cancelled once `cancelled` is set, else
    adds n done units and calls progress(done, total) if given, serialised so done only rises."""
    lock, done = threading.Lock(), 0

    def tick(n):
        nonlocal done
        if cancelled.is_set():
            raise Cancelled
        if progress is None:
            return
        with lock:
            done += n
            progress(done, total)

    if progress is not None:
        progress(0, total)
    return tick


def _prefix_features(gram, moment, noise_scale):
    """Per-prefix coefficients f_k with f_k . phi(w) = (2 b_k.w - w^T G_k w) / (2 sigma^2).

    Shapes: gram (B, K, D, D), moment (B, K, D) (baselines.prefix) -> (B*K, D + D(D+1)/2).
    """
    n_dims = gram.shape[-1]
    rows, cols = np.triu_indices(n_dims)
    # Off-diagonal entries appear twice in w^T G w.
    quad = gram[..., rows, cols] * np.where(rows == cols, 1.0, 2.0)
    features = np.concatenate([2.0 * moment, -quad], axis=-1) / (2.0 * noise_scale**2)
    return features.reshape(-1, features.shape[-1])


def _task_features(pool):
    """[phi(w), 1] with phi(w) = [w, w_a w_b for a <= b] as in `_prefix_features`.

    The trailing 1 multiplies each row's -shift, so the product already subtracts the running
    maximum and saves a pass over the logits. Shapes: (M, D) -> (F + 1, M).
    """
    rows, cols = np.triu_indices(pool.shape[1])
    ones = np.ones((len(pool), 1))
    return np.ascontiguousarray(np.concatenate([pool, pool[:, rows] * pool[:, cols], ones], axis=1).T)


def _posterior_means(features, blocks, *, pool, out, tick):
    """Softmax-weighted pool means for the prefix rows in `blocks`, streaming over the pool.

    Per row it keeps [f, -m] (m: the largest log-weight so far) and, relative to m, the running
    sums [sum_i e_i w_i, sum_i e_i] of the weighted tasks and of the weights. `tick(len(blocks))`
    (if not None) after each pool chunk: about 1 us against about 10 ms of work per block (measured).
    """
    scaled = [np.concatenate([features[b], np.zeros((b.stop - b.start, 1))], axis=1) for b in blocks]
    acc = [np.zeros((b.stop - b.start, pool.shape[1] + 1)) for b in blocks]
    shape = (max((len(s) for s in scaled), default=0), POOL_CHUNK)
    logits, weights, keep = np.empty(shape), np.empty(shape), np.empty(shape, dtype=bool)
    cut = _cut(len(pool))
    for start in range(0, len(pool), POOL_CHUNK):
        tasks = pool[start : start + POOL_CHUNK]
        phi_t = _task_features(tasks)  # (F + 1, Mc)
        tasks1 = np.concatenate([tasks, np.ones((len(tasks), 1))], axis=1)  # (Mc, D + 1)
        for f, a in zip(scaled, acc, strict=True):
            lg = logits[: len(f), : len(tasks)]
            np.matmul(f, phi_t, out=lg)  # (R, F + 1) @ (F + 1, Mc) -> (R, Mc)
            _shift(lg, f[:, -1], a, first=start == 0)
            e, k = weights[: len(f), : len(tasks)], keep[: len(f), : len(tasks)]
            # exp only of the log-weights within `cut` of the maximum, the others count as 0 (see _cut)
            np.greater(lg, -cut, out=k)
            e.fill(0.0)
            np.exp(lg, out=e, where=k)
            a += e @ tasks1  # (R, Mc) @ (Mc, D + 1) -> (R, D + 1)
        if tick is not None:
            tick(len(blocks))
    for b, a in zip(blocks, acc, strict=True):
        out[b] = a[:, :-1] / a[:, -1:]


def _cut(n_tasks):
    """How far below a row's maximum a log-weight may be and still be computed, in the numpy loop.

    The rest are counted as 0: together they weigh at most M e^-cut = e^-42 (6e-19) of the row's total,
    far below float64's round-off, while most log-weights of a long context are that far down (about 80%
    at D = 8, K = 16), and numpy's exp, not vectorised on every CPU, is the loop's largest cost: `exp`
    with `where=` computes only the rest (measured 1.5-2x faster than all of them, benchmarks/).
    """
    return math.log(n_tasks) + 42.0


def _shift(logits, neg_shift, acc, *, first):
    """Make one chunk's log-weights relative to each row's running maximum, raising it (and rescaling
    what the row accumulated) where the chunk holds a larger one. In place.

    Shapes: logits (R, Mc), neg_shift (R,), acc (R, D + 1).
    """
    chunk_max = logits.max(axis=1)
    if first:  # the first chunk sets the shift (nothing accumulated yet to rescale)
        logits -= chunk_max[:, None]
        neg_shift -= chunk_max
    else:  # rows whose maximum moved up: rescale what they accumulated to the new maximum
        grow = chunk_max > 0
        if grow.any():
            up = chunk_max[grow]
            logits[grow] -= up[:, None]
            acc[grow] *= np.exp(-up)[:, None]
            neg_shift[grow] -= up


def _available_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
