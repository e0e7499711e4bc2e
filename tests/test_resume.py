"""Runs that survive (issue: resume, honest status, no bad model behind an alias, many processes, bounds).

Real processes, killed for real: `kill -9` and SIGTERM on `python -m pipeline.train` and `main`, then
the same command again."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import PROJECT, invoke
from mlflow.tracking import MlflowClient

from pipeline import generate_pool, main, train
from pipeline.tracking.registry import load_registered
from pipeline.tracking.runs import REASON_TAG

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

TRAIN = (
    *("--n_dims", 4, "--n_points", 8, "--batch_size", 16, "--n_layer", 1, "--n_embd", 32, "--lr", "3e-3"),
    *("--warmup_steps", 50, "--total_steps", 800, "--eval_every", 100, "--n_eval", 64, "--threads", 1),
)


def start(store, module, *args):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "MLFLOW_EXPERIMENT_NAME": "tests"}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    command = [sys.executable, "-m", f"pipeline.{module}", *map(str, args)]
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def runs(store, where):
    experiment = store.client.get_experiment_by_name("tests")
    if experiment is None:
        return []
    return store.client.search_runs([experiment.experiment_id], where, order_by=["attributes.start_time DESC"])


def wait_for_checkpoint(store, where, step, process):
    """Block until the newest run matching `where` has uploaded a checkpoint of at least `step`."""
    deadline = time.time() + 300
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        found = runs(store, where)
        if found and int(found[0].data.tags.get("checkpoint", "x@0").rsplit("@", 1)[1]) >= step:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("no checkpoint in time")


def weights(store, model_name, run_id):
    [version] = store.client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return load_registered(f"models:/{model_name}/{version.version}").state_dict()


@pytest.fixture(scope="module")
def pool(store):
    result = invoke(generate_pool.main, "--n_tasks", 16, "--n_dims", 4, "--pool_seed", 7)
    assert result.exit_code == 0, result.output
    return runs(store, "tags.stage = 'generate_pool' and params.pool_seed = '7'")[0].info.run_id


def test_kill_9_then_the_same_command_resumes_bit_identically(store, pool):
    args = ("--pool", f"runs:/{pool}/pool/pool.npz", *TRAIN, "--checkpoint_every", 50, "--model_name", "resume-kill")
    whole = invoke(train.main, *args, "--resume", "never")
    assert whole.exit_code == 0, whole.output
    reference = runs(store, "params.model_name = 'resume-kill'")[0]

    process = start(store, "train", *args)
    killed = wait_for_checkpoint(
        store, "params.model_name = 'resume-kill' and attributes.status = 'RUNNING'", 400, process
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert store.client.get_run(killed.info.run_id).info.status == "RUNNING"  # nobody said a word

    again = invoke(train.main, *args)
    assert again.exit_code == 0, again.output
    assert f"({killed.info.run_id}) from its checkpoint of step" in again.output
    run = store.client.get_run(killed.info.run_id)
    assert run.info.status == "FINISHED" and "died" in run.data.tags
    assert len(runs(store, "params.model_name = 'resume-kill'")) == 2  # the reference and the resumed one
    for key in ("training/loss", "true/delta_pt_ridge"):
        steps = [m.step for m in store.client.get_metric_history(run.info.run_id, key)]
        assert steps == sorted(set(steps)), key  # no duplicate steps
        assert [
            m.value for m in sorted(store.client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        ] == [
            m.value for m in sorted(store.client.get_metric_history(reference.info.run_id, key), key=lambda m: m.step)
        ]
    a, b = weights(store, "resume-kill", reference.info.run_id), weights(store, "resume-kill", run.info.run_id)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_sigterm_ends_the_run_killed_within_seconds_and_the_rerun_resumes_it(store, pool):
    args = ("--pool", f"runs:/{pool}/pool/pool.npz", *TRAIN, "--model_name", "resume-term")
    process = start(store, "train", *args)
    running = wait_for_checkpoint(
        store, "params.model_name = 'resume-term' and attributes.status = 'RUNNING'", 200, process
    )
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert time.time() - sent < 10 and process.returncode == 128 + signal.SIGTERM, output
    assert "rerun the same command to resume" in output
    assert store.client.get_run(running.info.run_id).info.status == "KILLED"
    again = invoke(train.main, *args)
    assert again.exit_code == 0 and f"({running.info.run_id}) from its checkpoint" in again.output
    assert store.client.get_run(running.info.run_id).info.status == "FINISHED"


def test_main_resumes_its_interrupted_chain(store):
    args = ("--preset", "smoke", "--n_tasks", 8, "--total_steps", 800, "--warmup_steps", 50, "--eval_every", 100)
    args = (*args, "--model_name", "resume-main")
    process = start(store, "main", *args)
    killed = wait_for_checkpoint(store, "params.model_name = 'resume-main' and tags.stage = 'train'", 300, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = invoke(main.main, *args)
    assert result.exit_code == 0, result.output
    assert result.output.count("reusing") == 2 and f"({killed.info.run_id}) from its checkpoint" in result.output
    trained = runs(store, "params.model_name = 'resume-main' and tags.stage = 'train'")
    assert [r.info.status for r in trained] == ["FINISHED"]
    sweeps = runs(store, "params.model_name = 'resume-main' and tags.stage = 'main'")
    assert sorted(r.info.status for r in sweeps) == ["FAILED", "FINISHED"]  # the killed sweep is marked dead
    # The training resumed in place stays under the killed sweep (as the reused pool and baselines runs stay
    # under the sweeps that made them); each says that the rerun used it too, and the rerun's description
    # links all three.
    rerun, killed_sweep = (next(r for r in sweeps if r.info.status == s) for s in ("FINISHED", "FAILED"))
    assert trained[0].data.tags["mlflow.parentRunId"] == killed_sweep.info.run_id
    assert runs(store, f"tags.mlflow.parentRunId = '{rerun.info.run_id}'") == []
    linked = re.findall(r"runs/(\w{32})\)", rerun.data.tags["mlflow.note.content"])
    assert len(linked) == 3 and trained[0].info.run_id in linked
    for run_id in linked:
        assert store.client.get_run(run_id).data.tags["sweeps"].split(",")[-1] == rerun.info.run_id


@pytest.mark.parametrize(
    "bad, message",
    [
        # Adam's first steps move every weight by about lr: at 1e30 the forward overflows float32 (inf, then NaN).
        (("--lr", "1e30"), "training diverged at step 50: loss=nan; lower lr (lr=1e+30)"),
        # One step of 1e3 leaves finite weights of about 1e3, whose predictions are about 1e6: loss/D near
        # 1e13 against predicting 0's 1, whatever the round-off.
        (("--lr", "1e3", "--total_steps", 1, "--warmup_steps", 0, "--eval_every", 1), "worse than predicting 0"),
    ],
)
def test_a_bad_model_never_takes_an_alias(store, pool, bad, message):
    uri = f"runs:/{pool}/pool/pool.npz"
    args = (
        "--pool",
        uri,
        *TRAIN[:-6],
        "--total_steps",
        100,
        "--eval_every",
        50,
        "--n_eval",
        64,
        "--model_name",
        "gate",
    )
    good = invoke(train.main, *args)
    assert good.exit_code == 0, good.output
    alias = store.client.get_model_version_by_alias("gate", "m16").version
    versions = len(store.client.search_model_versions("name = 'gate'"))
    result = invoke(train.main, *args, *bad)
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and message in last and f"lower lr (lr={float(bad[1])})" in last, result.output
    failed = runs(store, f"params.model_name = 'gate' and params.lr = '{float(bad[1])}'")[0]
    assert failed.info.status == "FAILED" and failed.data.tags[REASON_TAG] == last.removeprefix("Error: ")
    assert len(store.client.search_model_versions("name = 'gate'")) == versions
    assert store.client.get_model_version_by_alias("gate", "m16").version == alias


def test_four_processes_at_once_on_a_new_store(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.generate_pool", "--n_dims", "3", "--n_tasks", str(m)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for m in (2, 4, 8, 16)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("icl-task-diversity")
    assert sorted(r.info.status for r in client.search_runs([experiment.experiment_id])) == ["FINISHED"] * 4


@pytest.mark.parametrize(
    "command, args, message",
    [
        (generate_pool.main, ("--n_tasks", 2**40), "n_tasks=1099511627776, n_dims=8 need about"),
        (generate_pool.main, ("--n_tasks", "1e400"), "n_tasks must be a positive integer or inf, got '1e400'"),
        (main.main, ("--n_points", 10**6), "n_eval=128, n_points=1000000, n_dims=4 need about"),
        (main.main, ("--noise_scale", 0), "noise_scale must be a positive finite number for evaluation, got 0.0"),
    ],
)
def test_huge_or_impossible_values_fail_in_one_line_before_any_run(store, command, args, message):
    before = len(runs(store, ""))
    result = invoke(command, *args, *(("--preset", "smoke", "--model_name", "bounds") if command is main.main else ()))
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and message in line, line
    assert len(runs(store, "")) == before


def test_a_training_in_a_process_sweep_equals_the_same_training_alone(store):
    """Same params and thread count: bit-identical weights, whether trained beside another chain in a
    worker process or alone with `train`."""
    args = ("--preset", "smoke", "--n_tasks", "3,5", "--executor", "process", "--workers", 2, "--model_name", "beside")
    result = invoke(main.main, *args)
    assert result.exit_code == 0, result.output
    swept = runs(store, "params.model_name = 'beside' and tags.stage = 'train' and params.n_tasks = '5'")[0]
    assert swept.data.params["threads"] == "1"
    derived = ("n_params", "n_tasks", "task_scale", "task_prior")
    options = [(f"--{key}", value) for key, value in swept.data.params.items() if key not in derived]
    alone = invoke(train.main, *[item for option in options for item in option], "--resume", "never")
    assert alone.exit_code == 0, alone.output
    again = [
        r
        for r in runs(store, "params.model_name = 'beside' and params.n_tasks = '5'")
        if r.info.run_id != swept.info.run_id
    ]
    a, b = weights(store, "beside", swept.info.run_id), weights(store, "beside", again[0].info.run_id)
    assert all(torch.equal(a[key], b[key]) for key in a)
