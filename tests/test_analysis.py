"""The analyze entry point (issue: the paper's other figures): t*, the U test and the power-law fit on
synthetic curves with a known answer; each kind on the smoke sweep, its table recomputed from the
tracked metrics; bad input in one line."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import invoke, mlflow_run

from pipeline import analyze, main
from pipeline.analysis.fits import power_law, t_star, u_shaped
from pipeline.analysis.sweep_runs import Sweep
from pipeline.analysis.transition import transition_time

STEPS = np.arange(100, 20_001, 100)


def test_t_star_is_the_step_of_the_smallest_value():
    assert t_star([10, 20, 30, 40], [3.0, 1.0, 2.0, 1.0]) == 20  # the first minimum on a tie
    assert t_star([10, 20, 30], [math.nan, 2.0, 1.5]) == 30
    with pytest.raises(ValueError, match="no finite value"):
        t_star([10], [math.nan])


def test_power_law_recovers_its_exponent():
    ms = [2**k for k in range(1, 11)]
    alpha, intercept = power_law(ms, [37 * m**0.47 for m in ms])
    assert alpha == pytest.approx(0.47, abs=1e-12) and intercept == pytest.approx(math.log2(37), abs=1e-10)
    with pytest.raises(ValueError, match="two distinct finite M"):
        power_law([8, 8], [1, 2])


def test_only_a_minimum_clear_of_both_ends_is_a_u():
    assert u_shaped(STEPS, (np.log(STEPS) - np.log(3000)) ** 2 + 1)
    assert not u_shaped(STEPS, 1 / STEPS)  # still approaching ridge at the end: above the threshold
    assert not u_shaped(STEPS, STEPS.astype(float))  # moving away from the first evaluation: t* unresolved
    assert not u_shaped(STEPS, np.ones(len(STEPS)))


def synthetic(t_stars):
    """A fake client and Sweep whose train runs' Delta_PT,Ridge histories are U-shaped around t_stars[M]
    (monotone decreasing at M = inf)."""
    histories, rows = {}, []
    for m, t in t_stars.items():
        run = f"run-{m}"
        values = 1 / STEPS if m == math.inf else (np.log(STEPS) - np.log(t)) ** 2 + 0.1
        for key in ("true/delta_pt_ridge", "pretrain/delta_pt_ridge"):
            histories[run, key] = [
                SimpleNamespace(step=int(s), value=float(v)) for s, v in zip(STEPS, values, strict=True)
            ]
        rows.append({"n_tasks": m, "log2_n_tasks": math.log2(m), "train_run": run})
    client = SimpleNamespace(get_metric_history=lambda run, key: histories.get((run, key), []))
    return client, Sweep("sweep", {}, {}, rows, ["n_tasks"])


def test_transition_time_fits_the_power_law_of_synthetic_curves():
    ms = [2**k for k in range(2, 9)]
    t_stars = {m: 100 * round(2 * m**0.5) for m in ms} | {math.inf: None}  # on the evaluation grid
    result = transition_time(*synthetic(t_stars))
    table = result.tables["transition_time/t_star.json"]
    found = {(d, n): t for d, n, t in zip(table["dist"], table["n_tasks"], table["t_star"], strict=True)}
    assert all(found["true", m] == t_stars[m] for m in ms) and found["true", "inf"] == STEPS[-1]
    expected, _ = power_law(ms, [t_stars[m] for m in ms])
    assert result.metrics["alpha/true"] == pytest.approx(expected) and abs(expected - 0.5) < 0.02
    assert result.metrics["fit_log2_n_tasks_min/true"] == 2 and result.metrics["fit_log2_n_tasks_max/true"] == 8
    assert result.metrics["fit_points/true"] == len(ms)  # M = inf, monotone, is not fitted


@pytest.fixture(scope="module")
def analyses(store, sweep):
    """transition_time and final_accuracy on the session's smoke sweep (M = 4, inf)."""
    uri = f"runs:/{sweep.parent.info.run_id}"
    found = {}
    for kind, extra in (("transition_time", ()), ("final_accuracy", ("--above", 1))):
        result = invoke(analyze.main, "--kind", kind, "--sweep", uri, *extra)
        assert result.exit_code == 0, result.output
        run_id = re.search(r"analysis run: runs:/(\w+)", result.output).group(1)
        found[kind] = SimpleNamespace(run=store.client.get_run(run_id), output=result.output)
    return found


