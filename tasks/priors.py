"""Task priors: the distribution of w for pool draws, fresh M = inf tasks and T_True eval tasks.

`gaussian` is the paper's N(0, tau^2 I); `laplace` (paper Fig. 14) has i.i.d. Laplace coordinates of
scale tau / sqrt(2), the same variance. A Gaussian draw is unchanged by this module (the same generator
calls as before it existed), so Gaussian pools, batches and eval sets stay bit for bit what they were.
"""

import math

import torch

PRIORS = ("gaussian", "laplace")


def check_prior(task_prior):
    if task_prior not in PRIORS:
        raise ValueError(f"task_prior must be one of {PRIORS}, got {task_prior!r}")


def numpy_tasks(rng, shape, *, task_prior, task_scale):
    """Tasks of `shape` (float64) from numpy Generator `rng`."""
    check_prior(task_prior)
    if task_prior == "laplace":
        return rng.laplace(0.0, task_scale / math.sqrt(2.0), size=shape)
    return task_scale * rng.standard_normal(shape)


def torch_tasks(generator, shape, *, task_prior, task_scale, device):
    """Tasks of `shape` (float32) from torch Generator `generator` on `device`; a Laplace draw is the
    difference of two unit exponentials times its scale."""
    check_prior(task_prior)
    if task_prior == "laplace":
        first = torch.empty(shape, device=device).exponential_(generator=generator)
        second = torch.empty(shape, device=device).exponential_(generator=generator)
        return task_scale / math.sqrt(2.0) * (first - second)
    return task_scale * torch.randn(shape, generator=generator, device=device)
