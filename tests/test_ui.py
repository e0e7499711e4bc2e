"""What the MLflow UI shows, read the way the UI reads it: the REST API of an `mlflow server` started on
the smoke-sweep store. Every run has a numeric task diversity; the sweep's run is a dashboard (resolved
params, a description, the Deltas against M as metric histories); a rerun's run shows the runs it reused.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import MODEL_NAME, invoke

from pipeline import main

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

DELTAS = [f"by_M/{dist}/delta_pt_{b}" for dist in ("pretrain", "true") for b in ("dmmse", "ridge")]


@pytest.fixture(scope="module")
def server(store, sweep):
    """http://127.0.0.1:<port> of `mlflow server` on the store (one worker, no job runner), stopped after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store.uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def rest(url, path, payload=None):
    """GET (with query `payload`) or POST (with JSON `payload`) an MLflow REST endpoint; the decoded JSON."""
    if path.endswith("/search"):
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/{path}", json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
    else:
        query = "&".join(f"{k}={v}" for k, v in (payload or {}).items())
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}?{query}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def search(url, where):
    experiment = rest(url, "experiments/get-by-name", {"experiment_name": "tests"})["experiment"]
    return rest(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "filter": where}).get("runs", [])


def values(run, field):
    return {item["key"]: item["value"] for item in run["data"].get(field, [])}


def test_every_run_has_a_numeric_task_diversity(server, sweep):
    for name, child in sweep.runs.items():
        run = rest(server, "runs/get", {"run_id": child.info.run_id})["run"]
        expected = 22.0 if name.endswith("minf") else 2.0
        assert values(run, "metrics")["log2_n_tasks"] == expected, name
        assert ("log2_n_tasks" in values(run, "tags")) == name.endswith("minf"), name
    parent = rest(server, "runs/get", {"run_id": sweep.parent.info.run_id})["run"]
    history = rest(server, "metrics/get-history", {"run_id": sweep.parent.info.run_id, "metric_key": "log2_n_tasks"})
    assert sorted((m["step"], m["value"]) for m in history["metrics"]) == [(2, 2.0), (22, 22.0)]
    assert values(parent, "metrics")["log2_n_tasks"] == 22.0


def test_the_sweep_run_is_a_dashboard(server, sweep):
    parent = rest(server, "runs/get", {"run_id": sweep.parent.info.run_id})["run"]
    params, tags = values(parent, "params"), values(parent, "tags")
    assert "" not in params.values() and params["n_tasks"] == "4,inf" and params["n_layer"] == "1"
    assert params["checkpoint_every"] == params["eval_every"] == "30"
    description = tags["mlflow.note.content"]
    assert "| M |" in description and "by_M/true/delta_pt_ridge" in description
    short = parent["info"]["run_id"][:6]
    assert parent["info"]["run_name"] == f"smoke [{short}] M"  # what tells it apart comes first
    assert all(run.info.run_name.endswith(f" [{short}]") for run in sweep.runs.values())  # children name it
    for key in DELTAS:
        points = rest(server, "metrics/get-history", {"run_id": parent["info"]["run_id"], "metric_key": key})
        points = sorted((m["step"], m["value"]) for m in points["metrics"])
        # One point per pool size (x = log2 M; M = inf at 22, where T_Pretrain is T_True) and dMMSE only at
        # finite M. The values are the summary's, i.e. the train runs' final metrics.
        steps = [2] if "dmmse" in key else [2, 22]
        assert [step for step, _ in points] == steps, key
        train = sweep.runs["train-m4"].data.metrics[key.removeprefix("by_M/")]
        assert points[0][1] == train, key
    loss = rest(server, "metrics/get-history", {"run_id": parent["info"]["run_id"], "metric_key": "by_M/true/loss_pt"})
    assert [m["step"] for m in loss["metrics"]] == [2, 22]


def test_a_rerun_shows_the_runs_it_reused(server, sweep):
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,inf", "--model_name", MODEL_NAME)
    assert result.exit_code == 0, result.output
    rerun = re.search(r"sweep run: runs:/(\w+)", result.output).group(1)
    assert search(server, f"tags.mlflow.parentRunId = '{rerun}'") == []  # it made nothing new
    # The first sweep keeps its chains' runs (and the analyses of it, also nested under it); each says the
    # rerun used it too, and the rerun links it.
    chains = {run.info.run_id for run in sweep.runs.values()}
    children = search(server, f"tags.mlflow.parentRunId = '{sweep.parent.info.run_id}'")
    assert chains <= {run["info"]["run_id"] for run in children}
    description = values(rest(server, "runs/get", {"run_id": rerun})["run"], "tags")["mlflow.note.content"]
    for run in (child for child in children if child["info"]["run_id"] in chains):
        assert values(run, "tags")["sweeps"].split(",")[-1] == rerun
        assert f"runs/{run['info']['run_id']})" in description
    names = {run["info"]["run_name"] for run in search(server, "tags.stage = 'main'")}
    assert len(names) == len(search(server, "tags.stage = 'main'"))  # every sweep has its own name
