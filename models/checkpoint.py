"""Training checkpoints: weights, optimiser state, step, and the settings that say what was trained.

A checkpoint alone is enough to rebuild the model (its ModelConfig is recorded) and to know its data
(the caller's settings: pool digest, data seeds, optimiser...). Files are written atomically, so a kill
during the write leaves the previous checkpoint intact, and read with `weights_only=True` (nothing is
unpickled but tensors and plain values). Each carries the SHA-256 of its contents (every tensor's dtype,
shape and bytes, every value, in a fixed order), checked on load: a truncated file, or one with flipped
bits, is refused (DamagedCheckpoint) rather than resumed into a model that differs from the one trained.
"""

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from models.transformer import InContextRegressor, ModelConfig

FORMAT = "icl-checkpoint/2"
# Written before checkpoints carried a digest: still read, with nothing to check them against.
UNCHECKED_FORMATS = ("icl-checkpoint/1",)


class DamagedCheckpoint(ValueError):
    """The checkpoint file `path` cannot be read, is not a training checkpoint, or fails its digest check
    (`reason`, one line)."""

    def __init__(self, path, reason):
        super().__init__(f"{path} is {reason}")
        self.path, self.reason = path, reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)


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
    state["sha256"] = content_digest(state)
    folder = Path(path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
        torch.save(state, f)
    os.replace(f.name, path)


def load_checkpoint(path, device="cpu"):
    """The checkpoint at `path` as a dict (format, step, loss_sum, loss_count, model_config, settings, model,
    optimizer); DamagedCheckpoint, its message one line, when it is unreadable or fails its digest."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a damaged file fails in many ways (KeyError, IndexError, ... from its pickle)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedCheckpoint(path, f"not a readable training checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, *UNCHECKED_FORMATS):
        raise DamagedCheckpoint(path, f"not a readable training checkpoint: format {FORMAT!r} expected")
    if state["format"] == FORMAT and state.pop("sha256", None) != content_digest(state):
        raise DamagedCheckpoint(path, "damaged: its contents do not match the digest it was written with")
    return state


def content_digest(value):
    """SHA-256 (hex) of a checkpoint's contents: nested dicts (keys in sorted order), lists and tuples,
    tensors (dtype, shape, bytes, wherever they are) and plain values (their repr, exact for floats)."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value):
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{value!r};".encode())


def loop_state(state):
    """The LoopState a loaded checkpoint continues from."""
    return LoopState(state["step"], state["loss_sum"], state["loss_count"])


def model_from_checkpoint(state, device="cpu"):
    """The transformer of a loaded checkpoint, with its weights, on `device` (in training mode)."""
    model = InContextRegressor(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device)
