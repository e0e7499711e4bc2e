"""Honest shutdown (pipeline/shutdown.py): a sweep's workers die with it, and SIGTERM ends a run KILLED within
10 s whatever it is doing: the estimators, a training's evaluation, its registration. Real processes,
killed for real."""

import os
import pickle
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import invoke
from mlflow.tracking import MlflowClient
from test_resume import TRAIN, runs, start, wait_for_checkpoint, weights

from models import DamagedCheckpoint, TrainingInterrupted
from pipeline import generate_pool, main, shutdown, train
from pipeline.tracking.runs import REASON_TAG

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

SWEEP = ("--preset", "smoke", "--n_tasks", "4,16,inf", "--total_steps", 800, "--warmup_steps", 50)
# Its own pools (pool_seed): the session's sweep fixture and the tests that rerun it reuse theirs.
SWEEP = (*SWEEP, "--eval_every", 100, "--executor", "process", "--workers", 2, "--pool_seed", 21)
# A D = 4 pool large enough that dMMSE on 4096 x 2 sequences takes minutes on 2 cores (each thread's share of
# an eval set about 45 s): an estimator phase that does not stop its threads cannot end within 10 s.
LARGE_POOL = ("--n_dims", 4, "--n_points", 8, "--n_eval", 4096)


def descendants(pid):
    """The pids of the live processes below `pid` (Linux /proc), zombies left out."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def alive(pids):
    """Those of `pids` still running (a zombie waits for its parent only to be reaped: it runs no more)."""
    return [pid for pid in pids if state(pid) not in ("Z", "gone")]


def state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def pool_uri(store, *args):
    """The runs:/ URI of a pool made by generate_pool with `args` (reused when one exists)."""
    result = invoke(generate_pool.main, *args)
    assert result.exit_code == 0, result.output
    run_id = runs(store, "tags.stage = 'generate_pool'")[0].info.run_id
    return f"runs:/{run_id}/pool/pool.npz"


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_a_sweep_killed_with_sigkill_takes_its_workers_and_its_rerun_trains_each_point_once(store):
    reference = invoke(main.main, *SWEEP, "--model_name", "orphans-ref")
    assert reference.exit_code == 0, reference.output

    process = start(store, "main", *SWEEP, "--model_name", "orphans")
    wait_for_checkpoint(store, "params.model_name = 'orphans' and tags.stage = 'train'", 200, process)
    workers = descendants(process.pid)
    assert len(workers) >= 2
    process.send_signal(signal.SIGKILL)
    started = {r.info.run_id for r in runs(store, "params.model_name = 'orphans' and tags.stage = 'train'")}
    process.wait()
    wait_for(lambda: not alive(workers), 10, "end of the workers (and resource tracker) of the killed sweep")

    interrupted = runs(store, "params.model_name = 'orphans' and tags.stage = 'train'")
    assert {r.info.run_id for r in interrupted} == started  # the third point, queued, was not started
    assert {r.info.status for r in interrupted} == {"KILLED"}  # each worker checkpointed and said so
    resumable = {r.info.run_id for r in interrupted if "checkpoint" in r.data.tags}
    assert resumable

    rerun = invoke(main.main, *SWEEP, "--model_name", "orphans")
    assert rerun.exit_code == 0, rerun.output
    trained = runs(store, "params.model_name = 'orphans' and tags.stage = 'train'")
    assert resumable <= {r.info.run_id for r in trained if r.info.status == "FINISHED"}  # resumed, same ids
    finished = [r for r in trained if r.info.status == "FINISHED"]
    assert sorted(r.data.params["n_tasks"] for r in finished) == ["16", "4", "inf"]
    assert all(r.data.tags.get(REASON_TAG) for r in trained if r.info.status != "FINISHED")
    versions = store.client.search_model_versions("name = 'orphans'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in finished)
    for run in finished:
        m = run.data.params["n_tasks"]
        [same] = runs(store, f"params.model_name = 'orphans-ref' and tags.stage = 'train' and params.n_tasks = '{m}'")
        a, b = weights(store, "orphans", run.info.run_id), weights(store, "orphans-ref", same.info.run_id)
        assert all(torch.equal(a[key], b[key]) for key in a), m


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_sigterm_to_a_process_sweep_stops_its_workers_trainings_and_itself_killed(store):
    process = start(store, "main", *SWEEP, "--model_name", "term-sweep")
    wait_for_checkpoint(store, "params.model_name = 'term-sweep' and tags.stage = 'train'", 200, process)
    workers = descendants(process.pid)
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert time.time() - sent < 10 and process.returncode == 128 + signal.SIGTERM, output
    # Its processes (the workers, and multiprocessing's resource tracker, which goes once they are gone).
    wait_for(lambda: not alive(workers), 10, "end of the sweep's processes")
    [sweep] = runs(store, "params.model_name = 'term-sweep' and tags.stage = 'main'")
    trained = runs(store, "params.model_name = 'term-sweep' and tags.stage = 'train'")
    assert sweep.info.status == "KILLED" and {r.info.status for r in trained} == {"KILLED"}
    assert all("checkpoint" in r.data.tags for r in trained), [r.data.tags.get(REASON_TAG) for r in trained]


@pytest.fixture(scope="module")
def large_pool(store):
    return pool_uri(store, "--n_tasks", 2**20, "--n_dims", 4, "--pool_seed", 11)


def until_printed(process, text):
    """The lines `process` prints up to the first that holds `text` (read as they come)."""
    lines = []
    while not lines or text not in lines[-1]:
        line = process.stdout.readline()
        assert line, f"the process ended without printing {text!r}: {''.join(lines)}"
        lines.append(line)
    return "".join(lines)


def terminated(store, process, where, *, when):
    """SIGTERM `process` once `when(run)` holds for the newest run matching `where`; assert it ends within
    10 s with status 143, its run KILLED with the reason; returns the run."""
    run = wait_for(lambda: next(iter(r for r in runs(store, where) if when(r)), None), 300, f"run where {where}")
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=60)
    finally:  # a process that hangs must not hold the store for the tests after this one
        process.kill()
    took = time.time() - sent
    assert took < 10 and process.returncode == 128 + signal.SIGTERM, (took, output)
    assert "interrupted by SIGTERM" in output and "Traceback" not in output, output
    run = store.client.get_run(run.info.run_id)
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags[REASON_TAG], run.data.tags
    return run


def test_sigterm_during_evaluate_baselines_estimators(store, large_pool):
    process = start(store, "evaluate_baselines", "--pool", large_pool, *LARGE_POOL)
    terminated(
        store,
        process,
        f"tags.stage = 'evaluate_baselines' and params.pool = '{large_pool}'",
        when=lambda run: time.time() * 1000 - run.info.start_time > 2000,
    )


def test_sigterm_during_a_trainings_estimators(store, large_pool):
    args = ("--pool", large_pool, *LARGE_POOL, "--n_layer", 1, "--n_embd", 32, "--total_steps", 100)
    process = start(store, "train", *args, "--warmup_steps", 10, "--model_name", "term-estimators")
    terminated(
        store,
        process,
        "params.model_name = 'term-estimators'",
        when=lambda run: time.time() * 1000 - run.info.start_time > 2000,
    )


def test_sigterm_during_a_trainings_evaluation(store):
    """M = inf (no dMMSE), 10 steps, then an evaluation of 2^16 sequences that takes far longer than 10 s."""
    pool = pool_uri(store, "--n_tasks", "inf", "--n_dims", 4, "--pool_seed", 12)  # not the sweep fixture's pool
    args = ("--pool", pool, "--n_dims", 4, "--n_points", 8, "--n_layer", 4, "--n_embd", 128, "--n_eval", 2**16)
    args = (*args, "--total_steps", 10, "--warmup_steps", 2, "--eval_every", 10, "--batch_size", 8)
    process = start(store, "train", *args, "--model_name", "term-evaluation")
    run = terminated(
        store, process, "params.model_name = 'term-evaluation'", when=lambda run: "training/loss" in run.data.metrics
    )
    assert "true/delta_pt_ridge" not in run.data.metrics  # it was evaluating at step 10, and its step is kept:
    assert run.data.tags["checkpoint"].endswith("@10")  # a rerun resumes from it and evaluates again


def test_sigterm_during_registration_registers_nothing(store):
    from test_resume import TRAIN

    args = (
        "--pool",
        pool_uri(store, "--n_tasks", 16, "--n_dims", 4, "--pool_seed", 7),
        *TRAIN[:-6],
        "--total_steps",
        100,
        "--model_name",
        "term-register",
    )
    process = start(store, "train", *args)
    # The line the training prints as it starts registering (click flushes it): the signal lands inside
    # the registration whatever the machine's speed. A poll of the store for the last checkpoint came late
    # on a fast machine, once the version existed and the run was ending.
    until_printed(process, "registering the model as term-register")
    run = terminated(store, process, "params.model_name = 'term-register'", when=lambda run: True)
    assert not store.client.search_model_versions(f"name = 'term-register' and run_id = '{run.info.run_id}'")


def test_an_interrupt_after_the_version_exists_deletes_it_and_the_run_ends_killed(store, monkeypatch):
    """The moment a timed signal rarely hits: between register_model and the alias (the same path as any
    interrupt during the registration's writes)."""

    def interrupted(*args, **kwargs):
        raise shutdown.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", interrupted)
    pool = pool_uri(store, "--n_tasks", 16, "--n_dims", 4, "--pool_seed", 7)
    result = invoke(train.main, "--pool", pool, *TRAIN, "--total_steps", 100, "--model_name", "late-term")
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    [run] = runs(store, "params.model_name = 'late-term'")
    assert run.info.status == "KILLED" and run.data.tags[REASON_TAG] == "interrupted by SIGTERM"
    assert not store.client.search_model_versions("name = 'late-term'")


def test_a_signal_raises_outside_a_deferred_block_and_at_its_end_inside():
    """The rules themselves, in this process: raise at once outside; inside deferred() only record, raised
    once, by the first of an interruptible function or the block's end; inside atomic() (a store call)
    record and raise right after it; a second signal never raises (it would cut the clean-up short); the
    handlers and the state go at the end."""

    def signalled(signum=signal.SIGTERM):
        os.kill(os.getpid(), signum)
        time.sleep(0.2)

    with shutdown.handling():
        with pytest.raises(shutdown.Interrupted, match="SIGTERM"):
            signalled()
        assert shutdown.requested() == signal.SIGTERM
        signalled(signal.SIGINT)  # a second one: recorded, not raised
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and shutdown.requested() is None
    with shutdown.handling():
        with pytest.raises(shutdown.Interrupted, match="SIGTERM"):  # from the block's end
            with shutdown.deferred():
                signalled()
                assert shutdown.requested() == signal.SIGTERM
                with shutdown.masked():
                    pass  # checks nothing
    with shutdown.handling():
        with shutdown.deferred():
            signalled()
            with pytest.raises(shutdown.Interrupted):
                shutdown.interruptible(lambda: None)()
        # raised once: the block's end does not raise it again
        with pytest.raises(shutdown.Interrupted):
            with shutdown.deferred():  # nor does a later block start while a stop is asked for
                pytest.fail("a deferred block ran after a stop was asked for")
    with shutdown.handling():
        with pytest.raises(shutdown.Interrupted), shutdown.atomic():
            signalled()
            done = True  # the call inside went to its end
        assert done
    with shutdown.handling():  # a heartbeat thread's store call neither holds back nor raises the signal
        inside, release, errors = threading.Event(), threading.Event(), []

        def beat():
            try:
                with shutdown.atomic():
                    inside.set()
                    release.wait(5)
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=beat)
        thread.start()
        inside.wait(5)
        with pytest.raises(shutdown.Interrupted):  # in the main thread, at once
            signalled()
        release.set()
        thread.join()
        assert errors == []


def test_interruptions_cross_process_boundaries_as_themselves():
    """A worker process's exception is pickled to its sweep: each comes back whole (not as a broken pool)."""
    for error in (shutdown.Interrupted(signal.SIGTERM), TrainingInterrupted(400), DamagedCheckpoint("a.pt", "gone")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
