"""A trained transformer on disk: its architecture as JSON and its weights as a state_dict.

Plain files only (no pickled classes), loaded with `weights_only=True`, so a model can be rebuilt in a
fresh process from any directory, as long as this package is importable.
"""

import dataclasses
import json
from pathlib import Path

import torch

from models.transformer import InContextRegressor, ModelConfig

CONFIG_FILE, WEIGHTS_FILE = "config.json", "state_dict.pt"


def save_model_files(model, folder):
    """Write config.json and state_dict.pt (CPU tensors) into `folder`; returns their paths."""
    config_path, weights_path = Path(folder, CONFIG_FILE), Path(folder, WEIGHTS_FILE)
    config_path.write_text(json.dumps(dataclasses.asdict(model.config)))
    torch.save({key: value.detach().cpu() for key, value in model.state_dict().items()}, weights_path)
    return config_path, weights_path


def load_model_files(config_path, weights_path, device="cpu"):
    """Rebuild the transformer from its config JSON and state_dict, in eval mode on `device`."""
    config = ModelConfig(**json.loads(Path(config_path).read_text()))
    model = InContextRegressor(config)
    model.load_state_dict(torch.load(weights_path, map_location=device, weights_only=True))
    return model.to(device).eval()
