"""Scoring on the fixed evaluation sets: estimator predictions, loss/D and Delta, with stable keys.

Metric keys are the same in every run so the MLflow UI can chart and compare them across runs:
  {dist}/{predictor}/loss_noiseless   loss/D against x.w        (dist: pretrain | true)
  {dist}/{predictor}/loss_noisy       loss/D against noisy y    (predictor: pt | dmmse | ridge)
  {dist}/delta_{a}_{b}                Delta_{a,b} (paper Eq. 4)
Each is a mean over positions; `_by_k` variants hold the per-position curve with step = k (1-based).
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from baselines import delta, dmmse_predictions, loss_vs_noiseless, loss_vs_noisy, ridge_predictions
from pipeline.types import InputError
from tasks import make_eval_set

PAIRS = (("pt", "dmmse"), ("pt", "ridge"), ("dmmse", "ridge"))


def distributions(pool):
    """T_Pretrain and T_True; with M = inf they coincide, so only T_True is scored."""
    return ("true",) if pool.n_tasks == math.inf else ("pretrain", "true")


def build_eval_sets(pool, settings):
    """The fixed evaluation sets of `pool` under EvalSettings `settings`."""
    return {dist: make_eval_set(dist, pool, settings) for dist in distributions(pool)}


def estimator_predictions(pool, eval_set, noise_scale):
    """Ridge (lambda = sigma^2 / tau^2) and, for a finite pool, dMMSE on one eval set. Shapes: (N, K) each."""
    preds = {"ridge": ridge_predictions(eval_set.xs, eval_set.ys, lam=noise_scale**2 / pool.task_scale**2)}
    if pool.tasks is not None:
        preds["dmmse"] = dmmse_predictions(eval_set.xs, eval_set.ys, pool=pool.tasks, noise_scale=noise_scale)
    return preds


@torch.no_grad()
def transformer_predictions(model, eval_set, *, device, chunk=4096):
    """The transformer's predictions on an eval set, in chunks. Shapes: -> (N, K) float64."""
    model.eval()
    out = []
    for start in range(0, len(eval_set.xs), chunk):
        xs = torch.from_numpy(eval_set.xs[start : start + chunk]).to(device)
        ys = torch.from_numpy(eval_set.ys[start : start + chunk]).to(device)
        out.append(model(xs, ys).double().cpu().numpy())
    model.train()
    return np.concatenate(out)


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


def log_curves(run, curves, *, step=None, by_position=True, logged=None):
    """Log each curve's mean on `run` (at `step`) and, if asked, the curve itself with step = position.
    `logged` ({key: last step}, from a resumed run) leaves out what the run already holds."""
    run.log_metrics({key: float(curve.mean()) for key, curve in curves.items()}, step, logged)
    if by_position:
        n_points = len(next(iter(curves.values())))
        for k in range(1, n_points + 1):
            run.log_metrics({f"{key}_by_k": float(curve[k - 1]) for key, curve in curves.items()}, k, logged)


# A model this much worse than predicting 0 is broken (diverged, exploded), not just undertrained: a
# training still on the loss plateau (every smoke-preset model of mid-size M) sits at about the trivial loss.
SANITY_MARGIN = 0.1


def check_sanity(run, curves, evaluation, lr):
    """Refuse (InputError naming lr; tag resumable=false) a trained model with a non-finite metric, or one
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
        run.set_tag("resumable", "false")
        reason = (
            f"{bad[0]} is not finite" if bad else f"{dist}/pt/loss_noiseless={trained:.4g}, predicting 0: {zero:.4g}"
        )
        raise InputError(f"the trained model is worse than predicting 0 ({reason}); lower lr (lr={lr})")


def save_eval_sets(folder, eval_sets, preds, settings, pool):
    """Write eval sets with cached predictions (eval/{dist}.npz) and how they were made (settings.json:
    the EvalSettings `settings` and the pool digest)."""
    folder = Path(folder)
    for dist, eval_set in eval_sets.items():
        arrays = {"xs": eval_set.xs, "ws": eval_set.ws, "ys": eval_set.ys, **preds[dist]}
        np.savez(folder / f"{dist}.npz", **arrays)
    record = dataclasses.asdict(settings) | {"pool_sha256": pool.digest}
    (folder / "settings.json").write_text(json.dumps(record, indent=2))
