"""What learns: the GPT-2 style in-context regression transformer, its optimiser and schedules."""

from models.files import load_model_files, save_model_files
from models.optim import SCHEDULES, cosine, make_optimizer, param_groups, train_step, triangle
from models.tokens import at_x_tokens, to_tokens
from models.transformer import SIZES, InContextRegressor, ModelConfig, build_model

__all__ = [
    "SCHEDULES",
    "SIZES",
    "InContextRegressor",
    "ModelConfig",
    "at_x_tokens",
    "build_model",
    "cosine",
    "load_model_files",
    "make_optimizer",
    "param_groups",
    "save_model_files",
    "train_step",
    "triangle",
    "to_tokens",
]
