"""The sweep: summary structure on the smoke preset, reuse of finished children, any axis (weight decay,
data scales in worker processes), the grid, and the threshold rules on worked examples."""

import csv
import io
import math

import mlflow
import pytest
import torch
from conftest import MODEL_NAME, invoke, stage_name

from pipeline import main
from pipeline.presets import resolve
from pipeline.settings import same_params
from pipeline.sweep import dashboard, executors
from pipeline.sweep.figure import sweep_figure
from pipeline.sweep.grid import grid
from pipeline.sweep.summary import columns, summary_row, thresholds
from pipeline.types import InputError


def runs_of_stage(store, stage, parent=None):
    experiment = store.client.get_experiment_by_name("tests")
    where = f"tags.stage = '{stage}'" + (f" and tags.mlflow.parentRunId = '{parent}'" if parent else "")
    return store.client.search_runs([experiment.experiment_id], where)


def summary_rows(run_id):
    text = open(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/summary/summary.csv")).read()
    return list(csv.DictReader(io.StringIO(text)))


def test_summary_on_the_parent_run(store, sweep):
    run_id = sweep.parent.info.run_id
    paths = {a.path for a in store.client.list_artifacts(run_id, "summary")}
    assert paths == {"summary/summary.csv", "summary/summary.json", "summary/sweep.png"}
    # The figure as an image chart, drawn after each finished point (step k) and as the newest (step 0).
    images = {a.path.split("+timestamp")[0] for a in store.client.list_artifacts(run_id, "images")}
    assert images == {"images/summary+step+0", "images/summary+step+1", "images/summary+step+2"}
    assert "was not drawn" not in sweep.output
    rows = summary_rows(run_id)
    assert list(rows[0]) == columns(("n_tasks",)) and [r["n_tasks"] for r in rows] == ["4", "inf"]
    for row in rows:
        for key in ("pretrain/pt/loss_noiseless", "true/ridge/loss_noiseless", "true/delta_pt_ridge"):
            assert float(row[key]) > 0, key
    assert rows[1]["true/dmmse/loss_noiseless"] == "nan"  # no dMMSE at M = inf
    assert float(rows[0]["pretrain/dmmse/loss_noiseless"]) < float(rows[0]["pretrain/ridge/loss_noiseless"])
    assert sweep.parent.data.tags["threshold_rule"] == "PT closer to ridge than to dMMSE on T_True"


def test_rerunning_a_sweep_reuses_its_finished_children(store, sweep):
    trained = len(runs_of_stage(store, "train"))
    # 0.003 is the smoke preset's 3e-3 written differently: params compare by type, not as text.
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,inf", "--model_name", MODEL_NAME, "--lr", "0.003")
    assert result.exit_code == 0, result.output
    assert result.output.count("reusing") == 6
    assert len(runs_of_stage(store, "train")) == trained
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,16", "--model_name", MODEL_NAME)
    assert result.output.count("reusing") == 3  # M = 4 again; M = 16 is new
    assert len(runs_of_stage(store, "train")) == trained + 1


@pytest.mark.e2e
def test_weight_decay_axis_gives_a_row_per_point_a_curve_and_a_threshold_per_value(store):
    args = ("--preset", "smoke", "--n_tasks", "4,inf", "--weight_decay", "0,1e-3", "--model_name", MODEL_NAME)
    result = invoke(main.main, *args)
    assert result.exit_code == 0, result.output
    assert "4 trainings over n_tasks, weight_decay" in result.output
    experiment = store.client.get_experiment_by_name("tests")
    parent = store.client.search_runs([experiment.experiment_id], "params.weight_decay = '0.0,0.001'")[0]
    rows = summary_rows(parent.info.run_id)
    assert [(r["n_tasks"], r["weight_decay"]) for r in rows] == [
        ("4", "0"),
        ("inf", "0"),
        ("4", "0.001"),
        ("inf", "0.001"),
    ]
    assert list(rows[0])[:3] == ["n_tasks", "log2_n_tasks", "weight_decay"]
    tags = parent.data.tags
    assert tags["threshold_rule/weight_decay_0.0"] == tags["threshold_rule/weight_decay_0.001"]
    assert result.output.count("for weight_decay=") == 2  # one threshold line per weight decay
    trained = [store.client.get_run(r["train_run"]) for r in rows]  # 4 chains (M = 4 and inf may be reused)
    assert [float(r.data.params["weight_decay"]) for r in trained] == [0, 0, 1e-3, 1e-3]
    assert [r.data.params["n_tasks"] for r in trained] == ["4", "inf", "4", "inf"]
    assert all(r.info.status == "FINISHED" for r in trained)
    # The axis as numbers on each train run (the UI's charts need a metric; params are text).
    assert [r.data.metrics["weight_decay"] for r in trained] == [0, 0, 1e-3, 1e-3]
    assert [r.data.metrics.get("log10_weight_decay") for r in trained] == [None, None, -3.0, -3.0]
    # Each point's numbers as scalars named by the point, beside the by_M histories.
    metrics = store.client.get_run(parent.info.run_id).data.metrics
    assert metrics["m4-weight_decay_0.001/true/delta_pt_ridge"] == pytest.approx(
        float(rows[2]["true/delta_pt_ridge"]), rel=1e-4
    )
    # Not a terminal: a few lines per point, not one per evaluation and stage (MLflow's chatter left out).
    assert len(result.stdout.splitlines()) < 40, result.stdout
    assert "Add type hints" not in result.output and "Created version" not in result.output


@pytest.mark.e2e
def test_two_data_scales_in_two_worker_processes(store):
    result = invoke(
        main.main,
        *("--preset", "smoke", "--n_tasks", "8,32", "--batch_size", "16,32", "--executor", "process"),
        *("--workers", 2, "--total_steps", 40, "--warmup_steps", 10, "--eval_every", 20, "--model_name", MODEL_NAME),
    )
    assert result.exit_code == 0, result.output
    experiment = store.client.get_experiment_by_name("tests")
    parent = store.client.search_runs([experiment.experiment_id], "params.batch_size = '16,32'")[0]
    children = runs_of_stage(store, "train", parent.info.run_id)
    assert sorted(r.data.params["batch_size"] for r in children) == ["16", "16", "32", "32"]
    assert sorted(stage_name(r) for r in children) == [
        "train-m32-B16",
        "train-m32-B32",
        "train-m8-B16",
        "train-m8-B32",
    ]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.params["threads"] for r in children} == {"1"}  # 2 cores / 2 workers, fixed per training
    assert parent.data.tags["threshold_rule"] == "crossing of Delta^True_PT,Ridge for B16 and B32"


