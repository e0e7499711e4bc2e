"""Training checkpoints: weights, optimiser state, step, and the settings that say what was trained.

A checkpoint alone is enough to rebuild the model (its ModelConfig is recorded) and to know its data
(the caller's settings: pool digest, data seeds, optimiser...). Files are written atomically, so a kill
during the write leaves the previous checkpoint intact, and read with `weights_only=True` (nothing is
unpickled but tensors and plain values).
"""

import dataclasses
import os
import pickle
import tempfile
from pathlib import Path

import torch

from models.transformer import InContextRegressor, ModelConfig

FORMAT = "icl-checkpoint/1"


@dataclasses.dataclass(frozen=True)
class LoopState:
    """Where a training is: updates done, and the training loss summed since the last log (a 0-d tensor,
    or None) over `loss_count` steps. A resumed loop continues these, so its logs equal the uninterrupted
    run's."""

    step: int
    loss_sum: object
    loss_count: int


def save_checkpoint(path, *, model, optimizer, loop, settings):
    """Write the state of a training at `loop` (a LoopState) to `path`, atomically;
    `settings` must be plain values."""
    state = {
        "format": FORMAT,
        "step": int(loop.step),
        "loss_sum": loop.loss_sum,
        "loss_count": int(loop.loss_count),
        "model_config": dataclasses.asdict(model.config),
        "settings": settings,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    folder = Path(path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
        torch.save(state, f)
    os.replace(f.name, path)


def load_checkpoint(path, device="cpu"):
    """The checkpoint at `path` as a dict (format, step, loss_sum, loss_count, model_config, settings, model,
    optimizer)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is not a readable training checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a readable training checkpoint: format {FORMAT!r} expected")
    return state


def loop_state(state):
    """The LoopState a loaded checkpoint continues from."""
    return LoopState(state["step"], state["loss_sum"], state["loss_count"])


def model_from_checkpoint(state, device="cpu"):
    """The transformer of a loaded checkpoint, with its weights, on `device` (in training mode)."""
    model = InContextRegressor(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device)
