"""A Ray cluster of two nodes and an MLflow server on this machine (pipeline/cluster_demo.py, `make cluster-demo`),
the second node joining from another loopback address as a node on another host would; a sweep through it
loses that node (`kill -9` of its raylet) in the middle of a training. End-to-end: make test-all."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stage_name
from mlflow.tracking import MlflowClient
from test_ray import LONG, finished, first_difference, start, summary

from pipeline.cluster_demo import NODE, local_cluster

pytestmark = pytest.mark.e2e


def train_runs(client, experiment_name, status=None):
    """{name without the sweep's id: Run} of the train runs of the experiment (with `status`, if given)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    where = "tags.stage = 'train'" + (f" and attributes.status = '{status}'" if status else "")
    return {stage_name(run): run for run in client.search_runs([experiment.experiment_id], where)}


def histories(client, experiment_name):
    """{run name: {metric: [(step, value), ...]}} of every train run of the experiment."""
    return {
        name: {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in run.data.metrics
        }
        for name, run in train_runs(client, experiment_name).items()
    }


def processes(word):
    """{pid: command line} of this machine's processes whose command line contains `word`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if word in command:
                found[int(entry.name)] = command
    return found


def test_a_sweep_on_two_nodes_loses_one_mid_training_and_ends_as_if_it_had_not(tmp_path):
    """The training on the second node is killed with its node (its raylet, kill -9) after its first
    checkpoint; Ray runs the chain again on the head, which resumes the training in its run. Every metric at
    every step equals an inline sweep's at one thread, and nothing the cluster started is left running."""
    calm = tmp_path / "calm"
    finished(start(calm, "--executor", "inline", *LONG))
    with local_cluster(tmp_path / "cluster") as env:
        command = [sys.executable, "-m", "pipeline.main", "--preset", "smoke", *map(str, LONG), "--executor", "ray"]
        command += ["--ray_address", "auto"]
        sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        client, experiment = MlflowClient(env["MLFLOW_TRACKING_URI"]), env["MLFLOW_EXPERIMENT_NAME"]
        deadline = time.time() + 300
        while True:  # a training on the second node with a checkpoint: its node goes
            assert sweep.poll() is None and time.time() < deadline, sweep.stdout.read()
            running = train_runs(client, experiment, "RUNNING").values()
            victim = next(
                (
                    run
                    for run in running
                    if "checkpoint" in run.data.tags and json.loads(run.data.tags["heartbeat"]).get("node") == NODE
                ),
                None,
            )
            if victim is not None:
                break
            time.sleep(0.2)
        step = int(victim.data.tags["checkpoint"].rsplit("@", 1)[1])
        [raylet] = [pid for pid, command in processes("raylet").items() if f"--node_ip_address={NODE}" in command]
        os.kill(raylet, signal.SIGKILL)
        output = finished(sweep)
        name = stage_name(victim)
        after = train_runs(client, experiment)[name]
        assert after.info.run_id == victim.info.run_id and after.info.status == "FINISHED", output[-3000:]
        assert json.loads(after.data.tags["heartbeat"])["node"] != NODE  # finished on the head
        assert f"resuming {victim.info.run_name} ({victim.info.run_id}) from its checkpoint of step" in output
        assert set(train_runs(client, experiment, "FINISHED")) == {"train-m4", "train-minf"}
        resumed, whole = histories(client, experiment), histories(MlflowClient(f"sqlite:///{calm}/mlflow.db"), "tests")
        assert resumed == whole, first_difference(resumed, whole, f"{name} lost its node after step {step}")
        assert summary(calm) == summary(tmp_path / "cluster", "artifacts")
    assert processes("raylet") == {} and processes("gcs_server") == {}  # the cluster stopped
