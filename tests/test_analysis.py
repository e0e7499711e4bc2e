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
from pipeline.types import InputError

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


def stand_in_gallery(monkeypatch):
    """The gallery's CPU presets replaced by smoke-sized stand-ins with the same axes (M = 4, inf)."""
    from pipeline import gallery, presets

    base = presets.PRESETS["smoke"] | {"n_tasks": [4, math.inf], "total_steps": 40, "warmup_steps": 10}
    base |= {"eval_every": 10, "model_name": "gallery"}
    stand_ins = {
        name: base
        | {axis: values for axis, values in preset.items() if isinstance(values, list) and axis != "n_tasks"}
        | {key: preset[key] for key in ("task_prior", "link") if key in preset}
        for name, preset in presets.CPU_FIGURES.items()
    }
    stand_ins["fig3_cpu"] |= {"total_steps": [40, 80]}
    stand_ins["fig7_wd_cpu"] |= {"weight_decay": [0.0, 0.1]}
    stand_ins["fig6_cpu"] |= {"n_dims": [2, 4], "n_points": [4, 8]}
    monkeypatch.setitem(analyze.PATHS, "pairs", (1, 4, "pairs"))
    for name, preset in stand_ins.items():
        monkeypatch.setitem(presets.PRESETS, name, preset)
    return gallery


def test_make_figures_shares_a_sweep_between_equal_presets_and_keeps_earlier_findings(store, tmp_path, monkeypatch):
    """In CI: three figures of the base grid (one sweep run), then one more with --only; findings.md keeps
    the first three's findings."""
    gallery = stand_in_gallery(monkeypatch)
    result = invoke(gallery.main, "--out", tmp_path, "--only", "fig2_sweep,fig4_transition_time,fig10_final_accuracy")
    assert result.exit_code == 0, result.output
    assert result.output.count("sweep fig") == 1  # fig2_cpu's sweep serves fig4_cpu and fig10_cpu
    result = invoke(gallery.main, "--out", tmp_path, "--only", "fig12_smoothing")
    assert result.exit_code == 0, result.output
    assert result.output.count("reusing train-") == 2  # the base grid's two trainings, not retrained
    names = ("fig2_sweep", "fig4_transition_time", "fig10_final_accuracy", "fig12_smoothing")
    for name in names:
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    findings = (tmp_path / "findings.md").read_text()
    assert findings.count("## ") == 4 and "rule:" in findings and "smoothed dMMSE" in findings


