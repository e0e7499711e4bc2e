"""Serving: `mlflow models serve` answers a prompt the model cannot read with HTTP 400 and a one-line reason.

The app is MLflow's own scoring server (`scoring_server.init`, what `mlflow models serve` runs under uvicorn)
around the pyfunc saved from pipeline/tracking/pyfunc_model.py with the registry's signature, driven in-process.
"""

import asyncio
import json
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import torch
from mlflow.pyfunc import scoring_server

import models
from models import ModelConfig, build_model, save_model_files
from pipeline.tracking.registry import PYFUNC_FILE, signature

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

CONFIG = ModelConfig(n_dims=8, n_points=16, n_layer=1, n_embd=16, n_head=2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The scoring app and the torch model it serves. No tracking store: the pyfunc is saved to a folder."""
    folder = tmp_path_factory.mktemp("served")
    model = build_model(CONFIG, seed=0)
    config_path, weights_path = save_model_files(model, folder)
    mlflow.pyfunc.save_model(
        folder / "model",
        python_model=str(PYFUNC_FILE),
        artifacts={"config": str(config_path), "state_dict": str(weights_path)},
        code_paths=[models.__path__[0]],
        signature=signature(),
        pip_requirements=["torch", "numpy"],  # inferring them would take seconds
    )
    with pytest.MonkeyPatch.context() as patch:
        # init() exports _MLFLOW_IS_IN_SERVING_ENVIRONMENT=true, as a server process would; undone on exit.
        patch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
        yield scoring_server.init(mlflow.pyfunc.load_model(str(folder / "model"))), model


def post(app, payload):
    """POST `payload` to /invocations as uvicorn would (Starlette's TestClient needs httpx, not installed).

    Returns the status and the decoded JSON body."""
    sent, requests = [], iter([{"type": "http.request", "body": payload.encode(), "more_body": False}])

    async def receive():
        # After the body, nothing arrives until the client leaves: wait as a live connection does.
        return next(requests, None) or await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "scheme": "http",
        "method": "POST",
        "path": "/invocations",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def prompts(batch=2, n_points=4, n_dims=8, ys_points=None):
    """Seeded prompts. Shapes: xs (B, K, D), ys (B, K) or (B, ys_points)."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((batch, n_points, n_dims)).astype(np.float32)
    ys = rng.standard_normal((batch, ys_points or n_points)).astype(np.float32)
    return xs, ys


def body(xs, ys):
    """The request as a client sends it (json.dumps writes NaN and Infinity; the server reads them back)."""
    return json.dumps({"inputs": {"xs": xs.tolist(), "ys": ys.tolist()}})


def test_a_readable_prompt_is_predicted(served):
    app, model = served
    xs, ys = prompts(n_points=CONFIG.n_points)
    status, answer = post(app, body(xs, ys))
    assert status == 200
    with torch.no_grad():
        expected = model(torch.from_numpy(xs), torch.from_numpy(ys)).numpy()
    np.testing.assert_array_equal(np.float32(answer["predictions"]), expected)


def with_value(value):
    xs, ys = prompts()
    xs[1, 2, 3] = value
    return xs, ys


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        (prompts(n_points=20), "prompts have K=20 points but the model's context is 16 points"),
        (prompts(ys_points=3), "xs has (B, K)=(2, 4) but ys has shape (2, 3)"),
        ((prompts()[0], prompts(batch=3)[1]), "xs has (B, K)=(2, 4) but ys has shape (3, 4)"),
        (with_value(np.nan), "xs holds NaN or infinite values (1 of 64) but the model needs finite ones"),
        (with_value(-np.inf), "xs holds NaN or infinite values (1 of 64) but the model needs finite ones"),
    ],
)
def test_an_unreadable_prompt_is_a_400_with_its_reason_in_one_line(served, arrays, reason):
    status, answer = post(served[0], body(*arrays))
    assert status == 400
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["message"] == reason


def test_a_wrong_dimension_is_a_400_naming_both_dimensions(served):
    """The signature leaves D free (MLflow's own shape check would echo the request and never say D), so
    the model's check answers."""
    status, answer = post(served[0], body(*prompts(n_dims=5)))
    assert status == 400
    assert answer["message"] == "xs has D=5 but the model was trained at D=8"


def test_the_served_package_loads_with_only_the_models_requirements():
    """The model folder carries the `models` package, installed with torch, numpy and mlflow only
    (pipeline/tracking/registry.py): importing it must not need tqdm, click or anything else of ours."""
    code = "import sys; sys.modules.update(tqdm=None, click=None, pipeline=None); import models"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
