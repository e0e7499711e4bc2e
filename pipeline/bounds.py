"""Upper bounds, checked before any run starts: the memory a pool, the eval sets or a training needs, and
how long a training or a sweep would run.

Each memory estimate counts the arrays the step holds at once (float64 draws, float32 copies, the
estimators' per-prefix Gram matrices, the transformer's parameters, optimiser state, activations and
attention scores), and is refused with the options that drive it when it passes what this machine (or
the CUDA device) has free, so a typo such as n_points=10**6 fails in a second with a one-line error, not
after minutes at 6 GB with a MemoryError.

Length and work have limits of their own, each an option that raises it on purpose: total_steps,
eval_every and checkpoint_every at most `max_steps`; a sweep's grid at most `max_points` trainings; the
estimated work of a training or a sweep (floating-point operations: `training_flops`, `estimator_flops`)
at most `max_work`, by default a limit for the device it runs on (MAX_WORK), so that 2**80 steps, a grid
of 480,000 points or the paper's preset on a laptop is refused in one line instead of running for ever.
"""

import math
import os

import torch

from models.training import log_spaced
from pipeline.types import InputError

GIB = 2**30
HEADROOM = 0.8  # of the free memory a single step may plan to use
# max_work when left empty, in FLOPs, by device type. A CPU: the demo's measured pace is about 8e10 FLOP/s
# on 2 cores (5 trainings, 1.8e14 FLOPs in 40 min), so 1e17 is about two weeks there; the paper's preset
# (3e18) is a GPU job. CUDA: about the paper's largest figure sweep (Fig. 6, 1e20) with room to spare.
MAX_WORK = {"cpu": 1e17, "cuda": 1e21}


def free_memory(device="cpu"):
    """Bytes free on `device` (a CUDA device's free memory; else MemAvailable of /proc/meminfo), or None."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def require(nbytes, what, options, device="cpu"):
    """Refuse (InputError) a step that would need `nbytes` for `what`, naming the `options` behind it."""
    free = free_memory(device)
    if free is not None and nbytes > HEADROOM * free:
        given = ", ".join(f"{name}={value}" for name, value in options.items())
        raise InputError(
            f"{given} need about {nbytes / GIB:,.1f} GiB for {what}, more than the {free / GIB:,.1f} GiB free "
            f"on {device}: lower them"
        )


def pool_bytes(n_tasks, n_dims):
    """The float64 draw and the float32 pool of M x D tasks (nothing at M = inf)."""
    return 0 if n_tasks == float("inf") else n_tasks * n_dims * (8 + 4)


def eval_bytes(evaluation, n_dims):
    """Both eval sets of EvalSettings `evaluation` with every predictor's predictions, and ridge's
    per-prefix Gram matrices (N, K, D, D) in float64."""
    sequences = evaluation.n_eval * evaluation.n_points
    per_set = sequences * (n_dims * (8 + 4) + 8 + 8 + 4 + 3 * 8 + 2 * n_dims * n_dims * 8)
    return 2 * per_set


def n_parameters(arch):
    """The transformer's parameters, about: read-in, positions, read-out and n_layer blocks of 12 w^2."""
    width = arch.n_embd
    return (arch.n_dims + 1 + 2 * arch.n_points + 1) * width + arch.n_layer * 12 * width * width


def training_flops(settings):
    """Floating-point operations of one training of TrainSettings `settings`, estimated: 6 per parameter
    and token for each step (forward and backward) and 2 for each evaluation's forward on both eval sets."""
    tokens, params = 2 * settings.arch.n_points, n_parameters(settings.arch)
    steps = settings.optim.total_steps
    evaluations = math.ceil(steps / settings.eval_every) + len(log_spaced(steps, settings.eval_per_decade))
    train = 6 * params * tokens * settings.data.batch_size * steps
    return train + evaluations * 2 * settings.evaluation.n_eval * 2 * params * tokens


def estimator_flops(n_tasks, evaluation, n_dims):
    """dMMSE on both eval sets of EvalSettings `evaluation` for a pool of `n_tasks` (none at M = inf):
    every prefix row against every task, about 4 (D + 1)(D + 2) / 2 operations each (products and exp)."""
    if n_tasks == float("inf"):
        return 0
    rows = 2 * evaluation.n_eval * evaluation.n_points
    return rows * n_tasks * 2 * (n_dims + 1) * (n_dims + 2)


