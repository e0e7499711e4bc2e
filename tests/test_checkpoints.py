"""Checkpoints you can trust (models/checkpoint.py, pipeline/tracking/resume.py): a damaged one is reported in
one line and the other slot resumes; with none good, only `--resume never` starts afresh; a training killed after
its final checkpoint resumes into its registration; a dead run is found by its heartbeat's age even when its pid
lives."""

import json
import os
import signal
import socket
import struct
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from conftest import invoke
from test_resume import TRAIN, runs, start, wait_for_checkpoint, weights

from pipeline import generate_pool, train
from pipeline.tracking.heartbeats import STALE_S, process_start
from pipeline.tracking.resume import mark_dead_runs
from pipeline.tracking.runs import REASON_TAG
from pipeline.tracking.store import setup_tracking

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all


@pytest.fixture(scope="module")
def pool(store):
    """The run id of a pool of 16 tasks in D = 4."""
    result = invoke(generate_pool.main, "--n_tasks", 16, "--n_dims", 4, "--pool_seed", 7)
    assert result.exit_code == 0, result.output
    return runs(store, "tags.stage = 'generate_pool' and params.pool_seed = '7'")[0].info.run_id


def killed_training(store, pool, name, step=400):
    """A training of TRAIN with a checkpoint every 50 steps, killed with SIGKILL once it has uploaded one of
    `step`: (its command's args, its Run)."""
    args = ("--pool", f"runs:/{pool}/pool/pool.npz", *TRAIN, "--checkpoint_every", 50, "--model_name", name)
    process = start(store, "train", *args)
    killed = wait_for_checkpoint(
        store, f"params.model_name = '{name}' and attributes.status = 'RUNNING'", step, process
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    return args, store.client.get_run(killed.info.run_id)


@pytest.fixture(scope="module")
def uninterrupted(store, pool):
    """The weights of TRAIN's training run without interruption (checkpoints every 50 steps too)."""
    args = ("--pool", f"runs:/{pool}/pool/pool.npz", *TRAIN, "--checkpoint_every", 50, "--model_name", "whole")
    result = invoke(train.main, *args, "--resume", "never")
    assert result.exit_code == 0, result.output
    return weights(store, "whole", runs(store, "params.model_name = 'whole'")[0].info.run_id)


def artifact(run, path):
    """The file of artifact `path` of `run` in the local artifact store."""
    return Path(urlparse(run.info.artifact_uri).path, path)


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flipped(path):
    """One bit flipped in the middle of the largest tensor's bytes (torch stores them uncompressed): the
    file still loads, with one weight changed."""
    with zipfile.ZipFile(path) as archive:
        largest = max(archive.infolist(), key=lambda info: info.file_size)
    with open(path, "r+b") as file:
        file.seek(largest.header_offset + 26)
        name, extra = struct.unpack("<HH", file.read(4))
        file.seek(largest.header_offset + 30 + name + extra + largest.file_size // 2)
        byte = file.read(1)[0]
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte ^ 0x10]))


@pytest.mark.parametrize("damage, says", [(truncated, "not a readable"), (flipped, "do not match the digest")])
def test_a_damaged_checkpoint_is_reported_and_the_other_slot_resumes(store, pool, uninterrupted, damage, says):
    args, killed = killed_training(store, pool, f"damaged-{damage.__name__}")
    path, step = killed.data.tags["checkpoint"].rsplit("@", 1)
    damage(artifact(killed, path))
    again = invoke(train.main, *args)
    assert again.exit_code == 0, again.output
    [report] = [line for line in again.output.splitlines() if path in line]
    assert report.startswith(f"train-m16 ({killed.info.run_id}): checkpoint {path} is ") and says in report
    assert f"({killed.info.run_id}) from its checkpoint of step {int(step) - 50}" in again.output
    assert store.client.get_run(killed.info.run_id).info.status == "FINISHED"
    resumed = weights(store, f"damaged-{damage.__name__}", killed.info.run_id)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)


