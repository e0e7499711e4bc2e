"""MLflow "models from code" definition of the registered transformer (nothing is pickled).

The model folder holds this file, the `models` package (code_paths), the weights as a state_dict and
the architecture as JSON (models/files.py). Input: {"xs": float32 (B, K, D), "ys": float32 (B, K)};
output: float32 (B, K), the prediction of each y_k from x_1, y_1, ..., x_k. A prompt the model cannot
read is refused with a PromptError, which `mlflow models serve` answers as HTTP 400 with its one line.
"""

import json
import warnings

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from models import load_model_files


class PromptError(MlflowException):
    """A prompt the model cannot read. An MlflowException because the scoring server passes only those
    on to the client (INVALID_PARAMETER_VALUE as HTTP 400); any other error becomes a generic 400 whose
    reason is buried in a stack trace."""

    def __init__(self, reason):
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)
        self.reason = reason

    def serialize_as_json(self):
        """The HTTP response body. By now the scoring server (`invocations` in MLflow 3.17) has prefixed
        `message` with the repr of the whole request, many lines long; the client sent that request
        and needs only the reason."""
        return json.dumps(json.loads(super().serialize_as_json()) | {"message": self.reason})


def check_prompts(xs, ys, config):
    """Raise PromptError unless the prompts fit the model of `config`. Shapes: xs (B, K, D), ys (B, K).

    The signature fixes both ranks (pipeline/tracking/registry.py) and leaves the sizes to this check."""
    if xs.shape[2] != config.n_dims:
        raise PromptError(f"xs has D={xs.shape[2]} but the model was trained at D={config.n_dims}")
    if ys.shape != xs.shape[:2]:
        raise PromptError(f"xs has (B, K)={xs.shape[:2]} but ys has shape {ys.shape}")
    if xs.shape[1] > config.n_points:
        raise PromptError(f"prompts have K={xs.shape[1]} points but the model's context is {config.n_points} points")
    for name, values in (("xs", xs), ("ys", ys)):
        if bad := np.count_nonzero(~np.isfinite(values)):
            counted = f"{bad} of {values.size}"
            raise PromptError(f"{name} holds NaN or infinite values ({counted}) but the model needs finite ones")


# MLflow checks `predict`'s type hint when the class is defined, and warns (twice per registration: logging
# and validating the input example each run this file) when there is none. A hint it can read (a pydantic
# model, lists) would replace the tensor signature with a schema of nested lists, and its own shape check
# would refuse a wrong D before check_prompts says so plainly; np.ndarray, which it leaves alone, would be
# a false hint (the input is a dict of two arrays). So the input stays unhinted and only that warning is
# dropped, while the class is defined (MLflow shows it through its own "once" filter, which a filter of
# ours cannot override: the display itself is what is replaced, and restored on leaving the block).
with warnings.catch_warnings():
    shown = warnings.showwarning

    def _unless_type_hints(message, category, *args, **kwargs):
        if "Add type hints to the `predict` method" not in str(message):
            shown(message, category, *args, **kwargs)

    warnings.showwarning = _unless_type_hints

    class InContextRegressorModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.model = load_model_files(context.artifacts["config"], context.artifacts["state_dict"])

        def predict(self, context, model_input, params=None):
            xs = np.asarray(model_input["xs"], dtype=np.float32)
            ys = np.asarray(model_input["ys"], dtype=np.float32)
            check_prompts(xs, ys, self.model.config)
            with torch.no_grad():
                return self.model(torch.as_tensor(xs), torch.as_tensor(ys)).numpy()


mlflow.models.set_model(InContextRegressorModel())
