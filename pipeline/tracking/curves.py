"""Scores as MLflow records: a curve's mean as a metric per step, the per-position curves as a table, and
where a run sits on the paper's x-axis (log2 M)."""

import math

from pipeline.types import INF_LOG2_N_TASKS, log2_n_tasks


def log_curves(run, curves, *, step=None, logged=None):
    """Log each curve's mean on `run` (at `step`); `logged` ({key: last step}, from a resumed run) leaves out
    what the run already holds."""
    run.log_metrics({key: float(curve.mean()) for key, curve in curves.items()}, step, logged)


def log_position_table(run, curves):
    """The per-position curves as an MLflow table: column k (1-based context position), one per metric."""
    n_points = len(next(iter(curves.values())))
    table = {"k": list(range(1, n_points + 1))} | {key: [float(v) for v in curve] for key, curve in curves.items()}
    run.log_table(table, "curves/by_position.json")


def log_pool_size(run, n_tasks):
    """The metric log2_n_tasks on `run` (charts, scatter and parallel-coordinates plots of the MLflow UI
    then put runs where the paper's x-axis does) and, at M = inf, a tag saying where inf was drawn."""
    run.log_metrics({"log2_n_tasks": log2_n_tasks(n_tasks)})
    if n_tasks == math.inf:
        run.set_tag("log2_n_tasks", f"inf, drawn at {INF_LOG2_N_TASKS:g} (right of the largest finite M)")
