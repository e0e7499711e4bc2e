"""Upper bounds, checked before any allocation: the memory a pool, the eval sets or a training needs.

Each estimate counts the arrays the step holds at once (float64 draws, float32 copies, the estimators'
per-prefix Gram matrices, the transformer's parameters, optimiser state, activations and attention
scores), and is refused with the options that drive it when it passes what this machine (or the CUDA
device) has free, so a typo such as n_points=10**6 fails in a second with a one-line error, not after
minutes at 6 GB with a MemoryError.
"""

import os

import torch

from pipeline.types import InputError

GIB = 2**30
HEADROOM = 0.8  # of the free memory a single step may plan to use


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


def training_bytes(data, arch):
    """A training step of DataSettings `data` on ModelConfig `arch`: parameters with their gradients and
    Adam's two moments, activations kept for the backward pass, and the attention scores."""
    tokens, width = 2 * arch.n_points, arch.n_embd
    parameters = (arch.n_dims + 1 + tokens + 1) * width + arch.n_layer * 12 * width * width
    activations = data.batch_size * tokens * width * arch.n_layer * 20
    attention = data.batch_size * arch.n_head * tokens * tokens * arch.n_layer * 2
    return 4 * (4 * parameters + activations + attention)


def check_pool(settings):
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
    1 on a CPU (an ensemble there is no faster than its members one after another: README, benchmarks),
    and on CUDA as many as fit in the HEADROOM share of the device's `free` memory (default: this
    machine's), split between the `sharing` processes that train on it at once."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    step = training_bytes(settings.data, settings.arch)
    free = free_memory(device) if free is None else free
    return max(1, int(HEADROOM * free / sharing // step))
