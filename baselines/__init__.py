"""Closed-form Bayes estimators (float64, numpy/scipy) and the metrics that compare predictors."""

from baselines.dmmse import dmmse_predictions
from baselines.laplace import laplace_predictions
from baselines.metrics import delta, loss_vs_noiseless, loss_vs_noisy
from baselines.ridge import ridge_predictions
from baselines.smoothed import best_smoothing, smoothed_dmmse_predictions

__all__ = [
    "best_smoothing",
    "delta",
    "dmmse_predictions",
    "laplace_predictions",
    "loss_vs_noiseless",
    "loss_vs_noisy",
    "ridge_predictions",
    "smoothed_dmmse_predictions",
]
