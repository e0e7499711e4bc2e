"""MLflow "models from code" definition of the registered transformer (nothing is pickled).

The model folder holds this file, the `models` package (code_paths), the weights as a state_dict and
the architecture as JSON (models/files.py). Input: {"xs": float32 (B, K, D), "ys": float32 (B, K)};
output: float32 (B, K), the prediction of each y_k from x_1, y_1, ..., x_k.
"""

import mlflow
import numpy as np
import torch

from models import load_model_files


class InContextRegressorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model = load_model_files(context.artifacts["config"], context.artifacts["state_dict"])

    def predict(self, context, model_input, params=None):
        with torch.no_grad():
            xs = torch.as_tensor(np.asarray(model_input["xs"], dtype=np.float32))
            ys = torch.as_tensor(np.asarray(model_input["ys"], dtype=np.float32))
            return self.model(xs, ys).numpy()


mlflow.models.set_model(InContextRegressorModel())
