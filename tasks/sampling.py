"""Training batches of noisy linear-regression sequences (paper Sec. 2), a pure function of the step.

A sequence is K pairs x_k ~ N(0, data_scale^2 I_D), y_k = w . x_k + eps_k, eps_k ~ N(0, noise_scale^2),
with w drawn uniformly *with replacement* from the pool (or fresh from N(0, task_scale^2 I_D) when
M = inf). Data, task choice and noise each come from their own generator keyed by (seed, stream,
step), so the batch at step s is the same whether training started at 0 or resumed at s.
"""

import dataclasses
import math

import torch

from tasks.priors import torch_tasks
from tasks.streams import torch_generator


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """What a training batch looks like; the seeds are those of the data, task and noise streams.

    No defaults here: every value comes from the caller's settings.
    """

    batch_size: int
    n_points: int
    n_dims: int
    noise_scale: float
    data_scale: float
    data_seed: int
    task_seed: int
    noise_seed: int

    def __post_init__(self):
        for name in ("batch_size", "n_points", "n_dims"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.data_scale) and self.data_scale > 0):
            raise ValueError(f"data_scale must be a positive finite number, got {self.data_scale!r}")
        if not (math.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ValueError(f"noise_scale must be a non-negative finite number, got {self.noise_scale!r}")


def sample_batch(spec, step, *, pool, task_scale, task_prior="gaussian", device="cpu"):
    """The training batch of DataSettings `spec` at `step`, drawn on `device`. The tasks come from `pool`,
    a (M, D) tensor there, or fresh from the prior (N(0, task_scale^2 I), or `task_prior` laplace) when
    `pool` is None (M = inf).

    Shapes: -> xs (B, K, D), ws (B, D), ys (B, K), float32.
    """
    if pool is not None and (pool.ndim != 2 or pool.shape[1] != spec.n_dims or len(pool) == 0):
        raise ValueError(f"pool must have shape (M, {spec.n_dims}) with M > 0, got {tuple(pool.shape)}")
    shape = (spec.batch_size, spec.n_points, spec.n_dims)
    data = torch_generator(spec.data_seed, "data", step, device)
    xs = spec.data_scale * torch.randn(shape, generator=data, device=device)
    task = torch_generator(spec.task_seed, "task", step, device)
    if pool is None:
        ws = torch_tasks(task, (shape[0], shape[2]), task_prior=task_prior, task_scale=task_scale, device=device)
    else:
        ws = pool[torch.randint(len(pool), (shape[0],), generator=task, device=device)]
    noise = torch_generator(spec.noise_seed, "noise", step, device)
    ys = torch.einsum("bkd,bd->bk", xs, ws)
    ys = ys + spec.noise_scale * torch.randn(shape[:2], generator=noise, device=device)
    return xs, ws, ys


def batch_stream(spec, *, pool, task_scale, task_prior="gaussian", device="cpu"):
    """`step -> (xs, ys)`: the training batches of `sample_batch` as a function of the step alone (what a
    training loop takes)."""

    def batches(step):
        xs, _, ys = sample_batch(spec, step, pool=pool, task_scale=task_scale, task_prior=task_prior, device=device)
        return xs, ys

    return batches
