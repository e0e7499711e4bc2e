"""Scoring on the fixed evaluation sets: estimator predictions, loss/D and Delta, with stable keys.

Metric keys are the same in every run so the MLflow UI can chart and compare them across runs:
  {dist}/{predictor}/loss_noiseless   loss/D against x.w        (dist: pretrain | true)
  {dist}/{predictor}/loss_noisy       loss/D against noisy y    (predictor: pt | dmmse | ridge)
  {dist}/delta_{a}_{b}                Delta_{a,b} (paper Eq. 4)
Each is a mean over positions, logged (pipeline/tracking/curves.py) with step = the training step. The
per-position curves (context position k = 1..K) are not metrics (a position is not a step): they go to an
MLflow table `curves/by_position.json` and the figure `figures/per_position.png`. A train run logs only what involves
the transformer; the estimators' numbers, which do not change during training, live on the
evaluate_baselines run it links to.
"""

import math
import sys

import numpy as np
import torch
from tqdm import tqdm

from baselines import (
    best_smoothing,
    delta,
    dmmse_predictions,
    laplace_predictions,
    loss_vs_noiseless,
    loss_vs_noisy,
    ridge_predictions,
    smoothed_dmmse_predictions,
)
from models.strategies import thread_safe
from pipeline.devices import in_threads
from pipeline.types import InputError
from tasks import make_eval_set

PAIRS = (("pt", "dmmse"), ("pt", "ridge"), ("dmmse", "ridge"), ("pt", "laplace"), ("laplace", "ridge"))
PAIRS += (("pt", "smoothed_dmmse"), ("smoothed_dmmse", "ridge"))
EVAL_SEEDS = ("eval_data_seed", "eval_task_seed", "eval_noise_seed")
# The estimators whose predictions an evaluate_baselines run caches for the trainings that reuse it.
ESTIMATORS = ("ridge", "dmmse", "laplace", "smoothed_dmmse")
# The Laplace prior's Bayes predictor is a seeded Gibbs estimate (baselines/laplace.py): its seed.
LAPLACE_SEED = 0


def distributions(pool):
    """T_Pretrain and T_True; with M = inf they coincide, so only T_True is scored."""
    return ("true",) if pool.n_tasks == math.inf else ("pretrain", "true")


def build_eval_sets(pool, settings):
    """The fixed evaluation sets of `pool` under EvalSettings `settings`."""
    return {dist: make_eval_set(dist, pool, settings) for dist in distributions(pool)}


# dMMSE work (N * K * M) worth a progress bar: 2^30 takes about 15 s on two cores; the paper's M = 2^20
# with 2^20 sequences takes hours.
DMMSE_BAR_WORK = 2**30


def estimator_predictions(pool, eval_set, noise_scale, *, smoothing=None):
    """Ridge (lambda = sigma^2 / tau^2), for a finite pool dMMSE (and smoothed dMMSE at `smoothing`, when
    given), and with Laplace tasks the Laplace prior's Bayes predictor, on one eval set. Shapes: (N, K) each."""
    preds = {"ridge": ridge_predictions(eval_set.xs, eval_set.ys, lam=noise_scale**2 / pool.task_scale**2)}
    if pool.task_prior == "laplace":
        preds["laplace"] = laplace_predictions(
            eval_set.xs, eval_set.ys, noise_scale=noise_scale, task_scale=pool.task_scale, seed=LAPLACE_SEED
        )
    if pool.tasks is not None:
        large = eval_set.ys.size * len(pool.tasks) >= DMMSE_BAR_WORK
        # On a terminal a live bar; in a log file an update every 30 s or so.
        interval = 0.5 if sys.stderr.isatty() else 30
        with tqdm(desc=f"dMMSE M={len(pool.tasks)}", unit="chunk", disable=not large, mininterval=interval) as bar:

            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            preds["dmmse"] = dmmse_predictions(
                eval_set.xs, eval_set.ys, pool=pool.tasks, noise_scale=noise_scale, progress=progress
            )
        if smoothing is not None:
            preds["smoothed_dmmse"] = smoothed_dmmse_predictions(
                eval_set.xs, eval_set.ys, pool=pool.tasks, noise_scale=noise_scale, smoothing=smoothing
            )
    return preds


def check_smoothed_seed(evaluation, seed):
    """Refuse a smoothed_seed equal to one of EvalSettings `evaluation`'s seeds: its held-out sequences
    would be the eval set's."""
    clash = [name for name in EVAL_SEEDS if getattr(evaluation, name) == seed]
    if clash:
        raise InputError(f"smoothed_seed={seed} is also {clash[0]}: the held-out sequences would be the eval set's")


def choose_smoothing(pool, held_out):
    """Smoothed dMMSE's s for `pool` (paper Fig. 12): the best on the fresh-task (T_True) sequences that
    EvalSettings `held_out` draws. Returns (s, its loss/D on them)."""
    tuning = make_eval_set("true", pool, held_out)
    return best_smoothing(tuning.xs, tuning.ys, tuning.ws, pool=pool.tasks, noise_scale=held_out.noise_scale)


