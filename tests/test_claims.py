"""Claims as code (pipeline/claims.py): each criterion decides holds / does not hold / inconclusive from the
intervals over replicates, on synthetic sweeps where the answer is known, a false claim included."""

import math

import numpy as np
import pytest

from pipeline.claims import CLAIMS, FAILS, HOLDS, OPEN
from pipeline.sweep.summary import summary_row

MS = (2, 4, 8, 16, math.inf)


def sweep(delta, replicates=3, noise=0.01, seed=0, **axes):
    """Summary rows of a synthetic sweep: `delta(m, **axis values)` gives a point's Deltas {key: value},
    each replicate's with N(0, noise^2) added."""
    rng = np.random.default_rng(seed)
    names = ("n_tasks", *axes, "replicate")
    rows = []
    for r in range(replicates):
        for values in _combinations(axes):
            for m in MS:
                metrics = {k: v + noise * rng.standard_normal() for k, v in delta(m, **values).items()}
                rows.append(summary_row({"n_tasks": m, **values, "replicate": r}, names, {}, metrics))
    return rows, names if replicates > 1 else names[:-1]


def _combinations(axes):
    if not axes:
        return [{}]
    (name, values), *rest = axes.items()
    return [{name: v, **other} for v in values for other in _combinations(dict(rest))]


def transition(at):
    """Deltas of a transformer on dMMSE below 2^at and on ridge above it."""

    def delta(m, **_):
        below = math.log2(m) < at
        return {
            "pretrain/delta_pt_dmmse": 0.01 if below else 0.3,
            "pretrain/delta_pt_ridge": 0.5 if below else 0.02,
            "true/delta_pt_dmmse": 0.02 if below else 0.4,
            "true/delta_pt_ridge": 0.6 if below else 0.03,
        }

    return delta


def test_fig2_holds_on_a_transition_and_fails_without_one():
    rows, axes = sweep(transition(3.5))
    result = CLAIMS["fig2_sweep"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and [c["verdict"] for c in result["criteria"]] == [HOLDS, HOLDS]
    assert result["criteria"][1]["high"] < 0 and result["criteria"][1]["replicates"] == 3
    never, _ = sweep(transition(10))  # a transformer that stays on dMMSE at every finite M: the claim is false
    assert CLAIMS["fig2_sweep"].evaluate(never, axes)["verdict"] == FAILS


def test_noise_as_large_as_the_effect_or_one_replicate_is_inconclusive():
    rows, axes = sweep(transition(3.5), noise=1.0, seed=3)
    assert CLAIMS["fig2_sweep"].evaluate(rows, axes)["verdict"] == OPEN
    rows, axes = sweep(transition(3.5), replicates=1)
    result = CLAIMS["fig2_sweep"].evaluate(rows, axes)
    assert result["verdict"] == OPEN and math.isnan(result["criteria"][0]["low"])


def test_fig7_decides_on_the_order_of_two_thresholds_and_their_intervals():
    def by_decay(m, weight_decay):
        return transition(3.5 - 2 * weight_decay)(m)  # more decay: an earlier transition

    rows, axes = sweep(by_decay, weight_decay=(0.0, 1.0))
    result = CLAIMS["fig7_weight_decay"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and result["criteria"][0]["value"] < 0

    def reversed_decay(m, weight_decay):
        return transition(1.5 + 2 * weight_decay)(m)

    rows, axes = sweep(reversed_decay, weight_decay=(0.0, 1.0))
    assert CLAIMS["fig7_weight_decay"].evaluate(rows, axes)["verdict"] == FAILS


def test_fig3_holds_when_more_data_pulls_towards_dmmse_below_and_ridge_above_and_fails_reversed():
    """The paper's direction: the longer training's Delta^True_PT,Ridge is higher at small M (nearer dMMSE,
    memorising) and lower at large M; the same curves with the scales swapped must not hold."""

    def paper(m, total_steps):
        x = math.log2(m)
        return {"true/delta_pt_ridge": 0.5 - 0.1 * x if total_steps == 10 else 0.7 - 0.2 * x}  # cross at 2^2

    rows, axes = sweep(paper, total_steps=(10, 20))
    result = CLAIMS["fig3_data_scale"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and [c["verdict"] for c in result["criteria"]] == [HOLDS, HOLDS]

    def swapped(m, total_steps):
        return paper(m, 30 - total_steps)

    rows, axes = sweep(swapped, total_steps=(10, 20))
    assert CLAIMS["fig3_data_scale"].evaluate(rows, axes)["verdict"] == FAILS


def test_an_ordered_claim_reads_a_threshold_beyond_the_grid_as_one_sided():
    """With no decay the transformer stays on dMMSE's side at every finite M (its M* above the grid, in
    every redraw); with decay it crosses inside: the order is decided all the same."""

    def by_decay(m, weight_decay):
        return transition(10 if weight_decay == 0 else 2.5)(m)

    rows, axes = sweep(by_decay, weight_decay=(0.0, 1.0))
    [criterion] = CLAIMS["fig7_weight_decay"].evaluate(rows, axes)["criteria"]
    assert criterion["second"]["low"] == 4 and criterion["second"]["high"] == math.inf
    assert criterion["verdict"] == HOLDS


def test_a_claim_refuses_a_sweep_with_axes_it_does_not_read():
    rows, axes = sweep(transition(3.5), lr=(1e-3, 3e-3))
    with pytest.raises(ValueError, match="one curve per data scale"):
        CLAIMS["fig2_sweep"].evaluate(rows, axes)
    rows, axes = sweep(lambda m, **_: transition(2.5)(m), weight_decay=(0.0, 1.0), lr=(1e-3, 3e-3))
    with pytest.raises(ValueError, match="one threshold per weight_decay"):
        CLAIMS["fig7_weight_decay"].evaluate(rows, axes)


def test_fig10_holds_when_the_largest_m_matches_m_inf_and_fails_when_it_is_worse():
    def ending(worse):
        def delta(m, **_):
            return {"true/pt/loss_noiseless": 0.4 * (1 + (worse if math.log2(m) < 10 else 0))}

        return delta

    rows, axes = sweep(ending(0.0), noise=0.002)
    result = CLAIMS["fig10_final_accuracy"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and abs(result["criteria"][0]["value"]) < 0.05
    rows, axes = sweep(ending(0.2), noise=0.002)  # 20% worse at every finite M: the claim is false
    assert CLAIMS["fig10_final_accuracy"].evaluate(rows, axes)["verdict"] == FAILS
    rows, axes = sweep(ending(0.05), noise=0.04, seed=1)  # at the margin, with noise of 10%: undecided
    assert CLAIMS["fig10_final_accuracy"].evaluate(rows, axes)["verdict"] == OPEN
