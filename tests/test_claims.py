"""Claims as code (pipeline/claims/): each criterion decides holds / does not hold / inconclusive from the
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
                run = f"train-{r}-{m}-{sorted(values.items())}"
                rows.append(summary_row({"n_tasks": m, **values, "replicate": r}, names, {}, metrics, {"train": run}))
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


@pytest.mark.parametrize(
    "figure, axis, values", [("fig7_width", "n_embd", (32, 128)), ("fig7_depth", "n_layer", (1, 3))]
)
def test_fig7_width_and_depth_hold_when_the_threshold_grows_and_fail_when_it_falls(figure, axis, values):
    def growing(m, **point):
        return transition(2.0 + 2 * values.index(point[axis]))(m)  # the larger value: a later transition

    rows, axes = sweep(growing, **{axis: values})
    assert CLAIMS[figure].evaluate(rows, axes)["verdict"] == HOLDS

    def falling(m, **point):
        return transition(4.0 - 2 * values.index(point[axis]))(m)

    rows, axes = sweep(falling, **{axis: values})
    assert CLAIMS[figure].evaluate(rows, axes)["verdict"] == FAILS


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


def test_the_setting_holds_when_m_inf_is_within_2_percent_of_ridge_and_fails_when_it_is_not():
    def gap(relative):
        def delta(m, **_):
            return {"true/pt/loss_noiseless": 0.38 * (1 + relative), "true/ridge/loss_noiseless": 0.38}

        return delta

    rows, axes = sweep(gap(0.01), noise=0.0005)  # 1% above ridge, the noise a 0.13% spread: within 2%
    result = CLAIMS["setting_ridge"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and result["criteria"][0]["value"] == pytest.approx(0.01, abs=0.005)
    rows, axes = sweep(gap(0.05), noise=0.0005)  # 5% above: the claim is false
    assert CLAIMS["setting_ridge"].evaluate(rows, axes)["verdict"] == FAILS
    rows, axes = sweep(gap(0.018), noise=0.004, seed=2)  # near the margin, a 1% spread: undecided
    assert CLAIMS["setting_ridge"].evaluate(rows, axes)["verdict"] == OPEN


def table(rows, columns, seed=0, noise=0.0):
    """An analysis table's rows for summary `rows`: `columns(m, rng)` gives one row's {column: value} list
    (one row per entry) for a training at M = m, each tagged with the training's run, as analyses tag theirs."""
    rng = np.random.default_rng(seed)
    found = []
    for row in rows:
        m = math.inf if row["n_tasks"] == "inf" else row["n_tasks"]
        for entry in columns(m, rng, noise):
            found.append({"n_tasks": m, "curve": "", "train_run": row["train_run"]} | entry)
    return found


def test_fig4_holds_when_t_star_grows_with_m_below_the_threshold_and_fails_when_it_falls():
    """t* ~ M^alpha (times noise) over the U-shaped curves below M*; the fit per replicate, its interval over
    replicates."""

    def t_stars(alpha):
        def columns(m, rng, noise):
            u = math.log2(m) < 3.5
            t = 100 * (m**alpha if u else 50) * math.exp(noise * rng.standard_normal())
            return [{"dist": dist, "t_star": t, "u_shaped": u} for dist in ("pretrain", "true")]

        return columns

    rows, axes = sweep(transition(3.5))
    tables = {"transition_time/t_star.json": table(rows, t_stars(0.5), noise=0.1)}
    result = CLAIMS["fig4_transition_time"].evaluate(rows, axes, tables)
    assert result["verdict"] == HOLDS and -0.7 < result["criteria"][0]["value"] < -0.3
    tables = {"transition_time/t_star.json": table(rows, t_stars(-0.5), noise=0.1)}
    assert CLAIMS["fig4_transition_time"].evaluate(rows, axes, tables)["verdict"] == FAILS
    with pytest.raises(ValueError, match="reads the analysis table transition_time/t_star.json"):
        CLAIMS["fig4_transition_time"].evaluate(rows, axes)


def paths(pt_at):
    """Interpolation rows: dMMSE bumps from 0.1 to 0.7 at alpha = 1/2, ridge flat at 0.4; the transformer's loss/D is
    `pt_at(m, dmmse, ridge)`."""

    def columns(m, rng, noise):
        found = []
        for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
            dmmse = 0.1 + 0.6 * (1 - abs(2 * alpha - 1)) + noise * rng.standard_normal()
            ridge = 0.4 + noise * rng.standard_normal()
            found.append({"alpha": alpha, "dmmse": dmmse, "ridge": ridge, "pt": pt_at(m, dmmse, ridge)})
        return found if math.isfinite(m) else []

    return columns


