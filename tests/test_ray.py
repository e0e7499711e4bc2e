"""executor=ray (issue: scale out): the smoke sweep on a local Ray instance equals the inline one; a Ray
worker killed mid-training is retried and its chain resumes from its checkpoint; a local store is refused
for a cluster with other hosts; failed chains are listed once the others are done.

Sweeps run as a user runs them: `python -m pipeline.main` in a fresh process, on a store of their own."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import invoke, stage_name
from mlflow.tracking import MlflowClient

from pipeline import main
from pipeline.sweep import executors, ray_tasks
from pipeline.sweep.ray_tasks import check_reachable
from pipeline.types import InputError

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

ONE_THREAD = ("--threads", 1)  # fixed per training, so that every executor computes the same numbers
# Long enough to kill a training between its first checkpoint (step 250) and its end (1500 steps: ~10 s).
LONG = ("--n_tasks", "4,inf", "--total_steps", 1500, "--warmup_steps", 750, "--eval_every", 250, *ONE_THREAD)


def start(folder, *args):
    """`python -m pipeline.main --preset smoke ARGS` on the store in `folder`, started."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db", "MLFLOW_EXPERIMENT_NAME": "tests"}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    command = [sys.executable, "-m", "pipeline.main", "--preset", "smoke", *map(str, args)]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process):
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    return output


def client(folder):
    return MlflowClient(f"sqlite:///{folder}/mlflow.db")


def train_runs(folder, status=None):
    """{run name: Run} of the train runs in the store in `folder` (those with `status`, if given)."""
    store = client(folder)
    experiment = store.get_experiment_by_name("tests")
    if experiment is None:
        return {}
    where = "tags.stage = 'train'" + (f" and attributes.status = '{status}'" if status else "")
    return {stage_name(run): run for run in store.search_runs([experiment.experiment_id], where)}


def histories(folder):
    """{run name: {metric: [(step, value), ...]}} of every train run: what a chain computed, in full."""
    store = client(folder)
    return {
        name: {
            key: [(m.step, m.value) for m in store.get_metric_history(run.info.run_id, key)] for key in run.data.metrics
        }
        for name, run in train_runs(folder).items()
    }


def summary(folder, artifacts="mlartifacts"):
    """The sweep's summary table without its run-id columns (they differ from store to store)."""
    [path] = Path(folder, artifacts).rglob("summary/summary.csv")
    lines = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if not name.endswith("_run")]
    return [[row[i] for i in keep] for row in lines]


def test_the_smoke_sweep_on_ray_equals_inline(tmp_path):
    inline = finished(start(tmp_path / "inline", "--executor", "inline", *ONE_THREAD))
    output = finished(start(tmp_path / "ray", "--executor", "ray", *ONE_THREAD))
    assert "ray: a local instance started for this sweep" in output and "executor ray" in output
    assert "executor inline" in inline
    ray_runs = histories(tmp_path / "ray")
    assert set(ray_runs) == {"train-m4", "train-m64", "train-minf"}
    assert ray_runs == histories(tmp_path / "inline")  # every metric at every step, bit for bit
    assert summary(tmp_path / "ray") == summary(tmp_path / "inline")
    store = client(tmp_path / "ray")
    [sweep] = store.search_runs([store.get_experiment_by_name("tests").experiment_id], "tags.stage = 'main'")
    params = sweep.data.params
    assert params["executor"] == "ray" and params["ray_address"] == "local" and "workers" not in params
    assert "" not in params.values()
    ids = {run.info.run_id for run in train_runs(tmp_path / "ray", "FINISHED").values()}
    aliased = {
        client(tmp_path / "ray").get_model_version_by_alias("icl-smoke", a).run_id for a in ("m4", "m64", "minf")
    }
    assert aliased == ids