def test_auto_executor_trains_one_model_per_core_on_a_cpu_and_inline_on_cuda(monkeypatch):
    monkeypatch.setattr(executors, "machine_cores", lambda: 8)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def chosen(*args):
        executor = executors.make_executor(*args)
        return executor.name, executor.workers, executor.threads()

    assert chosen("auto", None, cpu, 42) == ("process", 8, 1)  # the paper's grid on 8 cores: 1 thread each
    assert chosen("auto", None, cpu, 3) == ("process", 3, 2)  # no idle worker: the cores are shared out
    assert chosen("auto", None, cpu, 1) == ("inline", 1, 8)  # one training gets every core
    assert chosen("auto", None, cuda, 42) == ("inline", 1, 8)  # one process packs the device
    assert chosen("auto", 4, cuda, 42) == ("process", 4, 2)  # workers given: as many processes
    assert chosen("process", None, cpu, 2) == ("process", 2, 4)
    assert chosen("inline", None, cpu, 42) == ("inline", 1, 8)
    with pytest.raises(InputError, match=r"workers=2 needs executor=process"):
        executors.make_executor("inline", 2, cpu, 42)


def test_bad_sweeps_are_refused_before_any_run(store):
    result = invoke(main.main, "--preset", "smoke", "--workers", "2")
    assert result.exit_code != 0 and "workers=2 needs executor=process" in result.output
    result = invoke(main.main, "--preset", "smoke", "--total_steps", "20,40", "--warmup_steps", "30")
    assert result.exit_code != 0 and "warmup_steps=30 must be below total_steps=20" in result.output
    result = invoke(main.main, "--preset", "smoke", "--device", "cpu,cuda")
    assert result.exit_code != 0 and "device takes one value, got cpu,cuda" in result.output


