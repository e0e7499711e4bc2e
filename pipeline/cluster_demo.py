"""`make cluster-demo`: a two-node Ray cluster and an MLflow server on this machine, the smoke sweep run through
them as docs/cluster.md runs a sweep on a real cluster (through `auto` and through `ray://`), where each chain
ran, and everything it started stopped again. How a user checks a cluster set-up before renting one.

The second node joins from another loopback address (127.0.0.2), as a node on another host would: its own
raylet and workers, tasks placed on it by Ray. tests/test_cluster.py runs the same cluster with a fault.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click
from mlflow.tracking import MlflowClient

HEAD, NODE = "127.0.0.1", "127.0.0.2"
# Ray's workers take ports 10002-19999 by default: the client server's 10001 and the GCS's 6379 lie outside.
GCS_PORT, CLIENT_PORT = 6379, 10001


def free_port():
    with socket.socket() as probe:
        probe.bind((HEAD, 0))
        return probe.getsockname()[1]


def bin_path(name):
    return str(Path(sys.executable).parent / name)


@contextlib.contextmanager
def local_cluster(folder, cpus_per_node=1):
    """An MLflow server (SQLite and artifacts in `folder`) and a Ray cluster of two nodes, a head on HEAD and
    one on NODE, with token authentication as `ray start` sets it up; yields the environment a sweep needs
    (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, RAY_AUTH_MODE). Stops all of it on leaving."""
    if _listening(GCS_PORT) or _listening(CLIENT_PORT):
        raise click.ClickException(f"ports {GCS_PORT} or {CLIENT_PORT} are taken: is a Ray cluster running here?")
    port = free_port()
    # Not a launcher's run or experiment (an id of another store): the sweep opens its own, on the server.
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env = inherited | {"RAY_AUTH_MODE": "token", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [bin_path("mlflow"), "server", "--host", HEAD, "--port", str(port), "--workers", "1"]
        + ["--allowed-hosts", f"{HEAD}:{port},localhost:{port}", "--backend-store-uri", f"sqlite:///{folder}/db"]
        + ["--artifacts-destination", str(Path(folder, "artifacts"))],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _healthy(port), "the MLflow server")
        ray = bin_path("ray")
        common = ["--num-cpus", str(cpus_per_node), "--disable-usage-stats"]
        head = ["--head", "--node-ip-address", HEAD, "--port", str(GCS_PORT), "--include-dashboard=false"]
        _run([ray, "start", *head], env, common)
        _run([ray, "start", "--address", f"{HEAD}:{GCS_PORT}", "--node-ip-address", NODE], env, common)
        yield env | {"MLFLOW_TRACKING_URI": f"http://{HEAD}:{port}", "MLFLOW_EXPERIMENT_NAME": "cluster-demo"}
    finally:  # `ray stop` stops every Ray process of this machine: hence the refusal above if one runs
        subprocess.run([bin_path("ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def where_chains_ran(uri, sweep_id):
    """{training run name: the address of the Ray node it ran on}, from the heartbeats of the sweep's train
    runs (Ray's own prefixes of task output name the wrong node when nodes share a machine's log folder)."""
    client = MlflowClient(uri)
    experiment = client.get_run(sweep_id).info.experiment_id
    query = f"tags.mlflow.parentRunId = '{sweep_id}' and tags.stage = 'train'"
    return {
        run.info.run_name: json.loads(run.data.tags["heartbeat"]).get("node", "?")
        for run in client.search_runs([experiment], query)
    }


def _run(command, env, extra, tries=2):
    for _ in range(tries):  # Ray's start can trip over a process the last `ray stop` left dying: once more
        done = subprocess.run(command + extra, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode == 0:
            return
        time.sleep(5)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(command[1:3])} failed:\n{(done.stdout + done.stderr)[-2000:]}")


def _listening(port):
    with socket.socket() as probe:
        return probe.connect_ex((HEAD, port)) == 0


def _healthy(port):
    with contextlib.suppress(OSError), urllib.request.urlopen(f"http://{HEAD}:{port}/health", timeout=2):
        return True
    return False


def _wait(ready, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise click.ClickException(f"{what} did not come up in {timeout} s")
        time.sleep(0.5)


@click.command()
@click.option("--n_tasks", default="4,16,inf", show_default=True, help="the smoke sweep's pool sizes")
def main(n_tasks):
    """Start a two-node Ray cluster and an MLflow server here, run the smoke sweep through `auto` and through
    `ray://`, print where each chain ran, and stop everything."""
    folder = tempfile.mkdtemp(prefix="cluster-demo-")
    try:
        with local_cluster(folder) as env:
            click.echo(
                f"MLflow server {env['MLFLOW_TRACKING_URI']}, Ray head (GCS at {HEAD}:{GCS_PORT}), a node from {NODE}"
            )
            for offset, address in enumerate(("auto", f"ray://{HEAD}:{CLIENT_PORT}")):  # other seeds: new trainings
                command = [sys.executable, "-m", "pipeline.main", "--preset", "smoke", "--n_tasks", n_tasks]
                command += ["--seed_offset", str(offset)]
                command += ["--executor", "ray", "--ray_address", address, "--threads", "1", "--model_name", "demo"]
                click.echo(f"$ {' '.join(command[1:])}")
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
                if done.returncode != 0:
                    raise click.ClickException(f"the sweep through {address} failed:\n{done.stderr[-3000:]}")
                sweep_id = re.search(r"sweep run: runs:/(\w+)", done.stdout).group(1)
                ran = where_chains_ran(env["MLFLOW_TRACKING_URI"], sweep_id)
                click.echo(f"  sweep run {sweep_id}: " + ", ".join(f"{n} on {node}" for n, node in sorted(ran.items())))
        click.echo("stopped the MLflow server and both Ray nodes")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
