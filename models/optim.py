"""Optimiser and learning-rate schedules (paper Sec. 2 and the weight-decay study of Sec. 5).

Adam(0.9, 0.999, eps 1e-8), no clipping. Weight decay, when used, applies only to the weight
matrices inside the transformer blocks (not read-in/out, positions, LayerNorms or biases); with
weight_decay = 0 the AdamW update is exactly Adam's. Schedules are pure functions of the step.
"""

import dataclasses
import math

import torch
from torch import nn

from models.transformer import Block


def param_groups(model, weight_decay):
    """[decayed, not decayed] parameter groups: the weights of the blocks' linear maps, and the rest."""
    decay = [
        m.weight
        for block in model.modules()
        if isinstance(block, Block)
        for m in block.modules()
        if isinstance(m, nn.Linear)
    ]
    decay_ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    assert len(decay) + len(rest) == len(list(model.parameters())), "a parameter is in two groups"
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def make_optimizer(model, *, lr, weight_decay=0.0):
    """AdamW over `param_groups`; fused kernels where the device supports them."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a non-negative finite number, got {weight_decay!r}")
    groups = param_groups(model, weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)


def triangle(step, *, lr, warmup_steps, total_steps):
    """Linear 0 -> lr over the warm-up, then linear lr -> 0 at `total_steps` (the paper's schedule)."""
    _check(warmup_steps, total_steps)
    if step < warmup_steps:
        return lr * step / warmup_steps
    return lr * max(0.0, (total_steps - step) / (total_steps - warmup_steps))


def cosine(step, *, lr, warmup_steps, total_steps):
    """Linear 0 -> lr over the warm-up, then half a cosine from lr down to 0 at `total_steps`."""
    _check(warmup_steps, total_steps)
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {"triangle": triangle, "cosine": cosine}


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    """How a training optimises: peak lr, schedule by name, warm-up, length and weight decay (no defaults)."""

    lr: float
    schedule: str
    warmup_steps: int
    total_steps: int
    weight_decay: float

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        _check(self.warmup_steps, self.total_steps)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative finite number, got {self.weight_decay!r}")

    def lr_at(self, step):
        """The learning rate of the update made at `step` (0-based)."""
        schedule = SCHEDULES[self.schedule]
        return schedule(step, lr=self.lr, warmup_steps=self.warmup_steps, total_steps=self.total_steps)


def _check(warmup_steps, total_steps):
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps={warmup_steps} must be in [0, total_steps={total_steps})")


def train_step(model, optimizer, xs, ys, lr):
    """One Adam step at learning rate `lr` on the MSE between predictions and the noisy targets.

    Shapes: xs (B, K, D), ys (B, K). Returns the batch loss (a 0-d tensor, detached).
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = nn.functional.mse_loss(model(xs, ys), ys)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
