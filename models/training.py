"""The training loop (paper Sec. 2): Adam on the MSE of every y_k, one batch per step.

It knows neither where batches come from nor where results go. Batches are `batches(step) -> (xs, ys)`,
a pure function of the step (so a resumed training sees the same data); the evaluation is
`evaluate(model) -> {metric: per-position curve}`; everything that leaves the loop goes through hooks
(progress display, tracking, a sweep's thread balancing), and checkpoints are files that say what they
are (models/checkpoint.py). Several trainings can therefore run side by side in one process.
"""

import dataclasses
import functools
import getpass
import math
import os
import sys
import tempfile
from pathlib import Path

import torch

from models.checkpoint import LoopState, save_checkpoint
from models.optim import train_step

LOG_EVERY = 50  # steps between training-loss points (each costs a device sync)


@functools.cache
def log_spaced(total, per_decade):
    """The steps in [1, total] at round(10^(k / per_decade)), k = 0, 1, ... (per_decade 0: none)."""
    if per_decade <= 0:
        return frozenset()
    found, k = set(), 0
    while (step := round(10 ** (k / per_decade))) <= total:
        found.add(step)
        k += 1
    return frozenset(found)


def evaluates(done, total, eval_every, per_decade=0):
    """Whether a training of `total` steps evaluates after step `done`: every `eval_every` steps, at its end,
    and at `per_decade` log-spaced steps per decade (log_spaced: the early steps, where a transition-time
    curve, paper Fig. 4, moves fastest)."""
    return done % eval_every == 0 or done == total or done in log_spaced(total, per_decade)


class TrainingDiverged(ArithmeticError):
    """The training loss became NaN or infinite; the message names the step and the learning rate."""

    @classmethod
    def at(cls, step, loss, lr):
        return cls(f"training diverged at step {step}: loss={loss}; lower lr (lr={lr})")


class Hook:
    """What a loop reports, as no-op methods to override. Curves are {metric key: array over positions}."""

    def on_log(self, step, scalars):
        """Every LOG_EVERY steps and at the end: {"training/loss": mean since last log, "training/lr": lr}."""

    def on_eval(self, step, curves):
        """At every evaluation's step (evaluates: every `eval_every` steps, log-spaced ones, the end), with the
        evaluation's curves."""

    def on_checkpoint(self, step, path):
        """After a checkpoint of `step` was written (atomically) to `path`."""

    def on_end(self, step, curves):
        """After the last step, with the final evaluation's curves."""


