"""Collision-free seeds for every random stream.

Each draw is keyed by (seed, stream, index): the user's seed for that stream, the stream's fixed id
below, and the step (training) or the evaluation set (evaluation). numpy's SeedSequence hashes the
key, so two different keys give unrelated generators even when their seeds coincide: the eval data
never repeats a training batch, and step s never reuses step s+1's draws (the `seed + step` trap).
"""

import numpy as np
import torch

STREAMS = {
    "pool": 0,
    "data": 1,
    "task": 2,
    "noise": 3,
    "eval_data": 4,
    "eval_task": 5,
    "eval_noise": 6,
    "path": 7,  # interpolation paths between pool tasks (tasks/paths.py)
}


def stream_seed(seed, stream, index=0):
    """A 63-bit seed for draw `index` of `stream` under the user's `seed`."""
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or int(value) != value or not 0 <= value < 2**63:
            raise ValueError(f"{name} must be an integer in [0, 2^63), got {value!r}")
    # The seed is the entropy and (stream, index) the spawn key: numpy pads the entropy to a fixed
    # width before appending the key, so no seed can impersonate another (seed, stream) pair.
    sequence = np.random.SeedSequence(int(seed), spawn_key=(STREAMS[stream], int(index)))
    state = sequence.generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def numpy_rng(seed, stream, index=0):
    """A numpy Generator for one keyed draw (used for pools and evaluation sets, device-independent)."""
    return np.random.Generator(np.random.PCG64(stream_seed(seed, stream, index)))


def torch_generator(seed, stream, index=0, device="cpu"):
    """A torch Generator on `device` for one keyed draw (used for training batches)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream, index))
