"""Several trainings packed into one ensemble (models/ensemble.py): one batched computation in the one
training loop (models.train_members), each member still a training of its own in MLflow.

Each member is opened exactly as `pipeline.training.train` opens a training (pipeline/training.py `opened`):
its own train run with the same params, step metrics, checkpoints, registered model and alias, found
again by a sweep's reuse and resumed from its own checkpoint. Members resumed at different steps train
as separate ensembles, one per step. A member that diverges or fails the sanity gate fails alone (its run
FAILED, nothing registered); the others finish, then the first failure is raised.
"""

import contextlib
import operator
import tempfile
from pathlib import Path

import torch

from models import PACKED, Member, TrainingDiverged, train_members
from pipeline import shutdown
from pipeline.bounds import check_pack
from pipeline.devices import device_of, fixed_threads
from pipeline.training import opened, train
from pipeline.types import InputError

# What members of one ensemble must share: one architecture, batch size, length, evaluation schedule, and
# where and how they run (device, threads). Anything else (pool, seeds, lr, schedule, weight decay,
# eval sets) may differ.
SHARED = ("arch", "data.batch_size", "optim.total_steps", "eval_every", "eval_per_decade", "device", "threads")


def pack_key(settings):
    """What TrainSettings `settings` must share with the others of its ensemble (SHARED), as a tuple."""
    return operator.attrgetter(*SHARED)(settings)


def train_packed(tracking, settings, *, parent=None, labels=None, checkpoint_every=None, resume="auto", compile=False):
    """Train the TrainSettings in `settings` as one ensemble; returns their run ids, in order.

    Each member is what `pipeline.training.train(tracking, settings[k], parent=parent, label=labels[k], ...)`
    would make of it alone, to float32 round-off (a single one is trained by it). Raises the first
    member's failure once the others are done (registered); SIGTERM or SIGINT during a step checkpoint
    every member and end their runs KILLED (at any other moment, at once: pipeline/shutdown.py).
    `compile` compiles the ensemble's step (models.strategies.compiled).
    """
    keys = {pack_key(s) for s in settings}
    if len(keys) > 1:
        raise InputError(f"packed trainings must share {', '.join(SHARED)}; these differ: {sorted(map(str, keys))}")
    labels = labels or [None] * len(settings)
    if len(settings) == 1:
        control = {"checkpoint_every": checkpoint_every, "resume": resume, "compile": compile}
        return [train(tracking, settings[0], parent=parent, label=labels[0], **control)]
    device = device_of(settings[0].device)
    check_pack(settings, device)
    failures = {}
    with (
        shutdown.handling(),
        fixed_threads(settings[0].threads),
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory() as folder,
    ):
        # Each member's run in a context of its own, so one can end FAILED while the others go on.
        runs = [stack.enter_context(contextlib.ExitStack()) for _ in settings]
        trainings = [
            runs[k].enter_context(
                opened(tracking, s, device, parent=parent, label=labels[k], resume=resume, compile=compile)
            )
            for k, s in enumerate(settings)
        ]
        for k, training in enumerate(trainings):
            training.run.set_tag("packed", f"member {k + 1} of {len(trainings)} trained as one ensemble")
        groups = {}
        for k, training in enumerate(trainings):
            groups.setdefault(training.start.step if training.start else 0, []).append(k)
        for members in groups.values():
            group = [trainings[k] for k in members]
            checkpointing = [trainings[k].checkpointing(Path(folder, str(k)), checkpoint_every) for k in members]
            with shutdown.deferred():  # a signal ends the step, checkpoints every member and stops
                results = _train_ensemble(group, checkpointing, compile)
            for k, result in zip(members, results, strict=True):
                try:
                    if isinstance(result, TrainingDiverged):
                        raise trainings[k].refused(result)
                    trainings[k].finish(result)
                except Exception as error:  # this member fails alone: its run ends FAILED
                    failures[k] = error
                    runs[k].__exit__(type(error), error, error.__traceback__)
                else:
                    runs[k].close()
    if failures:
        raise failures[min(failures)]
    return [training.run.id for training in trainings]


def _train_ensemble(trainings, checkpointing, compile):
    """Train the opened `trainings` (all at one start step) as one ensemble; per member, its final curves or
    its TrainingDiverged."""
    members = [
        Member(t.model, t.optimizer, t.settings.optim, tuple(t.hooks), c, t.start)
        for t, c in zip(trainings, checkpointing, strict=True)
    ]

    def batches(step, indices):
        xs, ys = zip(*(trainings[i].batches(step) for i in indices), strict=True)
        return torch.stack(xs), torch.stack(ys)

    return train_members(
        members,
        batches=batches,
        evaluate=shutdown.interruptible(lambda index, model: trainings[index].evaluate(model)),
        eval_every=trainings[0].settings.eval_every,
        eval_per_decade=trainings[0].settings.eval_per_decade,
        should_stop=shutdown.requested,
        compile=compile,
        strategy=PACKED,
    )
