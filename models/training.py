"""The training loop (paper Sec. 2): Adam on the MSE of every y_k, one batch per step.

It knows neither where batches come from nor where results go. Batches are `batches(step) -> (xs, ys)`,
a pure function of the step (so a resumed training sees the same data); the evaluation is
`evaluate(model) -> {metric: per-position curve}`; everything that leaves the loop goes through hooks
(progress display, tracking, a sweep's thread balancing), and checkpoints are files that say what they
are (models/checkpoint.py). Several trainings can therefore run side by side in one process.

One loop trains one model or several (`train_members`): each is a Member with its own optimiser, schedule,
hooks and checkpoints, and a strategy (models/strategies.py) says how the steps run: one model alone,
several packed into one batched computation, or one model over the ranks of a process group.
"""

import dataclasses
import functools
import math
from pathlib import Path

import torch

from models.checkpoint import LoopState, save_checkpoint
from models.optim import OptimSettings
from models.strategies import ALONE

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


@dataclasses.dataclass
class Member:
    """One training the loop drives: `model`, the `optimizer` made for it (models.make_optimizer, fresh or
    restored from the checkpoint `start` came from), its OptimSettings, hooks, Checkpointing (None: no
    checkpoints) and `start`, a LoopState (None: step 0)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    optim: OptimSettings
    hooks: tuple = ()
    checkpointing: Checkpointing | None = None
    start: LoopState | None = None


def train(model, optimizer, optim, *, batches, evaluate, hooks=(), checkpointing=None, start=None, **loop):
    """Train `model` from `start` (a LoopState; step 0 by default) to `optim.total_steps`; returns the final
    evaluation's curves. `batches(step) -> (xs, ys)`, `evaluate(model) -> curves`; the rest as in
    train_members, which this is for one Member. Raises TrainingDiverged when the loss stops being finite."""
    (result,) = train_members(
        [Member(model, optimizer, optim, tuple(hooks), checkpointing, start)],
        batches=lambda step, members: batches(step),
        evaluate=lambda index, module: evaluate(module),
        **loop,
    )
    if isinstance(result, TrainingDiverged):
        raise result
    return result


def train_members(
    members, *, batches, evaluate, eval_every, eval_per_decade=0, should_stop=None, compile=False, strategy=ALONE
):
    """Train every Member from its `start` (one step for all) to their common `optim.total_steps`; returns,
    per member, its final evaluation's curves or the TrainingDiverged that dropped it.

    `batches(step, indices)` gives the batch of the members at `indices` (those still training, in order) at
    `step`, a pure function of both: xs (B, K, D), ys (B, K) where one member trains Alone or DataParallel,
    stacked xs (S, B, K, D), ys (S, B, K) where the members train Packed (always, once there are several,
    even when one is left); `evaluate(index, module) -> {metric: per-position curve}` scores member `index`. Each
    member's schedule sets its lr at every step. It evaluates every `eval_every` steps, at `eval_per_decade`
    log-spaced steps per decade and at the end (evaluates); a start at an evaluation's step evaluates again
    first (a stop may have cut that evaluation short), one at total_steps only evaluates. A member whose
    training loss stops being finite is dropped and fails alone; the others go on. `should_stop()` is asked
    after every step: when it says yes, the loop writes the checkpoints and raises TrainingInterrupted; a
    KeyboardInterrupt (a signal's handler) during an evaluation writes the checkpoints of its step first.
    `compile` runs the steps (and a single model's evaluation) through torch.compile. `strategy`
    (models/strategies.py) says how the steps run: Alone by default (Packed for several members), or
    DataParallel (one rank of a torchrun group, `batches` giving this rank's share of each step's batch).
    """
    total = members[0].optim.total_steps
    if any(m.optim.total_steps != total for m in members):
        raise ValueError(f"members train for one length, got {[m.optim.total_steps for m in members]}")
    strategy = strategy.of(len(members))
    starts = {(m.start.step, m.start.loss_count) if m.start else (0, 0) for m in members}
    if len(starts) > 1:
        raise ValueError(f"members continue from one step, got (step, count) {sorted(starts)}")
    ((first, count),) = starts
    if not 0 <= first <= total:
        raise ValueError(f"start step {first} must be in [0, total_steps={total}]")
    sums = [m.start.loss_sum for m in members if m.start and m.start.loss_sum is not None]
    running = torch.stack([s.reshape(()) for s in sums]) if sums else None
    alive, results = list(range(len(members))), {}
    stepped, evaluated = strategy.modules([m.model for m in members], compile)

    def save(done, forced):
        """The checkpoints of the members still training that are due at `done` (all of them if `forced`)."""
        nonlocal running
        saving = [k for k, i in enumerate(alive) if members[i].checkpointing]
        saving = [k for k in saving if forced or done % members[alive[k]].checkpointing.every == 0]
        if not saving:
            return
        if running is not None:  # the processes' mean: a checkpoint resumes under any number of them
            running = strategy.mean(running)
        for k in saving if strategy.writer else ():
            member, state = members[alive[k]], LoopState(done, None if running is None else running[k].clone(), count)
            path, settings = member.checkpointing.path, member.checkpointing.settings
            save_checkpoint(path, model=member.model, optimizer=member.optimizer, loop=state, settings=settings)
            for hook in member.hooks:
                hook.on_checkpoint(done, path)

    def evaluation(done):
        for k, i in enumerate(alive):
            try:
                results[i] = evaluate(i, evaluated[k])
            except KeyboardInterrupt:  # stopped while evaluating: the step is kept, its evaluation done on resume
                if not (strategy.collective and running is not None):  # no collective outside the steps
                    save(done, forced=True)
                raise
            for hook in members[i].hooks:
                hook.on_eval(done, results[i])

    if first and evaluates(first, total, eval_every, eval_per_decade):
        evaluation(first)
    for step in range(first, total):
        lrs = [members[i].optim.lr_at(step) for i in alive]
        xs, ys = batches(step, alive)
        losses = strategy.step(stepped, [members[i].optimizer for i in alive], xs, ys, lrs)
        running = losses if running is None else running + losses
        count += 1
        done = step + 1
        # ---- training loss, every LOG_EVERY steps (one device sync each)
        boundary = done % LOG_EVERY == 0 or done == total
        if boundary:
            means = [value / count for value in strategy.mean(running).tolist()]
            running, count = None, 0
            for i, mean, lr in zip(list(alive), means, lrs, strict=True):
                if math.isfinite(mean):
                    for hook in members[i].hooks:
                        hook.on_log(done, {"training/loss": mean, "training/lr": lr})
                else:
                    results[i] = TrainingDiverged.at(done, mean, members[i].optim.lr)
                    alive.remove(i)
            if not alive:
                break
            if len(alive) < len(evaluated):
                stepped, evaluated = strategy.modules([members[i].model for i in alive], compile)
        # ---- evaluation
        if evaluates(done, total, eval_every, eval_per_decade):
            evaluation(done)
        # ---- checkpoints: on schedule, at the end, and before stopping on request
        stop = strategy.stop(should_stop is not None and bool(should_stop()), done, total, boundary)
        save(done, forced=done == total or stop)
        if stop:
            raise TrainingInterrupted(done)
    for i in alive:
        for hook in members[i].hooks:
            hook.on_end(total, results.get(i, {}))
    return [results.get(i, {}) for i in range(len(members))]
