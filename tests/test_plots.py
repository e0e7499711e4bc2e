"""What the analyses' figures pool and pair (pipeline/analysis/plots.py, lmc.py): replicates and seed axes,
whose values differ per replicate, are pooled into one curve with its interval; other axes keep their own
curves; the LMC reference joins two M = inf models of one replicate (the same initial weights)."""

import math

import numpy as np
from matplotlib.figure import Figure

from pipeline.analysis.lmc import _reference
from pipeline.analysis.plots import pooled, pooled_curves, with_intervals
from pipeline.stats import t_interval


def test_replicates_and_seed_axes_pool_and_other_axes_stay_apart():
    assert pooled("weight_decay=0.1, data_seed=2262291482, replicate=2") == "weight_decay=0.1"
    assert pooled("replicate=0") == "" and pooled("") == ""
    table = {"curve": [], "n_tasks": [], "loss": []}
    for wd, shift in (("0.0", 0.0), ("0.1", 10.0)):
        for r, seed in enumerate((101, 4017, 99)):
            for m in (2, 16, math.inf):
                table["curve"].append(f"weight_decay={wd}, data_seed={seed}, replicate={r}")
                table["n_tasks"].append(m)
                table["loss"].append(shift + r + math.log2(m if m < math.inf else 64))
    curves = list(pooled_curves(table, lambda x: x if x < math.inf else 99))
    assert [(style, suffix) for style, suffix, _, _ in curves] == [
        ("-", " (weight_decay=0.0)"),
        ("--", " (weight_decay=0.1)"),
    ]
    _, _, xs, values = curves[1]
    means, lows, highs = values("loss")
    assert xs == [1.0, 4.0, 99]
    expected = [t_interval([10.0 + r + x for r in range(3)]) for x in (1.0, 4.0, 6.0)]
    np.testing.assert_allclose(np.array([means, lows, highs]).T, expected)


def test_one_replicate_draws_its_points_without_intervals():
    table = {"curve": ["", ""], "n_tasks": [4, 16], "loss": [0.5, 0.4]}
    [(_, _, xs, values)] = pooled_curves(table, float)
    means, lows, highs = values("loss")
    assert means == (0.5, 0.4) and all(math.isnan(v) for v in lows + highs)
    ax = Figure().subplots()
    with_intervals(ax, xs, means, lows, highs)
    [drawn] = ax.containers  # one errorbar container: its data line holds both points, at log2 M
    np.testing.assert_array_equal(drawn.lines[0].get_xydata(), [[2, 0.5], [4, 0.4]])


def test_the_lmc_reference_joins_two_m_inf_models_of_one_replicate():
    infs = [{"replicate": r, "data_seed": seed, "train_run": f"{seed}-{r}"} for seed in (101, 201) for r in range(3)]
    second, first = _reference(infs)
    assert (first["train_run"], second["train_run"]) == ("101-0", "201-0")
    assert _reference(infs[:3]) is None  # three replicates of one data seed: no two share their initial weights
    assert _reference([{"train_run": "a"}, {"train_run": "b"}]) is not None  # no replicate axis: one model seed