def test_a_ray_worker_killed_mid_training_is_retried_and_its_chain_resumes(tmp_path):
    calm = tmp_path / "calm"
    finished(start(calm, "--executor", "inline", *LONG))
    faulty = tmp_path / "faulty"
    process = start(faulty, "--executor", "ray", *LONG)
    deadline = time.time() + 300
    while True:  # the first training to upload a checkpoint is killed, with its Ray worker
        assert process.poll() is None and time.time() < deadline, process.stdout.read()
        running = train_runs(faulty, "RUNNING").values()
        victim = next((run for run in running if "checkpoint" in run.data.tags), None)
        if victim is not None:
            break
        time.sleep(0.1)
    step = int(victim.data.tags["checkpoint"].rsplit("@", 1)[1])
    assert step < 1500
    os.kill(json.loads(victim.data.tags["heartbeat"])["pid"], signal.SIGKILL)
    output = finished(process)
    name = stage_name(victim)
    assert f"resuming {victim.info.run_name} ({victim.info.run_id}) from its checkpoint of step" in output
    after = train_runs(faulty)[name]
    assert after.info.run_id == victim.info.run_id and after.info.status == "FINISHED"
    assert "died" in after.data.tags  # marked dead by the retry, then continued in the same run
    resumed, whole = histories(faulty), histories(calm)
    for key, points in resumed[name].items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), f"{key}: duplicate or unordered steps {steps}"
    # No gap, no duplicate: the history of a training never interrupted (a difference names its first point).
    assert resumed == whole, first_difference(resumed, whole, f"victim {name} killed after its step-{step} checkpoint")
    assert summary(faulty) == summary(calm)


def first_difference(found, wanted, context):
    """Where two {run name: {metric: [(step, value)]}} first differ, in words (a failure's message)."""
    for name in sorted(set(found) | set(wanted)):
        for key in sorted(set(found.get(name, {})) | set(wanted.get(name, {}))):
            a, b = found.get(name, {}).get(key), wanted.get(name, {}).get(key)
            if a != b:
                at = next((i for i, pair in enumerate(zip(a or [], b or [], strict=False)) if pair[0] != pair[1]), None)
                where = (
                    f"first at {a[at]} against {b[at]}"
                    if at is not None
                    else f"{len(a or [])} against {len(b or [])} points"
                )
                return f"{context}: {name} {key} differs, {where}"
    return context


def test_failed_chains_are_listed_once_the_others_finish(store):
    args = ("--n_tasks", 4, "--lr", "1e6,3e-3,1e7", "--model_name", "listed", *ONE_THREAD)
    result = invoke(main.main, "--preset", "smoke", *args)
    assert result.exit_code == 1
    assert "2 of 3 chains failed (the others finished):" in result.output
    assert "  m4-lr=1000000.0: training diverged at step 50" in result.output
    assert "  m4-lr=10000000.0: training diverged at step 50" in result.output
    [version] = store.client.search_model_versions("name = 'listed'")
    assert store.client.get_run(version.run_id).data.params["lr"] == "0.003"


def test_a_local_store_is_refused_for_a_cluster_with_other_hosts():
    with pytest.raises(InputError, match=r"MLFLOW_TRACKING_URI='sqlite:////data/mlflow.db' is a store on this"):
        check_reachable("sqlite:////data/mlflow.db", "auto", ["10.0.0.7"], "mlflow-artifacts:/1")
    with pytest.raises(InputError, match=r"the cluster at ray://head:10001 cannot write to: start `mlflow server"):
        check_reachable("/data/mlruns", "ray://head:10001", [], "/data/mlruns/1")
    with pytest.raises(InputError, match=r"the experiment keeps its artifacts in file:///data/mlartifacts/x, a folder"):
        check_reachable("http://head:5000", "auto", ["10.0.0.7"], "file:///data/mlartifacts/x")
    check_reachable("http://head:5000", "ray://head:10001", ["10.0.0.7"], "mlflow-artifacts:/1")  # a server
    check_reachable("sqlite:////data/mlflow.db", "", [], "file:///data/mlartifacts/x")  # one machine: fine


def test_ray_options_are_refused_where_they_do_not_apply():
    with pytest.raises(InputError, match=r"workers=2 does not apply to executor=ray"):
        executors.make_executor("ray", 2, "cpu", 4)
    with pytest.raises(InputError, match=r"ray_address='auto' needs executor=ray"):
        executors.make_executor("process", None, "cpu", 4, "auto")


def test_a_ray_client_address_without_ray_client_installed_is_one_line(monkeypatch):
    found = ray_tasks.importlib.util.find_spec
    monkeypatch.setattr(ray_tasks.importlib.util, "find_spec", lambda name: None if name == "grpc" else found(name))
    executor = executors.make_executor("ray", None, "cpu", 4, "ray://head:10001")
    with pytest.raises(InputError, match=r"^ray_address='ray://head:10001' needs Ray Client, .*'ray\[client\]'$"):
        executor.__enter__()


def test_a_job_no_node_can_take_is_refused_before_any_run(tmp_path):
    process = start(tmp_path, "--executor", "ray", "--threads", 8)  # the local instance has 2 CPUs
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 1
    assert "Error: m4 needs 8 CPUs, 0 GPUs and 0.0 GiB, more than any node of the Ray cluster has" in output
    assert train_runs(tmp_path) == {}