def test_grid_varies_n_tasks_fastest_and_scales_warmup():
    settings = resolve("smoke", {"n_tasks": [4, math.inf], "total_steps": [20, 40], "lr": [1e-3, 2e-3]})
    points = grid(settings, 3)  # warm-up: the preset's share, 30 of 60 steps
    assert points[0].axes == ("n_tasks", "lr", "total_steps")
    assert [p.label for p in points[:4]] == [
        "m4-lr=0.001-T20",
        "minf-lr=0.001-T20",
        "m4-lr=0.001-T40",
        "minf-lr=0.001-T40",
    ]
    assert [(p.values["total_steps"], p.values["warmup_steps"]) for p in points[:4]] == [
        (20, 10),
        (20, 10),
        (40, 20),
        (40, 20),
    ]
    assert len(points) == 8 and points[-1].values["lr"] == 2e-3
    assert {p.values["threads"] for p in points} == {3}  # threads 0: the executor's count
    with pytest.raises(InputError, match="warmup_steps=30 must be below total_steps=20"):
        grid(resolve("smoke", {"total_steps": [20], "warmup_steps": [30]}), 1)


def row(m, pt_ridge, pt_dmmse, **axes):
    values = {"n_tasks": m} | axes
    return summary_row(
        values, ("n_tasks", *axes), {}, {"true/delta_pt_ridge": pt_ridge, "true/delta_pt_dmmse": pt_dmmse}
    )


def test_threshold_with_one_scale_is_where_pt_turns_ridge_like():
    rows = [row(4, 0.5, 0.1), row(16, 0.3, 0.2), row(64, 0.1, 0.4), row(math.inf, 0.01, math.nan)]
    [(group, log2_m, rule, finding, low, high, _)] = thresholds(rows, ("n_tasks",))
    assert group == () and rule == "PT closer to ridge than to dMMSE on T_True"
    assert math.isnan(low) and math.isnan(high)  # one replicate: no interval
    assert log2_m == pytest.approx(4 + 2 * 0.1 / 0.4)  # gap +0.1 at 2^4, -0.3 at 2^6: zero at 2^4.5
    assert finding == "M* ~ 2^4.50"
    # No crossing: the finding says which side of the threshold the whole grid is on (not the rule's name).
    [(_, log2_m, _, finding, *_)] = thresholds(rows[:2], ("n_tasks",))
    assert math.isnan(log2_m) and finding == (
        "no threshold inside the grid: the transformer is closer to dMMSE than to ridge on T_True at every "
        "finite M (2^2 ... 2^4)"
    )
    [(_, _, _, finding, *_)] = thresholds(rows[2:], ("n_tasks",))
    assert "the transformer is closer to ridge than to dMMSE on T_True at every finite M (2^6 ... 2^6)" in finding


def test_threshold_with_two_scales_is_where_their_curves_cross():
    rows = [
        row(4, 0.5, 0, batch_size=1),
        row(16, 0.2, 0, batch_size=1),
        row(4, 0.4, 0, batch_size=2),
        row(16, 0.3, 0, batch_size=2),
    ]
    [(_, log2_m, rule, *_)] = thresholds(rows, ("n_tasks", "batch_size"))
    assert rule == "crossing of Delta^True_PT,Ridge for B1 and B2"
    assert log2_m == pytest.approx(2 + 2 * 0.1 / 0.2)
    assert math.isnan(thresholds(rows[:1] + rows[2:3], ("n_tasks", "batch_size"))[0][1])  # one point each


def test_threshold_per_group_of_the_other_axes():
    rows = [row(4, 0.5, 0.1, weight_decay=0.0), row(16, 0.1, 0.4, weight_decay=0.0)]
    rows += [row(4, 0.5, 0.1, weight_decay=0.1), row(16, 0.4, 0.3, weight_decay=0.1)]
    found = thresholds(rows, ("n_tasks", "weight_decay"))
    assert [group for group, *_ in found] == [(("weight_decay", 0.0),), (("weight_decay", 0.1),)]
    assert found[0][1] == pytest.approx(2 + 2 * 0.4 / 0.7) and math.isnan(found[1][1])