def test_with_no_good_checkpoint_the_rerun_says_so_and_only_resume_never_starts_afresh(store, pool):
    args, killed = killed_training(store, pool, "no-good-checkpoint")
    for slot in ("checkpoints/a/last.pt", "checkpoints/b/last.pt"):
        truncated(artifact(killed, slot))
    before = len(runs(store, ""))
    again = invoke(train.main, *args)
    last = again.output.strip().splitlines()[-1]
    assert again.exit_code == 1 and last.startswith("Error: train-m16") and "--resume never" in last, again.output
    assert len(runs(store, "")) == before and store.client.get_run(killed.info.run_id).info.status == "FAILED"
    fresh = invoke(train.main, *args, "--resume", "never")
    assert fresh.exit_code == 0 and "resuming" not in fresh.output, fresh.output
    later = invoke(train.main, *args)  # the damaged run was superseded: not taken up again
    assert later.exit_code == 0 and "resuming" not in later.output and "checkpoint checkpoints/" not in later.output


def test_kill_9_after_the_final_checkpoint_resumes_into_registration(store, pool):
    args = ("--pool", f"runs:/{pool}/pool/pool.npz", *TRAIN, "--total_steps", 100, "--eval_every", 50)
    args = (*args, "--model_name", "late-kill")
    process = start(store, "train", *args)
    deadline = time.time() + 300
    while not (found := runs(store, "params.model_name = 'late-kill'")) or not found[0].data.tags.get(
        "checkpoint", ""
    ).endswith("@100"):
        assert process.poll() is None and time.time() < deadline, process.stdout.read()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_id = found[0].info.run_id
    assert store.client.get_run(run_id).info.status == "RUNNING", "killed too late: the registration was over"
    # What a kill between creating the version and pointing the alias at it leaves: a version of this run.
    if not store.client.search_registered_models("name = 'late-kill'"):
        store.client.create_registered_model("late-kill")
    store.client.create_model_version("late-kill", source=f"runs:/{run_id}/model", run_id=run_id)
    again = invoke(train.main, *args)
    assert again.exit_code == 0 and f"({run_id}) from its checkpoint of step 100" in again.output, again.output
    assert store.client.get_run(run_id).info.status == "FINISHED"
    [version] = store.client.search_model_versions(f"name = 'late-kill' and run_id = '{run_id}'")
    assert store.client.get_model_version_by_alias("late-kill", "m16").version == version.version
    history = store.client.get_metric_history(run_id, "true/delta_pt_ridge")
    assert sorted(m.step for m in history) == [50, 100]  # the final evaluation was logged once


def test_a_running_run_whose_heartbeat_is_too_old_is_dead_even_if_its_pid_is_alive(store):
    """A container restart reuses pids at once: a RUNNING run's pid may belong to a live process (here:
    this test's own) long after the run's process died. The heartbeat's age says so, and on this host at
    once the start time of the process that holds the pid now."""
    tracking = setup_tracking()
    now, started = time.time(), process_start(os.getpid())
    beat = {"host": socket.gethostname(), "pid": os.getpid(), "limit": STALE_S}
    beats = {
        "stale": beat | {"time": now - STALE_S - 60},
        "reused": beat | {"time": now, "started": started - 1},
        "alive": beat | {"time": now, "started": started},
    }
    ids = {name: store.client.create_run(tracking.experiment_id).info.run_id for name in beats}
    for name, value in beats.items():
        store.client.set_tag(ids[name], "heartbeat", json.dumps(value))
    try:
        assert sorted(mark_dead_runs(tracking)) == sorted([ids["stale"], ids["reused"]])
        run = store.client.get_run(ids["stale"])
        assert run.info.status == "FAILED" and "min ago, from pid" in run.data.tags[REASON_TAG]
        assert store.client.get_run(ids["alive"]).info.status == "RUNNING"
    finally:
        store.client.set_terminated(ids["alive"])
