"""The sweep's grid: every option with several values is an axis; a point is one value per option.

`n_tasks` is always an axis (the x-axis of every summary). `batch_size` and `total_steps` are the data
scale (the paper locates M* where two data scales' curves cross); every other axis (weight_decay,
n_embd, lr, a seed, ...) splits the points into groups that get a curve and a threshold each. Unless
warmup_steps is an axis itself, each point warms up for the same share of its total_steps. Axes named in
`link` vary together (their i-th values form one point) instead of crossing: n_dims with n_points keeps
K = 2D at each D. With replicates > 1, `replicate` is the last axis: each replicate of a point draws its
pool and training anew (`replicate_seed`), on the same eval sets.
"""

import dataclasses
import itertools
import math

import numpy as np

from pipeline.bounds import check_points
from pipeline.presets import REPLICATE
from pipeline.types import InputError, as_text, pool_label

DATA_SCALE = ("batch_size", "total_steps")
SHORT = {"batch_size": "B", "total_steps": "T", REPLICATE: "r"}  # labels: m1024-B512-r1
# The seeds a replicate draws anew: its pool and training. The eval sets' are shared, so that every
# replicate is scored on the same T_True sequences (T_Pretrain's tasks are its own pool's).
REPLICATED = ("pool_seed", "data_seed", "task_seed", "noise_seed", "model_seed")


def replicate_seed(seed, replicate):
    """The seed of replicate `replicate` of a setting whose seed is `seed`: itself for replicate 0 (so a sweep
    given replicates reuses the runs it made before), else a number drawn from both by numpy's SeedSequence,
    which no other (seed, replicate) and no seed_offset maps to in practice."""
    if replicate == 0:
        return seed
    return int(np.random.SeedSequence([seed, replicate]).generate_state(1, np.uint32)[0])


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the grid: `values` holds one typed value per option; `axes` names the sweep's axes."""

    values: dict
    axes: tuple

    @property
    def label(self):
        """m1024, or with the other axes' values: m1024-B512-weight_decay=0.001."""
        return self.label_of(self.axes)

    def label_of(self, names):
        """The label with only the axes among `names` (a stage's options): runs that only depend on those."""
        parts = [pool_label(self.values["n_tasks"])]
        parts += [axis_text(axis, self.values[axis]) for axis in self.axes[1:] if axis in names]
        return "-".join(parts)


def axis_text(axis, value):
    """B512, T20000 for the data scale; weight_decay=0.001 for any other axis."""
    return f"{SHORT[axis]}{as_text(value)}" if axis in SHORT else f"{axis}={as_text(value)}"


def grid(settings, threads):
    """The points of SweepSettings `settings`, n_tasks varying fastest; each point's warmup_steps is the
    sweep's warm-up share of its total_steps unless warmup_steps is an axis, and `threads` 0 becomes the
    executor's count `threads`. A warm-up longer than the training, or more points than max_points, fails
    here, before any run starts."""
    names, options = settings.axes, settings.options
    linked = [name for name in settings.link if name in names]
    free = [name for name in names if name != "n_tasks" and name not in linked]
    columns = [options[name] for name in free]
    if linked:  # one column whose entries are the linked axes' i-th values together
        columns.append(list(zip(*(options[name] for name in linked), strict=True)))
    check_points(math.prod(map(len, columns)) * len(options["n_tasks"]), settings.execution.max_points)
    points = []
    for combination in itertools.product(*columns):
        chosen = dict(zip(free, combination, strict=False))
        if linked:
            chosen |= dict(zip(linked, combination[-1], strict=True))
        for n_tasks in options["n_tasks"]:
            values = {name: value[0] for name, value in options.items()}
            values |= chosen | {"n_tasks": n_tasks}
            values["threads"] = values["threads"] or threads
            values |= {name: replicate_seed(values[name], values[REPLICATE]) for name in REPLICATED}
            if "warmup_steps" not in names:
                values["warmup_steps"] = round(settings.warmup_fraction * values["total_steps"])
            if not 0 <= values["warmup_steps"] < values["total_steps"]:
                raise InputError(
                    f"warmup_steps={values['warmup_steps']} must be below total_steps={values['total_steps']}"
                )
            points.append(Point(values, names))
    return points