@pytest.mark.slow
def test_make_figures_runs_each_sweep_once_and_writes_every_figure(store, tmp_path, monkeypatch):
    """Every figure on the stand-ins: presets with equal settings share one sweep, the larger grids reuse
    the base grid's chains, and every figure lands with its findings."""
    gallery = stand_in_gallery(monkeypatch)
    result = invoke(gallery.main, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("sweep fig") == 6  # fig2_cpu (also 4, 5, 10, 12), fig3, fig6, fig7_wd, fig11, fig14
    assert "reusing train-m4 " in result.output  # the larger grids reuse the base grid's trainings
    for entry in gallery.GALLERY:
        assert (tmp_path / f"{entry.name}.png").read_bytes()[:4] == b"\x89PNG"
    findings = (tmp_path / "findings.md").read_text()
    assert (
        findings.count("## ") == len(gallery.GALLERY) and "bump over its endpoints" in findings and "rule:" in findings
    )


def test_smoothing_scores_smoothed_dmmse_on_the_tracked_eval_set(store, sweep):
    """Fig. 12 on the smoke sweep (M = 4): the transformer's, dMMSE's and ridge's losses are the summary's;
    smoothed dMMSE's is recomputed here from the eval set the baselines run tracked, at the chosen s."""
    import numpy as np

    from baselines import loss_vs_noiseless, smoothed_dmmse_predictions
    from pipeline.cli import open_pool

    uri = f"runs:/{sweep.parent.info.run_id}"
    result = invoke(analyze.main, "--kind", "smoothing", "--sweep", uri, "--held_out", 64)
    assert result.exit_code == 0, result.output
    run = store.client.get_run(re.search(r"analysis run: runs:/(\w+)", result.output).group(1))
    assert run.data.params == {"kind": "smoothing", "sweep": uri, "held_out": "64", "seed": "107"}
    rows = table(store, run, "smoothing/smoothing.json")
    assert rows["n_tasks"] == [4]
    (summary,) = [r for r in summary_rows(store, sweep.parent) if r["n_tasks"] == 4]
    for name in ("pt", "dmmse", "ridge"):
        assert rows[name] == [pytest.approx(summary[f"true/{name}/loss_noiseless"])]
    folder = store.client.download_artifacts(summary["evaluate_baselines_run"], "eval/true.npz", str(store.folder))
    arrays = np.load(folder)
    xs, ys, ws = (arrays[k].astype(np.float64) for k in ("xs", "ys", "ws"))
    pool = open_pool(f"runs:/{summary['generate_pool_run']}/pool/pool.npz")
    s = rows["smoothing"][0]
    preds = smoothed_dmmse_predictions(xs, ys, pool=pool.tasks, noise_scale=0.5, smoothing=s)
    assert rows["smoothed_dmmse"] == [
        pytest.approx(loss_vs_noiseless(preds, xs, ws).mean(), rel=1e-9)
    ]  # tables keep 10 digits
    assert run.data.metrics["smoothing/m4"] == pytest.approx(s)
    assert "smoothed dMMSE" in result.output and "smoothing/smoothing.png" in result.output


def test_smoothing_refuses_a_seed_that_would_reuse_the_eval_set(sweep):
    uri = f"runs:/{sweep.parent.info.run_id}"
    result = invoke(analyze.main, "--kind", "smoothing", "--sweep", uri, "--seed", 104)
    assert result.exit_code == 1
    assert (
        "Error: seed=104 is the sweep's eval_data_seed: the held-out sequences would be its eval set" in result.output
    )


def test_lmc_joins_each_model_to_m_inf_and_measures_the_barrier(store, sweep, grid_sweep):
    """Fig. 11 on the smoke sweep: the loss at t = 0 and 1 is the endpoint model's own training loss on the
    drawn sequences (recomputed here from the registered models), the barrier is the table's largest rise
    over the chord; a sweep with several M = inf models also gets the two-M = inf reference."""
    import torch

    from pipeline.analysis.sweep_runs import registered_model_uri
    from pipeline.registry import load_registered
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


@pytest.fixture(scope="module")
def dims_sweep(store):
    """The smoke preset over D = 2, 4 with K = 2D (linked axes) and M = 4, inf: 4 trainings."""
    args = ("--n_tasks", "4,inf", "--n_dims", "2,4", "--n_points", "4,8", "--link", "n_dims,n_points")
    result = invoke(main.main, "--preset", "smoke", *args, "--model_name", "dims")
    assert result.exit_code == 0, result.output
    assert "4 trainings over n_tasks, n_dims, n_points" in result.output
    return store.client.get_run(re.search(r"sweep run: runs:/(\w+)", result.output).group(1))


def test_linked_axes_vary_together_and_a_dimension_sweep_is_analysed(store, dims_sweep):
    """link=n_dims,n_points: K = 2D at each D (2 points per M, not 4); the dimension analysis reads the
    threshold per D and the Deltas at the largest M from the sweep."""
    from pipeline.presets import resolve
    from pipeline.sweep.grid import grid

    settings = resolve("smoke", {"n_dims": [2, 4], "n_points": [4, 8], "link": ["n_dims", "n_points"]})
    points = grid(settings, 0.5, 1)
    assert [(p.values["n_dims"], p.values["n_points"]) for p in points] == [(2, 4)] * 3 + [(4, 8)] * 3
    assert points[0].label == "m4-n_dims=2-n_points=4"
    message = r"link: linked axes need the same number of values, at least 2 \(n_dims has 2, n_points has 3\)"
    with pytest.raises(InputError, match=message):
        resolve("smoke", {"n_dims": [2, 4], "n_points": [4, 6, 8], "link": "n_dims,n_points"})
    with pytest.raises(InputError, match="link: 'device' is not an option that can be an axis"):
        resolve("smoke", {"link": "device,n_dims"})
    sweep_run = dims_sweep
    assert sweep_run.data.params["link"] == "n_dims,n_points"
    run, output = analysed(store, sweep_run, "dimension")
    rows = table(store, run, "dimension/dimension.json")
    assert rows["n_dims"] == [2, 4] and rows["largest_n_tasks"] == [4, 4]
    tracked = {(r["n_dims"], r["n_tasks"]): r for r in summary_rows(store, sweep_run)}
    for d, delta in zip(rows["n_dims"], rows["true/delta_pt_ridge"], strict=True):
        assert delta == pytest.approx(tracked[d, 4]["true/delta_pt_ridge"])
    assert "n_dims=2, n_points=4:" in output