def table(store, run, path):
    data = store.client.load_table(run.info.experiment_id, path, run_ids=[run.info.run_id])
    return data.to_dict("list")


def test_transition_time_on_the_smoke_sweep_reads_the_tracked_histories(store, sweep, analyses):
    run = analyses["transition_time"].run
    assert run.data.tags["mlflow.parentRunId"] == sweep.parent.info.run_id
    assert run.data.params == {"kind": "transition_time", "sweep": f"runs:/{sweep.parent.info.run_id}"}
    rows = table(store, run, "transition_time/t_star.json")
    assert len(rows["t_star"]) == 4  # M = 4 and inf, on T_Pretrain and T_True
    for run_id, dist, t in zip(rows["train_run"], rows["dist"], rows["t_star"], strict=True):
        key = "true/delta_pt_ridge" if run_id == sweep.runs["train-minf"].info.run_id else f"{dist}/delta_pt_ridge"
        history = store.client.get_metric_history(run_id, key)
        assert t == min(history, key=lambda m: (m.value, m.step)).step
    names = [a.path for a in store.client.list_artifacts(run.info.run_id, "transition_time")]
    assert "transition_time/transition_time.png" in names
    assert "runs:/" in run.data.tags["mlflow.note.content"] and "Runs read" in run.data.tags["mlflow.note.content"]


def test_final_accuracy_compares_the_models_above_the_threshold_with_m_inf(store, sweep, analyses):
    run = analyses["final_accuracy"].run
    rows = table(store, run, "final_accuracy/final_accuracy.json")
    final = {
        name: r.data.metrics["true/pt/loss_noiseless"] for name, r in sweep.runs.items() if name.startswith("train")
    }
    assert rows["n_tasks"] == [4] and rows["pt"] == [pytest.approx(final["train-m4"])]
    assert rows["pt_inf"] == [pytest.approx(final["train-minf"])]
    gap = final["train-m4"] / final["train-minf"] - 1
    assert run.data.metrics["largest_relative_gap"] == pytest.approx(gap)
    assert run.data.metrics["models_above_threshold"] == 1


def test_bad_sweeps_are_refused_in_one_line(store, sweep):
    result = invoke(analyze.main, "--kind", "transition_time")
    assert result.exit_code == 1 and "Error: sweep='' must be runs:/<id> of a sweep (main) run" in result.output
    result = invoke(analyze.main, "--sweep", "runs:/0123456789abcdef")
    assert result.exit_code == 1 and "Error: sweep='runs:/0123456789abcdef' cannot be read" in result.output
    pool = sweep.runs["pool-m4"].info.run_id
    result = invoke(analyze.main, "--sweep", f"runs:/{pool}")
    assert result.exit_code == 1 and "is not a FINISHED sweep run (stage 'generate_pool')" in result.output


