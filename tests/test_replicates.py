"""Replicates (pipeline/sweep/grid.py, summary.py): every grid point trained N times with seeds of its own on
shared eval sets, summarised as means with 95% intervals, the threshold with its interval; seed_offset."""

import json
import math
import re
from pathlib import Path

import pytest
from conftest import invoke
from matplotlib.collections import PolyCollection

from pipeline import main
from pipeline.presets import SEEDS, resolve
from pipeline.sweep.figure import sweep_figure
from pipeline.sweep.grid import REPLICATED, grid, replicate_seed
from pipeline.sweep.summary import aggregate, point_axes, setting_text, summary_row, thresholds

EVAL_SEEDS = [name for name in SEEDS if name not in REPLICATED]


def test_each_replicate_draws_its_pool_and_training_anew_on_the_same_eval_sets():
    points = grid(resolve("smoke", {"n_tasks": [4, 16], "replicates": 3}), 1)
    assert [p.label for p in points] == ["m4-r0", "m16-r0", "m4-r1", "m16-r1", "m4-r2", "m16-r2"]
    base = resolve("smoke", {})
    for point in points:
        r = point.values["replicate"]
        for name in REPLICATED:
            assert point.values[name] == (base.value(name) if r == 0 else replicate_seed(base.value(name), r))
        assert all(point.values[name] == base.value(name) for name in EVAL_SEEDS)
    seeds = [tuple(p.values[name] for name in REPLICATED) for p in points if p.values["n_tasks"] == 4]
    assert all(len({seed[i] for seed in seeds}) == 3 for i in range(len(REPLICATED)))  # each stream anew


def test_seed_offset_shifts_every_seed_and_is_no_replicate():
    [shifted] = grid(resolve("smoke", {"n_tasks": [4], "seed_offset": 1000}), 1)
    base = resolve("smoke", {})
    assert all(shifted.values[name] == base.value(name) + 1000 for name in SEEDS)
    assert all(replicate_seed(base.value(name), 1) != base.value(name) + 1000 for name in REPLICATED)


def row(m, pt_ridge, pt_dmmse, **axes):
    return summary_row(
        {"n_tasks": m} | axes,
        ("n_tasks", *axes),
        {},
        {"true/delta_pt_ridge": pt_ridge, "true/delta_pt_dmmse": pt_dmmse},
    )


def test_means_over_replicates_carry_students_interval():
    axes = ("n_tasks", "replicate")
    rows = [row(4, value, 0.1, replicate=r) for r, value in enumerate((0.2, 0.3, 0.4))] + [
        row(16, 0.1, 0.3, replicate=0)
    ]
    [four, sixteen] = aggregate(rows, axes)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert four["replicates"] == 3 and four["true/delta_pt_ridge"] == pytest.approx(0.3)
    assert (four["true/delta_pt_ridge:low"], four["true/delta_pt_ridge:high"]) == pytest.approx(
        (0.3 - half, 0.3 + half)
    )
    assert sixteen["replicates"] == 1 and math.isnan(sixteen["true/delta_pt_ridge:low"])
    assert point_axes(axes) == ["n_tasks"] and "replicate" not in four


def test_the_threshold_over_replicates_has_an_interval_around_the_crossing_of_the_means():
    axes = ("n_tasks", "replicate")
    gaps = {4: (0.12, 0.1, 0.08), 16: (-0.28, -0.3, -0.32)}  # closer to dMMSE at 2^2, to ridge at 2^4
    rows = [row(m, 0.5 + gap, 0.5, replicate=r) for m, values in gaps.items() for r, gap in enumerate(values)]
    [threshold] = thresholds(rows, axes)
    assert threshold.log2_m == pytest.approx(2 + 2 * 0.1 / 0.4)
    assert threshold.low < threshold.log2_m < threshold.high < 4
    assert re.fullmatch(
        r"M\* ~ 2\^2\.50 \(95% interval 2\^2\.\d\d to 2\^\d\.\d\d over 3 replicates\)", threshold.finding
    )
    setting = setting_text(resolve("smoke", {"replicates": 3}).described())
    figure = sweep_figure(aggregate(rows, axes), point_axes(axes), [threshold], setting)
    delta_panel = figure.axes[5]
    assert any(isinstance(c, PolyCollection) for c in delta_panel.collections)  # bands and the interval of M*
    assert figure.get_suptitle().endswith(
        "means of 3 replicates, 95% intervals shaded\nD = 4, K = 8, sigma^2 = 0.25; 1 layers, width 32, 2 heads; "
        "60 steps of batch 32, lr 0.003, weight decay 0.0; 3 replicate(s)"
    )


@pytest.mark.e2e
def test_a_sweep_with_replicates_trains_each_and_reports_their_means(store):
    args = ("--preset", "smoke", "--n_tasks", "4,inf", "--replicates", 2, "--model_name", "replicated")
    result = invoke(main.main, *args)
    assert result.exit_code == 0, result.output
    run = store.client.get_run(re.search(r"sweep run: runs:/(\w+)", result.output).group(1))
    assert run.data.params["replicates"] == "2" and "replicate" not in run.data.params
    assert "4 trainings over n_tasks, replicate (m4-r0, minf-r0, m4-r1, minf-r1)" in result.output
    folder = Path(store.client.download_artifacts(run.info.run_id, "summary"))
    table = json.loads((folder / "summary.json").read_text())
    means = json.loads((folder / "means.json").read_text())
    assert len(table["data"]) == 4 and table["columns"].index("replicate") == 2
    columns = means["columns"]
    [four] = [dict(zip(columns, values, strict=True)) for values in means["data"] if values[0] == 4]
    pair = [r[table["columns"].index("true/delta_pt_ridge")] for r in table["data"] if r[0] == 4]
    assert four["replicates"] == 2 and four["true/delta_pt_ridge"] == pytest.approx(sum(pair) / 2)
    assert pair[0] != pair[1]  # two trainings, not one twice
    assert four["true/delta_pt_ridge:low"] < four["true/delta_pt_ridge"] < four["true/delta_pt_ridge:high"]
    assert "over 2 replicates" in run.data.tags["threshold"] or "no threshold" in run.data.tags["threshold"]


def test_analysis_metrics_named_by_replicated_curves_are_names_mlflow_takes():
    """An analysis of a sweep with replicates names its metrics by curve (alpha/pretrain/replicate=0): logged
    through metric_key, each is a name MLflow's own check accepts (the gallery's Fig. 4 once died on "=")."""
    from mlflow.utils.validation import _validate_metric_name

    from pipeline.sweep.dashboard import metric_key

    for name in ("alpha/pretrain/replicate=0", "alpha/true/B512, weight_decay=0.001", "fit_points/true/D=4 K=8"):
        _validate_metric_name(metric_key(name))
        assert metric_key(name).split("/")[0] == name.split("/")[0]
    assert metric_key("alpha/pretrain/replicate=0") == "alpha/pretrain/replicate_0"