# Rows per evaluation chunk on a CPU: 2^17 activations (rows x 2K tokens x n_embd, 512 KiB) for each thread
# that computes the chunk stay in its core's cache. Measured on 4096 sequences, 2 cores (benchmarks/
# evaluation.py and sweeps of chunk sizes): chunks were 1.7-1.9x faster than one chunk of everything; at one
# thread per chunk, 2^17 beat 2^18 and 2^16 (small 1.31 s against 1.71 and 1.57, base 7.65 against 7.99 and
# 7.83, one thread), and with two threads splitting each chunk 2^18 beat 2^17. A GPU takes far larger chunks.
CPU_CHUNK_ACTIVATIONS = 2**17
CUDA_CHUNK_ACTIVATIONS = 2**26


def chunk_rows(config, device, threads=1):
    """Sequences per forward pass when evaluating a model of ModelConfig `config` on `device`, with `threads`
    CPU threads splitting each chunk's operations."""
    budget = CUDA_CHUNK_ACTIVATIONS if torch.device(device).type == "cuda" else CPU_CHUNK_ACTIVATIONS * threads
    return max(1, budget // (2 * config.n_points * config.n_embd))


def transformer_predictions(model, eval_set, *, device, chunk=None, workers=None):
    """The transformer's predictions on an eval set, `chunk` sequences at a time (default: chunk_rows).

    On a CPU the chunks are shared among `workers` threads (default: torch's thread count), each computing
    whole chunks at one torch thread (pipeline/devices.py in_threads); by default a set too small for a
    chunk per thread is cut into one chunk per thread. On a GPU, and for a compiled model, which is not
    thread-safe, the chunks are computed in turn. A short last chunk is padded with zeros to `chunk` rows,
    so a compiled model (models.strategies.compiled, static shapes) sees one shape; each row's prediction is
    its own, whatever the chunking and threads. The model's train/eval mode is left as it was.
    Shapes: -> (N, K) float64."""
    shared = torch.device(device).type == "cpu" and thread_safe(model)
    workers = (workers or torch.get_num_threads()) if shared else 1
    if chunk is None:
        chunk = chunk_rows(model.config, device, threads=1 if workers > 1 else torch.get_num_threads())
        chunk = min(chunk, max(1, -(-len(eval_set.xs) // workers)))
    starts = range(0, len(eval_set.xs), chunk)

    def predict(start):
        xs = torch.from_numpy(eval_set.xs[start : start + chunk]).to(device)
        ys = torch.from_numpy(eval_set.ys[start : start + chunk]).to(device)
        rows = len(xs)
        if start and rows < chunk:
            xs, ys = _padded(xs, chunk), _padded(ys, chunk)
        with torch.no_grad():  # per thread: a worker thread starts with gradients on
            return model(xs, ys)[:rows].double().cpu().numpy()

    training = model.training
    model.eval()
    try:
        if workers > 1 and len(starts) > 1:
            out = in_threads(predict, starts, min(workers, len(starts)))
        else:
            out = [predict(start) for start in starts]
    finally:
        model.train(training)
    return np.concatenate(out)


def _padded(tensor, rows):
    """`tensor` with zero rows appended up to `rows`."""
    return torch.cat([tensor, tensor.new_zeros(rows - len(tensor), *tensor.shape[1:])])


def score(dist, eval_set, preds):
    """Per-position curves of every metric for the predictors in `preds` on one distribution (loss
    against the noiseless targets only when the eval set knows its tasks ws)."""
    n_dims = eval_set.xs.shape[2]
    curves = {}
    for name, p in preds.items():
        if eval_set.ws is not None:
            curves[f"{dist}/{name}/loss_noiseless"] = loss_vs_noiseless(p, eval_set.xs, eval_set.ws)
        curves[f"{dist}/{name}/loss_noisy"] = loss_vs_noisy(p, eval_set.ys, n_dims=n_dims)
    for a, b in PAIRS:
        if a in preds and b in preds:
            curves[f"{dist}/delta_{a}_{b}"] = delta(preds[a], preds[b], n_dims=n_dims)
    return curves


def involves_transformer(key):
    """Whether metric `key` scores the transformer (pt): those change during training."""
    return "/pt/" in key or "delta_pt_" in key


# A model this much worse than predicting 0 is broken (diverged, exploded), not just undertrained: a
# training still on the loss plateau (every smoke-preset model of mid-size M) sits at about the trivial loss.
SANITY_MARGIN = 0.1


def sanity_error(curves, evaluation, lr):
    """The refusal (an InputError naming lr; None when it passes) of a trained model with a non-finite metric, or one
    worse than predicting 0 by more than SANITY_MARGIN on the distribution it was trained on (T_Pretrain;
    T_True when M = inf), both scored on the same eval set.

    Not on both distributions: below the threshold a memorising transformer is legitimately worse than 0
    on fresh tasks, as dMMSE is (the paper's Fig. 2; the demo at M = 4: 1.20 against 1.0)."""
    bad = sorted(key for key, curve in curves.items() if not np.isfinite(curve).all())
    dist = "pretrain" if "pretrain" in evaluation else "true"
    eval_set = evaluation[dist][0]
    zero = float(loss_vs_noiseless(np.zeros(eval_set.ys.shape), eval_set.xs, eval_set.ws).mean())
    trained = float(curves[f"{dist}/pt/loss_noiseless"].mean())
    if bad or not trained <= (1 + SANITY_MARGIN) * zero:
        reason = (
            f"{bad[0]} is not finite" if bad else f"{dist}/pt/loss_noiseless={trained:.4g}, predicting 0: {zero:.4g}"
        )
        return InputError(f"the trained model is worse than predicting 0 ({reason}); lower lr (lr={lr})")
    return None
