"""executor=ray: each job of a sweep (a pool and its baselines, or a pack of trainings) is a Ray task that
declares what it needs (CPUs: the training's threads; a GPU on CUDA; memory: the bounds of
pipeline/bounds.py), so that Ray places it on a local instance started for the sweep or on a cluster.

Tasks write to the sweep's tracking store and experiment, nested under the sweep's run, as the other
executors' do; a cluster with nodes on other hosts needs a store they can reach (`mlflow server`), and a
local SQLite or file store is refused then. A task whose worker dies (a node lost, a process killed) is
retried by Ray up to RETRIES times; the retry marks the runs its dead attempt left RUNNING as FAILED (they
carry its Ray task id in their heartbeat) and so resumes each training from its last checkpoint. A task
that raises (bad settings, a divergence) is not retried: it fails alone and the sweep lists it at the end.
"""

import functools
import importlib.util
import os
import socket
from urllib.parse import urlparse

import click
import ray
import torch
from ray.exceptions import RayError, RayTaskError

from models import TrainingInterrupted
from pipeline.bounds import GIB, eval_bytes, pack_size, pool_bytes, training_bytes
from pipeline.settings import machine_cores
from pipeline.sweep.chain import finish, prepare, train_settings
from pipeline.tracking.heartbeats import NODE_ENV, TASK_ENV
from pipeline.tracking.resume import mark_dead_runs
from pipeline.types import InputError

RETRIES = 3  # attempts after a worker dies, per task
STOP_S = 60  # seconds the tasks of a stopped sweep get to checkpoint and end their runs KILLED
LOCAL_OBJECT_STORE = 256 * 2**20  # bytes: tasks pass run ids and settings, nothing large


class RayExecutor:
    """Jobs as Ray tasks; `address` "" starts a local instance (every core of this machine), "auto" or
    "ray://host:port" joins a running cluster (on entering the context; leaving it disconnects, or stops
    the local instance). `device` is the `device` option, resolved on the cluster: auto is CUDA when the
    cluster has GPUs."""

    name = "ray"

    def __init__(self, address, device):
        if device.startswith("cuda:"):
            raise InputError(f"device={device!r} with executor=ray: Ray gives each training a GPU of its own; use cuda")
        self.address, self.option = address, device

    def __enter__(self):
        if self.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise InputError(
                f"ray_address={self.address!r} needs Ray Client, which is not installed: pip install 'ray[client]'"
            )
        if self.address:
            ray.init(address=self.address, configure_logging=False)
        else:
            ray.init(
                address="local",
                num_cpus=machine_cores(),
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE,
                configure_logging=False,
            )
        try:
            resources = ray.cluster_resources()
            self.gpus = int(resources.get("GPU", 0))
            self.device = ("cuda" if self.gpus else "cpu") if self.option == "auto" else self.option
            if self.device == "cuda" and not self.gpus:
                raise InputError(f"device='cuda' but the Ray cluster at {self.address or 'local'} has no GPU")
        except BaseException:
            ray.shutdown()
            raise
        self.workers = self.gpus if self.device == "cuda" else int(resources.get("CPU", 1))  # chains at once
        click.echo(f"ray: {where(self.address)}, {int(resources.get('CPU', 0))} CPUs, {self.gpus} GPUs")
        return self

    def __exit__(self, *error):
        ray.shutdown()
        return False

    def threads(self):
        return 1

    def pack_size(self, settings):
        """Members per ensemble when `pack` is left to choose (bounds.pack_size): on CUDA, from the free
        memory of a GPU of the cluster (`gpu_free`)."""
        return pack_size(settings, self.device, free=self.gpu_free if self.device == "cuda" else None)

    @functools.cached_property
    def gpu_free(self):
        """Bytes free on a GPU of the cluster, asked once by a task placed on one (this machine may have none)."""
        return ray.get(_free_gpu_memory.options(num_gpus=1).remote())

    def check(self, points, packs):
        """Refuse (InputError) a sweep with a job that no node of the cluster can take: Ray would wait for
        one forever. Each pack's needs (`needs`) against the largest node's CPUs, GPUs and memory."""
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        jobs = [(prepare, (point,)) for point in points] + [(finish, ([points[i] for i in p], None)) for p in packs]
        for function, job in jobs:
            need = self.needs(function, job)
            wanted = {"CPU": need["num_cpus"], "GPU": need["num_gpus"], "memory": need["memory"]}
            if not any(all(node.get(key, 0) >= value for key, value in wanted.items()) for node in nodes):
                labels = "+".join(point.label for point in (job[0] if function is finish else job))
                largest = max(nodes, key=lambda node: node.get("memory", 0))
                raise InputError(
                    f"{labels} needs {need['num_cpus']} CPUs, {need['num_gpus']} GPUs and "
                    f"{need['memory'] / GIB:.1f} GiB, more than any node of the Ray cluster has (largest: "
                    f"{largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs, "
                    f"{largest.get('memory', 0) / GIB:.1f} GiB): lower threads, n_eval or pack"
                )

    def remote_hosts(self):
        """The addresses of the cluster's live nodes that are not this machine."""
        here = {ray.util.get_node_ip_address(), "127.0.0.1", socket.gethostname()}
        return sorted({node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]} - here)

    def check_tracking(self, tracking):
        """Refuse a store, or an artifact folder, the cluster's other hosts cannot write to (InputError)."""
        artifacts = tracking.client().get_experiment(tracking.experiment_id).artifact_location
        check_reachable(tracking.uri, self.address, self.remote_hosts(), artifacts)

    def map(self, function, tracking, jobs, parent, on_done=None):
        refs = [
            _job.options(**self.needs(function, job), name=f"{function.__name__}").remote(
                function, tracking, job, parent
            )
            for job in jobs
        ]
        try:
            outcomes = []
            for index, ref in enumerate(refs):
                outcomes.append(_outcome(ref))
                if on_done is not None:  # as executors.report does (imported here, it would tie the two)
                    on_done(index, outcomes[-1])
            return outcomes
        except KeyboardInterrupt:  # the sweep was asked to stop: each running training checkpoints first
            for ref in refs:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: handled as SIGINT (pipeline/shutdown.py)
            ray.wait(refs, num_returns=len(refs), timeout=STOP_S)
            raise

    def needs(self, function, job):
        """The Ray resources of one job: the CPUs of a training's threads (each member's threads once:
        a pack is one computation), a GPU for trainings on CUDA, and memory: pools, eval sets and, on a
        CPU, the training steps (pipeline/bounds.py)."""
        points = job[0] if function is finish else list(job)
        settings = [train_settings(point) for point in points]
        memory = sum(
            pool_bytes(p.values["n_tasks"], s.data.n_dims) + eval_bytes(s.evaluation, s.data.n_dims)
            for p, s in zip(points, settings, strict=True)
        )
        training = function is finish
        if training and self.device == "cpu":
            memory += len(settings) * training_bytes(settings[0].data, settings[0].arch)
        gpus = 1 if training and self.device != "cpu" else 0
        return {
            "num_cpus": settings[0].threads,
            "num_gpus": gpus,
            "memory": memory,
            "max_retries": RETRIES,
            "retry_exceptions": False,
        }