# Each kind as a user launches it; data_scale and thresholds need the grid sweep's extra axes.
MLFLOW_RUNS = {
    "transition_time": ("sweep", ()),
    "final_accuracy": ("sweep", ("above=1",)),
    "interpolation": ("sweep", ("pairs=4", "alphas=3", "sequences=2")),
    "data_scale": ("grid_sweep", ()),
    "thresholds": ("grid_sweep", ()),
    "smoothing": ("sweep", ("held_out=64",)),
    "lmc": ("sweep", ("alphas=3", "fresh=64")),
    "dimension": ("dims_sweep", ()),
    "laplace": ("laplace_sweep", ()),
}
# Two launches in CI (each costs a fresh interpreter and MLflow's start-up, 15-25 s); every kind with
# `make test-slow`.
IN_CI = ("final_accuracy", "interpolation")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "kind", [kind if kind in IN_CI else pytest.param(kind, marks=pytest.mark.slow) for kind in MLFLOW_RUNS]
)
def test_analyze_through_mlflow_run_is_the_launcher_run_nested_under_the_sweep(store, request, kind, tmp_path):
    fixture, params = MLFLOW_RUNS[kind]
    parent = request.getfixturevalue(fixture)
    parent_id = parent if isinstance(parent, str) else (parent.parent if fixture == "sweep" else parent).info.run_id
    result = mlflow_run("analyze", f"kind={kind}", f"sweep=runs:/{parent_id}", *params, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_id = re.search(r"analysis run: runs:/(\w+)", result.stdout).group(1)
    run = store.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent_id
    assert run.data.tags["stage"] == "analyze" and run.data.params["kind"] == kind
    figures = [a.path for a in store.client.list_artifacts(run_id, kind)]
    assert f"{kind}/{kind}.png" in figures
    if kind == "final_accuracy":
        assert run.data.metrics["models_above_threshold"] == 1


@pytest.fixture(scope="module")
def grid_sweep(store):
    """A smoke sweep over M, two data scales (batch 16, 32) and two weight decays: 8 trainings."""
    args = ("--n_tasks", "4,inf", "--batch_size", "16,32", "--weight_decay", "0,0.1", "--model_name", "grid")
    result = invoke(
        main.main, "--preset", "smoke", *args, "--total_steps", 40, "--warmup_steps", 10, "--eval_every", 20
    )
    assert result.exit_code == 0, result.output
    return store.client.get_run(re.search(r"sweep run: runs:/(\w+)", result.output).group(1))


def analysed(store, sweep_run, kind):
    result = invoke(analyze.main, "--kind", kind, "--sweep", f"runs:/{sweep_run.info.run_id}")
    assert result.exit_code == 0, result.output
    return store.client.get_run(re.search(r"analysis run: runs:/(\w+)", result.output).group(1)), result.output


def summary_rows(store, sweep_run):
    data = table(store, sweep_run, "summary/summary.json")
    return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]


def test_data_scale_draws_each_scale_and_its_crossing(store, grid_sweep):
    run, output = analysed(store, grid_sweep, "data_scale")
    rows = table(store, run, "data_scale/data_scale.json")
    assert set(rows["scale"]) == {"B16", "B32"} and set(rows["group"]) == {"weight_decay=0.0", "weight_decay=0.1"}
    tracked = {r["train_run"]: r for r in summary_rows(store, grid_sweep)}
    for i, run_id in enumerate(rows["train_run"]):  # every number is the summary's, unchanged
        for key in ("pretrain/delta_pt_dmmse", "true/delta_pt_dmmse", "pretrain/delta_pt_ridge", "true/delta_pt_ridge"):
            assert rows[key][i] == pytest.approx(tracked[run_id][key], nan_ok=True)
    assert {k for k in run.data.metrics} == {
        "crossover_log2_n_tasks/weight_decay_0.0/B16_vs_B32",
        "crossover_log2_n_tasks/weight_decay_0.1/B16_vs_B32",
    }
    assert "B32 against B16:" in output


def test_thresholds_reads_the_sweeps_estimate_per_value(store, grid_sweep):
    run, output = analysed(store, grid_sweep, "thresholds")
    rows = table(store, run, "thresholds/thresholds.json")
    assert rows["weight_decay"] == [0.0, 0.1]
    for value, log2_m in zip(rows["weight_decay"], rows["threshold_log2_n_tasks"], strict=True):
        key = f"threshold_log2_n_tasks/weight_decay_{value}"
        assert log2_m == pytest.approx(grid_sweep.data.metrics.get(key, math.nan), nan_ok=True)
    assert "weight_decay=0.0:" in output and "weight_decay=0.1:" in output