class TrainingInterrupted(Exception):
    """The training stopped on request (SIGTERM, SIGINT) after writing a checkpoint of `step`."""

    def __init__(self, step):
        super().__init__(f"training interrupted after step {step}; its checkpoint was written")
        self.step = step

    def __reduce__(self):  # pickled from a worker process: rebuilt from the step, not the message
        return type(self), (self.step,)


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often the loop writes its checkpoint, and the settings recorded in it (model and
    data: enough to rebuild both from the file alone). `folder/last.pt` is replaced every `every` steps,
    at the end, and when the training is asked to stop."""

    folder: Path
    settings: dict
    every: int

    @property
    def path(self):
        return Path(self.folder, "last.pt")


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
    """How the loop trains when one process trains the model: the strategy every step asks (`train`'s
    `strategy`); DataParallel is the other."""

    writer = True  # this process writes the checkpoints
    collective = False  # its `mean` and `stop` need every process to call them at the same step

    def modules(self, model, compile):
        """The module the steps run through and the one the evaluation runs (both share `model`'s weights)."""
        stepped = compiled(model) if compile else model
        return stepped, stepped

    def mean(self, value):
        """A 0-d tensor's mean over the processes that train the model (alone: itself)."""
        return value

    def stop(self, asked, done, total, boundary):
        """Whether to stop after step `done` of `total` (`asked`: this process was asked to; `boundary`: a
        LOG_EVERY step)."""
        return asked and done < total


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

    def modules(self, model, compile):
        stepped = data_parallel(model)
        return (compiled(stepped) if compile else stepped), model

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


ALONE = Alone()


def train(
    model,
    optimizer,
    optim,
    *,
    batches,
    evaluate,
    eval_every,
    eval_per_decade=0,
    hooks=(),
    checkpointing=None,
    start=None,
    should_stop=None,
    compile=False,
    strategy=ALONE,
):
    """Train `model` from `start` (a LoopState; step 0 by default) to `optim.total_steps`; returns the final
    evaluation's curves.

    `optim` is an OptimSettings (its schedule sets every step's lr); `optimizer` was made for `model`
    (models.make_optimizer), fresh or restored from the checkpoint `start` came from. A `start` at an
    evaluation's step evaluates again first (a stop may have cut that evaluation short); one at total_steps
    only evaluates. `should_stop()` is asked after every step: when it says yes, the loop writes a
    checkpoint and raises TrainingInterrupted. A KeyboardInterrupt (a signal's handler) during an evaluation
    writes the checkpoint of its step before it goes on.
    It evaluates every `eval_every` steps, at `eval_per_decade` log-spaced steps per decade and at the end
    (evaluates). Raises TrainingDiverged when the training loss stops being finite. `compile` runs the
    training step's forward and backward, and the evaluation's forward, through torch.compile (`compiled`).
    `strategy` says how the processes that train the model share the work: Alone (one process), or
    DataParallel (one rank of a torchrun group, `batches` giving this rank's share of each step's batch).
    """
    total = optim.total_steps
    stepped, evaluated = strategy.modules(model, compile)
    start = start or LoopState(0, None, 0)
    if not 0 <= start.step <= total:
        raise ValueError(f"start step {start.step} must be in [0, total_steps={total}]")
    running, count, curves = start.loss_sum, start.loss_count, {}

    def save(done):
        nonlocal running
        if running is not None:  # the processes' mean: a checkpoint resumes under any number of them
            running = strategy.mean(running)
        if strategy.writer:
            state = LoopState(done, running, count)
            save_checkpoint(
                checkpointing.path, model=model, optimizer=optimizer, loop=state, settings=checkpointing.settings
            )
            for hook in hooks:
                hook.on_checkpoint(done, checkpointing.path)

    def evaluation(done):
        try:
            result = evaluate(evaluated)
        except KeyboardInterrupt:  # stopped while evaluating: the step is kept, its evaluation done on resume
            if checkpointing is not None and not (strategy.collective and running is not None):  # no collective
                save(done)
            raise
        for hook in hooks:
            hook.on_eval(done, result)
        return result

    if start.step and evaluates(start.step, total, eval_every, eval_per_decade):
        # Resumed from a checkpoint of an evaluation's step, whose evaluation a stop may have cut short: it is
        # done again (the same numbers: hooks that logged them skip them). At total_steps it is all there is.
        curves = evaluation(start.step)
    for step in range(start.step, total):
        lr = optim.lr_at(step)
        xs, ys = batches(step)
        loss = train_step(stepped, optimizer, xs, ys, lr)
        running = loss if running is None else running + loss
        count += 1
        done = step + 1
        # ---- training loss, every LOG_EVERY steps (one device sync each)
        boundary = done % LOG_EVERY == 0 or done == total
        if boundary:
            mean = strategy.mean(running).item() / count
            running, count = None, 0
            if not math.isfinite(mean):
                raise TrainingDiverged.at(done, mean, optim.lr)
            for hook in hooks:
                hook.on_log(done, {"training/loss": mean, "training/lr": lr})
        # ---- evaluation
        if evaluates(done, total, eval_every, eval_per_decade):
            curves = evaluation(done)
        # ---- checkpoint: on schedule, at the end, and before stopping on request
        stop = strategy.stop(should_stop is not None and bool(should_stop()), done, total, boundary)
        if checkpointing is not None and (done % checkpointing.every == 0 or done == total or stop):
            save(done)
        if stop:
            raise TrainingInterrupted(done)
    for hook in hooks:
        hook.on_end(total, curves)
    return curves
