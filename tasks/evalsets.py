"""Fixed evaluation sets for the two task distributions of the paper.

- T_Pretrain: tasks drawn uniformly from the training pool, fresh x and noise.
- T_True: a fresh w ~ N(0, task_scale^2 I_D) per sequence (the original code calls it "Latent").
They use their own seeds and stream ids, so they share no draw with any training batch, and numpy
generators on the CPU, so they are the same on every device. Values are float32, the precision the
transformer reads; estimators cast the same values to float64.
"""

import dataclasses
import math

import numpy as np

from tasks.priors import numpy_tasks
from tasks.streams import numpy_rng

KINDS = ("pretrain", "true")


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """One fixed evaluation set. Shapes: xs (N, K, D), ws (N, D), ys (N, K), float32."""

    xs: np.ndarray
    ws: np.ndarray
    ys: np.ndarray


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How the fixed evaluation sets are drawn: their size, sequence shape and seeds (no defaults here)."""

    n_eval: int
    n_points: int
    noise_scale: float
    data_scale: float
    eval_data_seed: int
    eval_task_seed: int
    eval_noise_seed: int

    def __post_init__(self):
        for name in ("n_eval", "n_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # Evaluation scores against ridge, whose lambda = noise_scale^2 / task_scale^2 must be positive.
        if not (math.isfinite(self.noise_scale) and self.noise_scale > 0):
            raise ValueError(f"noise_scale must be a positive finite number for evaluation, got {self.noise_scale!r}")
        if not (math.isfinite(self.data_scale) and self.data_scale > 0):
            raise ValueError(f"data_scale must be a positive finite number, got {self.data_scale!r}")


def make_eval_set(kind, pool, settings):
    """The evaluation set of `kind` ('pretrain' or 'true') for `pool` (a `tasks.TaskPool`) under
    EvalSettings `settings`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "pretrain" and pool.n_tasks == math.inf:
        raise ValueError("kind='pretrain' needs a finite pool, got n_tasks=inf")
    index = KINDS.index(kind)
    shape = (int(settings.n_eval), int(settings.n_points), pool.n_dims)
    xs = settings.data_scale * numpy_rng(settings.eval_data_seed, "eval_data", index).standard_normal(shape)
    task_rng = numpy_rng(settings.eval_task_seed, "eval_task", index)
    if kind == "pretrain":
        ws = pool.tasks[task_rng.integers(len(pool.tasks), size=shape[0])].astype(np.float64)
    else:
        ws = numpy_tasks(task_rng, (shape[0], shape[2]), task_prior=pool.task_prior, task_scale=pool.task_scale)
    xs, ws = xs.astype(np.float32), ws.astype(np.float32)
    noise = settings.noise_scale * numpy_rng(settings.eval_noise_seed, "eval_noise", index).standard_normal(shape[:2])
    ys = np.einsum("nkd,nd->nk", xs.astype(np.float64), ws.astype(np.float64)) + noise
    return EvalSet(xs, ws, ys.astype(np.float32))