def _outcome(ref):
    """What the job of `ref` returned, or why it did not: the job's own InputError or interruption as it
    is; another exception as Ray's error, whose text carries the remote traceback; a lost worker named."""
    try:
        return ray.get(ref)
    except RayTaskError as error:  # the job raised
        return error.cause if isinstance(error.cause, InputError | TrainingInterrupted) else error
    except RayError as error:  # its worker died more than RETRIES times, it was cancelled, the cluster is gone
        return RuntimeError(f"{type(error).__name__}: {str(error).strip().splitlines()[0]}")


@ray.remote
def _job(function, tracking, job, parent):
    """One job on a Ray worker: the runs a dead earlier attempt of this task left RUNNING are marked FAILED
    (so its trainings resume from their checkpoints), then function(tracking, *job, parent=parent)."""
    tracking.activate()
    task = ray.get_runtime_context().get_task_id()
    mark_dead_runs(tracking, task=task)
    os.environ[TASK_ENV] = task  # in the heartbeats of the runs this attempt opens, with its node's address
    node = ray.get_runtime_context().get_node_id()  # its address as the cluster knows it (not this host's)
    os.environ[NODE_ENV] = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), node)
    try:
        return function(tracking, *job, parent=parent)
    finally:
        os.environ.pop(TASK_ENV, None)
        os.environ.pop(NODE_ENV, None)


@ray.remote
def _free_gpu_memory():
    return torch.cuda.mem_get_info()[0]


def where(address):
    return f"joined the cluster at {address}" if address else "a local instance started for this sweep"


def check_reachable(uri, address, remote_hosts, artifacts):
    """A local store (SQLite, a folder), or an experiment whose artifacts go to a local folder, cannot take
    writes from other hosts: refuse them when the cluster at `address` (a ray:// client, or nodes on
    `remote_hosts`) runs tasks elsewhere. `artifacts` is the experiment's artifact location."""
    client = address.startswith("ray://") and urlparse(address).hostname not in ("localhost", "127.0.0.1")
    if not (client or remote_hosts):
        return
    elsewhere = f"nodes on {', '.join(remote_hosts)}" if remote_hosts else f"the cluster at {address}"
    if _is_local(uri):
        raise InputError(
            f"MLFLOW_TRACKING_URI={uri!r} is a store on this machine, which {elsewhere} cannot write to: start "
            "`mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri sqlite:///cluster.db "
            "--artifacts-destination ./cluster-artifacts` here and set MLFLOW_TRACKING_URI=http://<this "
            "host>:5000 (docs/cluster.md)"
        )
    if artifacts and _is_local(artifacts):
        raise InputError(
            f"the experiment keeps its artifacts in {artifacts}, a folder on this machine, which {elsewhere} "
            "cannot write to: use an experiment created through the server (MLFLOW_EXPERIMENT_NAME=<new name>), "
            "whose artifacts the server stores (docs/cluster.md)"
        )


def _is_local(uri):
    scheme = urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # a Windows drive letter is a path too