def test_params_compare_by_type_not_text():
    logged = {"lr": "1e-3", "n_tasks": "1e3", "n_layer": "4", "schedule": "triangle", "pool": "runs:/a/pool/pool.npz"}
    assert same_params(logged, {"n_tasks": 1000})
    assert same_params(logged, {"lr": 0.001, "n_layer": 4, "schedule": "triangle", "pool": "runs:/a/pool/pool.npz"})
    assert not same_params(logged, {"lr": 0.002})
    assert not same_params(logged, {"batch_size": 64})  # not logged: not the same run
    assert same_params({"n_tasks": "inf"}, {"n_tasks": math.inf})


def test_sweep_figure_draws_a_curve_per_value_of_the_other_axes():
    rows = [row(m, 0.3, 0.2, weight_decay=wd) for wd in (0.0, 0.001) for m in (4, 64, math.inf)]
    axes = ("n_tasks", "weight_decay")
    figure = sweep_figure(rows, axes, thresholds(rows, axes))
    delta_panel = figure.axes[5]  # T_True, Delta_PT,Ridge
    labels = [line.get_label() for line in delta_panel.get_lines() if not line.get_label().startswith("M*")]
    assert labels == [r"$\Delta_{PT,Ridge}$ weight_decay=0.0", r"$\Delta_{PT,Ridge}$ weight_decay=0.001"]
    assert [len(line.get_xdata()) for line in delta_panel.get_lines()] == [3, 3]


class FakeRun:
    """Collects what a Run would log: {key: [(step, value)]}."""

    def __init__(self):
        self.metrics = {}

    def log_metrics(self, metrics, step=None):
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, value))


def test_dashboard_draws_one_point_per_pool_size_and_curve():
    axes = ("n_tasks", "batch_size")
    rows = [row(m, 0.5, 0.1 if m < math.inf else math.nan, batch_size=b) for b in (32, 64) for m in (4, 16, math.inf)]
    run = FakeRun()
    assert dashboard.log_curves_by_pool_size(run, rows, axes) == 1  # powers of two: step = log2 M
    assert run.metrics["by_M/true/delta_pt_ridge/B32"] == [(2, 0.5), (4, 0.5), (22, 0.5)]
    assert [step for step, _ in run.metrics["by_M/true/delta_pt_dmmse/B64"]] == [2, 4]  # no dMMSE at inf
    assert run.metrics["log2_n_tasks"] == [(2, 2.0), (4, 4.0), (22, 22.0)]  # once per pool size
    # M = 99 and 100 are 0.015 apart in log2: steps 10 log2 M would collide, 100 log2 M do not.
    rows = [row(m, 0.5, 0.1) for m in (99, 100, math.inf)]
    run = FakeRun()
    assert dashboard.log_curves_by_pool_size(run, rows, ("n_tasks",)) == 100
    assert [step for step, _ in run.metrics["by_M/true/delta_pt_ridge"]] == [663, 664, 2200]
    assert run.metrics["log2_n_tasks"][0] == (663, math.log2(99))  # the exact value, at its step


def test_dashboard_description_fits_in_a_tag():
    """MLflow cuts a tag past 8000 characters silently: the paper's grid drops the links, not rows."""
    axes = ("n_tasks", "batch_size")
    rows = [row(2**i, 0.5, 0.1, batch_size=b) for b in (256, 512) for i in range(1, 21)]
    chains = [{"generate_pool": "a" * 32, "evaluate_baselines": "b" * 32, "train": "c" * 32}] * len(rows)
    found = thresholds(rows, axes)
    text = dashboard.description("paper", rows, axes, found, 1, chains, "1")
    assert len(text) <= dashboard.TAG_LIMIT and text.count("\n| ") == len(rows) + 1 and "| runs |" not in text
    small = dashboard.description("paper", rows[:3], axes, found, 1, chains[:3], "1")
    assert "[train](#/experiments/1/runs/" + "c" * 32 + ")" in small


def test_threshold_at_an_exact_zero_even_at_the_last_point():
    rows = [row(4, 0.3, 0.1), row(16, 0.2, 0.2)]  # gap +0.2, then exactly 0 at the last point
    [(_, log2_m, _, finding, *_)] = thresholds(rows, ("n_tasks",))
    assert log2_m == 4 and finding == "M* ~ 2^4.00"
    [(_, log2_m, _, finding, *_)] = thresholds([row(4, math.nan, 0.2)], ("n_tasks",))
    assert math.isnan(log2_m) and finding == "no threshold inside the grid (no finite point to compare)"
