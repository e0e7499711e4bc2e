"""Benchmark (not in CI; part of `make bench`): evaluating a transformer on 4096 sequences in one chunk
(the former default) against cache-sized chunks (pipeline/evaluation.py chunk_rows), side by side, for
the demo (small) and base models at D = 8, K = 16; the predictions must be identical.
"""

import time

import numpy as np
import torch

from models import ModelConfig, build_model
from pipeline.evaluation import chunk_rows, transformer_predictions
from tasks import EvalSet

N_DIMS, N_POINTS, N_SEQS = 8, 16, 4096


def timed(model, eval_set, chunk):
    start = time.perf_counter()
    preds = transformer_predictions(model, eval_set, device="cpu", chunk=chunk)
    return time.perf_counter() - start, preds


def main():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((N_SEQS, N_POINTS, N_DIMS)).astype(np.float32)
    eval_set = EvalSet(xs, None, rng.standard_normal((N_SEQS, N_POINTS)).astype(np.float32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {N_SEQS} sequences, best of 3\n")
    print("| model | one chunk | chunks of | chunked | speed-up | identical |\n|---|---|---|---|---|---|")
    for size in ("small", "base"):
        model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
        rows = chunk_rows(model.config, "cpu")
        whole, chunked = [], []
        for _ in range(3):  # alternate, so that load changes hit both alike
            whole.append(timed(model, eval_set, N_SEQS))
            chunked.append(timed(model, eval_set, rows))
        same = all(np.array_equal(w[1], c[1]) for w, c in zip(whole, chunked, strict=True))
        t_whole, t_chunked = min(t for t, _ in whole), min(t for t, _ in chunked)
        print(f"| {size} | {t_whole:.2f} s | {rows} | {t_chunked:.2f} s | {t_whole / t_chunked:.1f}x | {same} |")


if __name__ == "__main__":
    main()
