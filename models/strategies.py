"""How the training loop (models/training.py) runs its steps: the strategies it asks, and compilation.

Alone trains one model in this process; Packed trains several models of one architecture in this process
as one batched computation (models/ensemble.py), each with its own optimiser; DataParallel makes this
process one rank of a torch.distributed group training one model. The loop asks its strategy to build the
module the steps run through, to take a step, to average a value over the processes, and whether to
stop; it has no branch of its own for any of them.
"""

import getpass
import os
import sys
import tempfile

import torch

from models.ensemble import Ensemble
from models.optim import train_step


def compiled(model):
    """`model` (an nn.Module) behind torch.compile (inductor, static shapes): its forward and backward become
    generated kernels, compiled at the first call. It shares `model`'s parameters, so the optimiser, the
    checkpoints and the evaluation use `model` itself.

    Under ATEN_CPU_CAPABILITY (torch's kernels of another CPU chosen), inductor's on-disk cache goes to a
    folder of that capability's own, unless TORCHINDUCTOR_CACHE_DIR says where: the cache's key leaves the
    capability out, and a cached kernel of another one fails to build (measured with torch 2.13 after a run
    at avx512, under `default`: "'at::vec' has not been declared")."""
    capability = os.environ.get("ATEN_CPU_CAPABILITY")
    if capability:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name here
            user = "unknown"
        shared = os.path.join(tempfile.gettempdir(), f"torchinductor_{user}")  # inductor's default folder
        # Importing inductor (building a model may) sets the variable to its default: that counts as unset.
        if os.environ.get("TORCHINDUCTOR_CACHE_DIR", shared) == shared:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{shared}_{capability}"
    return torch.compile(model, dynamic=False)


def thread_safe(model):
    """Whether `model` may run its forward in several threads at once: an eager one may; one behind
    torch.compile may not (neither dynamo nor inductor is thread-safe: pytorch/pytorch#118260)."""
    # Where dynamo was never imported, no model is compiled (and importing it would cost seconds).
    dynamo = sys.modules.get("torch._dynamo.eval_frame")
    return dynamo is None or not isinstance(model, dynamo.OptimizedModule)


def data_parallel(model):
    """`model` behind DistributedDataParallel (the process group is initialised): its backward averages the
    gradients over the ranks. It shares `model`'s parameters, like `compiled`."""
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


class Alone:
    """One process trains one model: the strategy by default (models.train's `strategy`)."""

    writer = True  # this process writes the checkpoints
    collective = False  # its `mean` and `stop` need every process to call them at the same step

    def of(self, count):
        """The strategy that trains `count` models: this one for one model, Packed for several."""
        return self if count == 1 else PACKED

    def modules(self, models, compile):
        """The module the steps run through and, per model, the one its evaluation runs (sharing the
        models' weights)."""
        (model,) = models
        stepped = compiled(model) if compile else model
        return stepped, [stepped]

    def step(self, stepped, optimizers, xs, ys, lrs):
        """One step of every model at its learning rate in `lrs`; each one's batch loss, (S,), detached."""
        return train_step(stepped, optimizers[0], xs, ys, lrs[0]).reshape(1)

    def mean(self, value):
        """A tensor's mean over the processes that train the models (alone: itself)."""
        return value

    def stop(self, asked, done, total, boundary):
        """Whether to stop after step `done` of `total` (`asked`: this process was asked to; `boundary`: a
        LOG_EVERY step)."""
        return asked and done < total


class Packed(Alone):
    """One process trains S models of one architecture as one ensemble (models/ensemble.py): the step runs
    their stacked weights through the transformer's layers at once, on the sum of their losses (member s's
    gradient is that of its own loss: the terms share no parameter), then each model's own optimiser steps
    it; the models are evaluated and checkpointed as themselves. Batches stack the members' own:
    xs (S, B, K, D), ys (S, B, K)."""

    def of(self, count):
        return self

    def modules(self, models, compile):
        ensemble = Ensemble(models)
        return (compiled(ensemble) if compile else ensemble), list(models)

    def step(self, stepped, optimizers, xs, ys, lrs):
        losses = ((stepped(xs, ys) - ys) ** 2).mean(dim=(1, 2))
        for optimizer, lr in zip(optimizers, lrs, strict=True):
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        for optimizer in optimizers:
            optimizer.step()
        return losses.detach()


class DataParallel(Alone):
    """This process is one rank of a torch.distributed group (torchrun) training one model on a shared batch:
    the steps run through DistributedDataParallel (gradients averaged over the ranks: the global batch's
    gradient; the evaluation stays eager on the model itself), the logged loss is the mean over the ranks,
    and only rank 0 writes checkpoints. The ranks agree to stop after the step in which any was asked to
    (gloo), or at the next LOG_EVERY boundary on GPUs (NCCL), where a per-step agreement would be a host
    sync per step."""

    collective = True

    def __init__(self):
        self.writer = torch.distributed.get_rank() == 0
        self.on_gpu = torch.distributed.get_backend() == "nccl"

    def of(self, count):
        if count != 1:
            raise ValueError(f"a data-parallel training trains one model, got {count}")
        return self

    def modules(self, models, compile):
        (model,) = models
        stepped = data_parallel(model)
        return (compiled(stepped) if compile else stepped), [model]

    def mean(self, value):
        total = value.detach().clone()
        torch.distributed.all_reduce(total)
        return total / torch.distributed.get_world_size()

    def stop(self, asked, done, total, boundary):
        if done >= total or not (boundary or not self.on_gpu):
            return False
        device = "cuda" if self.on_gpu else "cpu"
        flag = torch.tensor(float(asked), device=device)  # any rank's: a collective at the same step on every rank
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())


ALONE, PACKED = Alone(), Packed()