def test_analyses_that_need_an_axis_refuse_a_sweep_without_it(sweep):
    uri = f"runs:/{sweep.parent.info.run_id}"
    result = invoke(analyze.main, "--kind", "data_scale", "--sweep", uri)
    assert result.exit_code == 1 and "Error: data_scale needs a sweep over batch_size or total_steps" in result.output
    result = invoke(analyze.main, "--kind", "thresholds", "--sweep", uri)
    assert result.exit_code == 1 and "Error: thresholds needs a sweep over an axis besides n_tasks" in result.output


def test_interpolation_on_the_smoke_sweep(store, sweep):
    uri = f"runs:/{sweep.parent.info.run_id}"
    args = ("--pairs", 8, "--alphas", 5, "--sequences", 4)
    result = invoke(analyze.main, "--kind", "interpolation", "--sweep", uri, *args)
    assert result.exit_code == 0, result.output
    run = store.client.get_run(re.search(r"analysis run: runs:/(\w+)", result.output).group(1))
    assert run.data.params == {
        "kind": "interpolation",
        "sweep": uri,
        "pairs": "8",
        "alphas": "5",
        "sequences": "4",
        "seed": "107",
    }
    rows = table(store, run, "interpolation/interpolation.json")
    assert rows["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0] and set(rows["n_tasks"]) == {4}  # M = inf has no pool tasks
    for name in ("pt", "dmmse", "ridge"):
        assert all(0 < value < 10 for value in rows[name])
        bump = rows[name][2] - (rows[name][0] + rows[name][-1]) / 2
        assert run.data.metrics[f"bump/{name}/m4"] == pytest.approx(bump)
    assert rows["train_run"][0] == sweep.runs["train-m4"].info.run_id


def test_lmc_joins_each_model_to_m_inf_and_measures_the_barrier(store, sweep, grid_sweep):
    """Fig. 11 on the smoke sweep: the loss at t = 0 and 1 is the endpoint model's own training loss on the
    drawn sequences (recomputed here from the registered models), the barrier is the table's largest rise
    over the chord; a sweep with several M = inf models also gets the two-M = inf reference."""
    import torch

    from pipeline.analysis.sweep_runs import registered_model_uri
    from pipeline.tracking.registry import load_registered
    from tasks import DataSettings, sample_batch

    uri = f"runs:/{sweep.parent.info.run_id}"
    result = invoke(analyze.main, "--kind", "lmc", "--sweep", uri, "--alphas", 5, "--fresh", 128)
    assert result.exit_code == 0, result.output
    run = store.client.get_run(re.search(r"analysis run: runs:/(\w+)", result.output).group(1))
    rows = table(store, run, "lmc/lmc.json")
    assert rows["pair"] == ["m4"] * 5 and rows["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    xs, _, ys = sample_batch(DataSettings(128, 8, 4, 0.5, 1.0, 107, 107, 107), 0, pool=None, task_scale=1.0)
    for index, name in ((0, "train-m4"), (-1, "train-minf")):
        model = load_registered(registered_model_uri(store.client, sweep.runs[name].info.run_id))
        with torch.no_grad():
            expected = float(torch.nn.functional.mse_loss(model(xs, ys), ys))
        assert rows["true"][index] == pytest.approx(expected, rel=1e-6)
    chord = [(1 - t) * rows["true"][0] + t * rows["true"][-1] for t in rows["t"]]
    barrier = max(v - c for v, c in zip(rows["true"], chord, strict=True))
    assert run.data.metrics["barrier/true/m4"] == pytest.approx(barrier, rel=1e-6, abs=1e-9)
    assert "barrier/true/inf_vs_inf" not in run.data.metrics  # one M = inf model: no reference
    run, _ = analysed(store, grid_sweep, "lmc")
    assert "barrier/true/inf_vs_inf" in run.data.metrics
    assert len([k for k in run.data.metrics if k.startswith("barrier/true/m4/")]) == 4  # one per curve