def check_steps(settings, max_steps, checkpoint_every=None):
    """total_steps, eval_every and checkpoint_every of TrainSettings `settings` at most `max_steps`."""
    values = {"total_steps": settings.optim.total_steps, "eval_every": settings.eval_every}
    values["checkpoint_every"] = checkpoint_every or 0
    for name, value in values.items():
        if value > max_steps:
            raise InputError(
                f"{name}={value:,} is above max_steps={max_steps:,}: pass --max_steps {value} to go that far on purpose"
            )


def work_limit(device, max_work=None):
    """The max_work that applies on `device`: `max_work` if given, else MAX_WORK of the device's type."""
    return max_work or MAX_WORK.get(torch.device(device).type, MAX_WORK["cuda"])


def check_work(flops, what, device, max_work=None):
    """Refuse `what` (e.g. "this training") estimated at `flops` when above `max_work` (None: MAX_WORK of
    `device`'s type)."""
    device = torch.device(device)
    limit = work_limit(device, max_work)
    if flops > limit:
        default = "" if max_work else f" (the limit on {device.type})"
        raise InputError(
            f"{what} would take about {flops:.1e} floating-point operations, above max_work={limit:.0e}{default}: "
            f"lower total_steps, n_eval, the model or the grid, or pass --max_work {flops:.1e} to run it on purpose"
        )


def check_points(count, max_points):
    """A sweep of `count` grid points (trainings) at most `max_points`."""
    if count > max_points:
        raise InputError(
            f"the sweep's grid has {count:,} points (trainings), above max_points={max_points:,}: fewer axis "
            f"values, or pass --max_points {count} to run them all on purpose"
        )


def training_bytes(data, arch):
    """A training step of DataSettings `data` on ModelConfig `arch`: parameters with their gradients and
    Adam's two moments, activations kept for the backward pass, and the attention scores."""
    tokens, width = 2 * arch.n_points, arch.n_embd
    parameters = n_parameters(arch)
    activations = data.batch_size * tokens * width * arch.n_layer * 20
    attention = data.batch_size * arch.n_head * tokens * tokens * arch.n_layer * 2
    return 4 * (4 * parameters + activations + attention)


def check_pool_size(settings):
    """PoolSettings `settings` fit in memory."""
    options = {"n_tasks": settings.n_tasks, "n_dims": settings.n_dims}
    require(pool_bytes(settings.n_tasks, settings.n_dims), "the task pool", options)


def check_evaluation(evaluation, n_dims):
    """The eval sets of EvalSettings `evaluation` at dimension `n_dims` fit in memory."""
    options = {"n_eval": evaluation.n_eval, "n_points": evaluation.n_points, "n_dims": n_dims}
    require(eval_bytes(evaluation, n_dims), "the eval sets and their predictions", options)


def check_training(settings, device):
    """TrainSettings `settings`: its eval sets in memory, its training step on `device`."""
    check_pack([settings], device)


def check_pack(settings, device):
    """The TrainSettings in `settings` (one architecture and batch size) trained as one ensemble on
    `device`: each one's eval sets in memory, and the ensemble's step (a member's, times the members)."""
    for member in settings:
        check_evaluation(member.evaluation, member.arch.n_dims)
    arch, data, members = settings[0].arch, settings[0].data, len(settings)
    options = {"batch_size": data.batch_size, "n_points": arch.n_points, "n_embd": arch.n_embd}
    options |= {"n_layer": arch.n_layer} | ({"pack": members} if members > 1 else {})
    what = "a training step" if members == 1 else f"a step of {members} packed trainings"
    require(members * training_bytes(data, arch), what, options, device)


def pack_size(settings, device, sharing=1, free=None):
    """Members per ensemble when the sweep's `pack` is left to choose, for TrainSettings like `settings`:
    1 on a CPU (an ensemble there is no faster than its members one after another: docs/ensembles_and_gpus.md),
    and on CUDA as many as fit in the HEADROOM share of the device's `free` memory (default: this
    machine's), split between the `sharing` processes that train on it at once."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    step = training_bytes(settings.data, settings.arch)
    free = free_memory(device) if free is None else free
    return max(1, int(HEADROOM * free / sharing // step))
