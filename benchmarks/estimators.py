"""Benchmark (not in CI; `make bench`): the exact estimators, each dMMSE backend against the per-prefix loop.

Measured side by side in one run on this machine and printed as a table, with the issue's targets:
- ridge and dMMSE on 4096 sequences at D = 8, K = 16 (M = 2^10, 2^15, 2^20) and at D = 32, K = 64
  (M = 2^14), for the numpy and the torch backend (and torch on CUDA where there is one);
- next to the straightforward per-prefix loop written from the paper's Eq. 2 (one (B, k, M) residual
  tensor per prefix length, float64: the original code's algorithm), timed on a slice of the sequences
  and scaled up; the agreement column is the largest difference from the loop on that slice, relative to
  the largest prediction (the tests require 1e-10).
Each backend runs in a fresh process, so that its peak memory (resident set growth, benchmarks/memory.py)
is its own and not memory an earlier case left to the allocator.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from scipy.special import softmax

from baselines import dmmse_predictions, ridge_predictions
from benchmarks.memory import peak_growth

NOISE = 0.5
# (D, K, log2 M, target seconds or None): the two targets, and the sizes of earlier tables.
CASES = [(8, 16, 10, None), (8, 16, 15, None), (8, 16, 20, 90.0), (32, 64, 14, 600.0)]
QUICK = [(8, 16, 10, None), (32, 64, 8, None)]  # --quick (CI): the same code paths in seconds


def make_case(n_dims, n_points, log2_m, n_seqs, seed=0):
    """A pool of 2^log2_m tasks and n_seqs sequences drawn from it (seeded: the same in every process)."""
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((2**log2_m, n_dims))
    xs = rng.standard_normal((n_seqs, n_points, n_dims))
    ws = pool[rng.integers(len(pool), size=n_seqs)]
    ys = np.einsum("bkd,bd->bk", xs, ws) + NOISE * rng.standard_normal((n_seqs, n_points))
    return pool, xs, ys


def dmmse_loop(xs, ys, *, pool, noise_scale):
    """Paper Eq. 2 per prefix length k: a (B, k, M) residual tensor, then a softmax over the pool."""
    preds = np.zeros(ys.shape)
    preds[:, 0] = xs[:, 0] @ pool.mean(axis=0)
    for k in range(1, xs.shape[1]):
        residuals = ys[:, :k, None] - xs[:, :k] @ pool.T  # (B, k, D) @ (D, M) -> (B, k, M)
        weights = softmax(-(residuals**2).sum(axis=1) / (2 * noise_scale**2), axis=1)
        preds[:, k] = np.einsum("bd,bd->b", xs[:, k], weights @ pool)
    return preds


def ridge_loop(xs, ys, *, lam):
    """One batched solve per prefix length k, in float64."""
    preds = np.zeros(ys.shape)
    for k in range(1, xs.shape[1]):
        x, y = xs[:, :k], ys[:, :k]
        gram = np.einsum("bkd,bke->bde", x, x) + lam * np.eye(xs.shape[2])
        w = np.linalg.solve(gram, np.einsum("bkd,bk->bd", x, y)[..., None])[..., 0]
        preds[:, k] = np.einsum("bd,bd->b", xs[:, k], w)
    return preds


def one_backend(case, out):
    """In a fresh process: time and peak memory of one backend on all sequences, and its predictions on
    the first `n_slice` sequences saved to `out` (npz) for the comparison with the loop."""
    pool, xs, ys = make_case(case["n_dims"], case["n_points"], case["log2_m"], case["n_seqs"])
    kwargs = {"pool": pool, "noise_scale": NOISE, "backend": case["backend"], "device": case["device"]}
    dmmse_predictions(xs[:8], ys[:8], **kwargs)  # warm-up: first-call costs (CUDA context, allocators)
    start = time.perf_counter()
    preds, peak = peak_growth(dmmse_predictions, xs, ys, **kwargs)
    seconds = time.perf_counter() - start
    np.savez(out, preds=preds[: case["n_slice"]])
    return {"seconds": seconds, "peak": peak}


def backends():
    """(backend, device) pairs to time: numpy and torch on the CPU, torch on CUDA where there is one."""
    found = [("numpy", None), ("torch", "cpu")]
    return found + ([("torch", "cuda")] if torch.cuda.is_available() else [])


def loop_slice(n_seqs, log2_m, n_points, budget):
    """Sequences of the loop to time: about `budget` at M = 2^20, K = 16, more where each is cheaper."""
    cost = 2**log2_m * n_points**2 / (2**20 * 16**2)
    return max(2, min(n_seqs, int(budget / cost)))


def dmmse_rows(n_seqs, cases, budget, chosen):
    for n_dims, n_points, log2_m, target in cases:
        n_slice = loop_slice(n_seqs, log2_m, n_points, budget)
        pool, xs, ys = make_case(n_dims, n_points, log2_m, n_seqs)
        start = time.perf_counter()
        reference = dmmse_loop(xs[:n_slice], ys[:n_slice], pool=pool, noise_scale=NOISE)
        loop_seconds = (time.perf_counter() - start) * n_seqs / n_slice
        del pool, xs, ys
        scale = np.abs(reference).max()
        note = "" if n_slice == n_seqs else f" (on {n_slice}, x{n_seqs / n_slice:.0f})"
        for backend, device in chosen:
            case = {"n_dims": n_dims, "n_points": n_points, "log2_m": log2_m, "n_seqs": n_seqs}
            case |= {"n_slice": n_slice, "backend": backend, "device": device}
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder, "preds.npz")
                command = [sys.executable, "-m", "benchmarks.estimators", "--one", json.dumps(case), "--out", out]
                measured = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                agreement = np.abs(np.load(out)["preds"] - reference).max() / scale
            verdict = ""
            if target is not None:
                verdict = f"<= {target:.0f} s: {'met' if measured['seconds'] <= target else 'NOT met'}"
            name = backend + (f" ({device})" if device and device != "cpu" else "")
            print(
                f"| dMMSE | {n_dims} | {n_points} | 2^{log2_m} | {name} | {measured['seconds']:.3g} s "
                f"| {measured['peak'] / 2**20:.0f} MiB | {loop_seconds:.3g} s{note} "
                f"| {loop_seconds / measured['seconds']:.2g}x | {agreement:.1e} | {verdict} |",
                flush=True,
            )


@click.command()
@click.option("--n-seqs", default=4096, show_default=True, help="Sequences per timing.")
@click.option("--loop-budget", default=8, show_default=True, help="Loop sequences timed at M = 2^20, K = 16.")
@click.option("--quick", is_flag=True, help="Small cases only (M = 2^10 at D = 8, 2^8 at D = 32): checks the script.")
@click.option("--only", default="", help="Only these cases, as D/K/log2 M separated by commas (e.g. 8/16/20,32/64/14).")
@click.option("--backends", "names", default="", help="Only these backends (numpy, torch), separated by commas.")
@click.option("--one", hidden=True, help="Internal: one backend's case (JSON), in a fresh process.")
@click.option("--out", hidden=True, type=click.Path(), help="Internal: where --one saves its predictions.")
def main(n_seqs, loop_budget, quick, only, names, one, out):
    if one:
        print(json.dumps(one_backend(json.loads(one), out)))
        return
    cases = QUICK if quick else CASES
    if only:
        wanted = {tuple(int(v) for v in case.split("/")) for case in only.split(",")}
        cases = [case for case in dict.fromkeys(CASES + QUICK) if case[:3] in wanted]
    chosen = [pair for pair in backends() if not names or pair[0] in names.split(",")]
    print(f"torch {torch.__version__}, numpy {np.__version__}; {n_seqs} sequences, float64, sigma = {NOISE}\n")
    print("| estimator | D | K | M | backend | time | peak | per-prefix loop | speed-up | agreement (rel.) | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    _, xs, ys = make_case(8, 16, 4, n_seqs)
    ridge_predictions(xs[:8], ys[:8], lam=NOISE**2)  # warm-up
    start = time.perf_counter()
    fast, peak = peak_growth(ridge_predictions, xs, ys, lam=NOISE**2)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    loop = ridge_loop(xs, ys, lam=NOISE**2)
    loop_seconds = time.perf_counter() - start
    agreement = np.abs(fast - loop).max() / np.abs(loop).max()
    print(
        f"| ridge | 8 | 16 | - | numpy | {seconds:.3g} s | {peak / 2**20:.0f} MiB | {loop_seconds:.3g} s "
        f"| {loop_seconds / seconds:.1f}x | {agreement:.1e} | |",
        flush=True,
    )
    dmmse_rows(n_seqs, cases, loop_budget, chosen)


if __name__ == "__main__":
    main()
