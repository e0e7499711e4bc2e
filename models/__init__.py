"""What learns and how: the transformer, its optimiser and schedules, the training loop, checkpoints.

The progress display (models.progress, which needs tqdm) is not imported here: a registered model loads
this package where only its own requirements (torch, numpy, mlflow) are installed."""

from models.checkpoint import (
    DamagedCheckpoint,
    LoopState,
    load_checkpoint,
    loop_state,
    model_from_checkpoint,
    save_checkpoint,
)
from models.files import load_model_files, save_model_files
from models.optim import SCHEDULES, OptimSettings, cosine, make_optimizer, param_groups, train_step, triangle
from models.strategies import ALONE, PACKED, Alone, DataParallel, Packed
from models.tokens import X_TOKENS, context, to_tokens
from models.training import (
    LOG_EVERY,
    Checkpointing,
    Hook,
    Member,
    TrainingDiverged,
    TrainingInterrupted,
    train,
    train_members,
)
from models.transformer import SIZES, InContextRegressor, ModelConfig, build_model, gelu

__all__ = [
    "ALONE",
    "Alone",
    "Checkpointing",
    "DamagedCheckpoint",
    "DataParallel",
    "Hook",
    "InContextRegressor",
    "LOG_EVERY",
    "LoopState",
    "Member",
    "ModelConfig",
    "OptimSettings",
    "PACKED",
    "Packed",
    "SCHEDULES",
    "SIZES",
    "TrainingDiverged",
    "TrainingInterrupted",
    "X_TOKENS",
    "build_model",
    "context",
    "cosine",
    "gelu",
    "load_checkpoint",
    "load_model_files",
    "loop_state",
    "make_optimizer",
    "model_from_checkpoint",
    "param_groups",
    "save_checkpoint",
    "save_model_files",
    "to_tokens",
    "train",
    "train_members",
    "train_step",
    "triangle",
]