def test_fig5_holds_when_the_transformer_goes_from_dmmse_to_ridge_and_fails_when_it_stays_on_dmmse():
    def paper(m, dmmse, ridge):
        return dmmse if m <= 4 else (dmmse + ridge) / 2 if m <= 8 else ridge * 1.02  # M* = 2^3.5: 8 nearest

    rows, axes = sweep(transition(3.5))
    tables = {"interpolation/interpolation.json": table(rows, paths(paper), noise=0.005)}
    result = CLAIMS["fig5_interpolation"].evaluate(rows, axes, tables)
    assert [c["verdict"] for c in result["criteria"]] == [HOLDS] * 4 and result["verdict"] == HOLDS
    tables = {"interpolation/interpolation.json": table(rows, paths(lambda m, d, r: d), noise=0.005)}
    result = CLAIMS["fig5_interpolation"].evaluate(rows, axes, tables)
    assert result["verdict"] == FAILS and result["criteria"][3]["low"] > 0.10  # 0.7 against 0.4: 75% above ridge


def test_fig11_holds_when_the_barrier_falls_with_m_and_fails_when_it_grows():
    def lmc(barrier):
        def columns(m, rng, noise):
            if not math.isfinite(m):
                return []
            height = barrier(m) * (1 + noise * rng.standard_normal())
            return [{"pair": f"m{m}", "t": t, "true": 0.5 + height * 4 * t * (1 - t)} for t in (0, 0.25, 0.5, 0.75, 1)]

        return columns

    rows, axes = sweep(transition(3.5))
    tables = {"lmc/lmc.json": table(rows, lmc(lambda m: 1 / m), noise=0.1)}
    result = CLAIMS["fig11_lmc"].evaluate(rows, axes, tables)
    assert result["verdict"] == HOLDS and result["criteria"][0]["value"] == pytest.approx(1 / 64 - 1 / 2, rel=0.2)
    tables = {"lmc/lmc.json": table(rows, lmc(lambda m: m / 64), noise=0.1)}
    assert CLAIMS["fig11_lmc"].evaluate(rows, axes, tables)["verdict"] == FAILS


def test_fig12_holds_when_the_transformer_beats_smoothed_dmmse_near_the_threshold_and_fails_otherwise():
    def smoothing(better):
        def columns(m, rng, noise):
            smoothed = 0.5 + noise * rng.standard_normal()
            return [{"pt": smoothed * (1 - better if m in (8, 16) else 1.2), "smoothed_dmmse": smoothed}]

        return columns

    rows, axes = sweep(transition(3.5))
    tables = {"smoothing/smoothing.json": table(rows, smoothing(0.1), noise=0.01)}
    assert CLAIMS["fig12_smoothing"].evaluate(rows, axes, tables)["verdict"] == HOLDS
    tables = {"smoothing/smoothing.json": table(rows, smoothing(-0.1), noise=0.01)}
    assert CLAIMS["fig12_smoothing"].evaluate(rows, axes, tables)["verdict"] == FAILS


def test_fig13_holds_when_weight_decay_costs_accuracy_and_fails_when_it_helps():
    def by_decay(cost):
        def delta(m, weight_decay):
            return transition(3.5)(m) | {"true/pt/loss_noiseless": 0.4 * (1 + cost * weight_decay)}

        return delta

    rows, axes = sweep(by_decay(0.2), noise=0.005, weight_decay=(0.0, 0.1, 1.0))
    result = CLAIMS["fig13_weight_decay_loss"].evaluate(rows, axes)
    assert result["verdict"] == HOLDS and result["criteria"][0]["value"] == pytest.approx(1 / 1.2 - 1, abs=0.03)
    rows, axes = sweep(by_decay(-0.2), noise=0.005, weight_decay=(0.0, 0.1, 1.0))
    assert CLAIMS["fig13_weight_decay_loss"].evaluate(rows, axes)["verdict"] == FAILS


def test_fig14_holds_when_the_transformer_is_nearer_the_laplace_predictor_and_fails_when_nearer_ridge():
    def deltas(nearer_laplace):
        def columns(m, rng, noise):
            small, large = 0.01 + noise * rng.standard_normal(), 0.03 + noise * rng.standard_normal()
            laplace, ridge = (small, large) if nearer_laplace else (large, small)
            return [{"true/delta_pt_laplace": laplace, "true/delta_pt_ridge": ridge}]

        return columns

    rows, axes = sweep(transition(3.5))
    tables = {"laplace/laplace.json": table(rows, deltas(True), noise=0.002)}
    assert CLAIMS["fig14_laplace"].evaluate(rows, axes, tables)["verdict"] == HOLDS
    tables = {"laplace/laplace.json": table(rows, deltas(False), noise=0.002)}
    assert CLAIMS["fig14_laplace"].evaluate(rows, axes, tables)["verdict"] == FAILS
