"""make figures (pipeline/gallery.py) on smoke-sized stand-ins of the CPU presets, the smoothing analysis
(Fig. 12) and linked axes with the dimension analysis (Fig. 6)."""

import json
import math
import re

import numpy as np
import pytest
from conftest import invoke
from test_analysis import analysed, summary_rows, table

from pipeline import analyze
from pipeline.types import InputError


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
    stand_ins["fig7_width_cpu"] |= {"n_embd": [16, 32]}
    stand_ins["fig7_depth_cpu"] |= {"n_layer": [1, 2]}
    stand_ins["fig6_cpu"] |= {"n_dims": [2, 4], "n_points": [4, 8], "noise_scale": [0.25, 0.5]}
    monkeypatch.setitem(analyze.PATHS, "pairs", (1, 4, "pairs"))
    for name, preset in stand_ins.items():
        monkeypatch.setitem(presets.PRESETS, name, preset)
    return gallery


@pytest.mark.e2e
def test_make_figures_shares_a_sweep_between_equal_presets_and_keeps_earlier_findings(store, tmp_path, monkeypatch):
    """In CI: three figures of the base grid (one sweep run), then one more with --only; findings.md keeps
    the first three's findings."""
    gallery = stand_in_gallery(monkeypatch)
    result = invoke(gallery.main, "--out", tmp_path, "--only", "fig2_sweep,fig4_transition_time,fig10_final_accuracy")
    assert result.exit_code == 0, result.output
    assert result.output.count("sweep fig") == 1  # fig2_cpu's sweep serves fig4_cpu and fig10_cpu
    assert "=== figures: 2 training(s) to run" in result.output  # M = 4 and inf, once for the three figures
    wrote = [line for line in result.output.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 3 and "0 training(s) left" in wrote[-1] and "min to go" in wrote[0]
    result = invoke(gallery.main, "--out", tmp_path, "--only", "fig12_smoothing")
    assert result.exit_code == 0, result.output
    assert "=== figures: 0 training(s) to run" in result.output  # the base grid's, finished
    assert result.output.count("reusing train-") == 2  # the base grid's two trainings, not retrained
    names = ("fig2_sweep", "fig4_transition_time", "fig10_final_accuracy", "fig12_smoothing")
    for name in names:
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    findings = (tmp_path / "findings.md").read_text()
    assert findings.count("## ") == 5 and "rule:" in findings and "smoothed dMMSE" in findings
    # The claim of Fig. 2, decided by code and kept when a later run makes another figure; with one replicate
    # (the stand-ins have one) nothing has an interval, so nothing can be decided.
    claims = {c["figure"]: c for c in json.loads((tmp_path / "claims.json").read_text())["claims"]}
    # The first run's claims (Figs. 2, 4 and 10), kept by the second (Fig. 12).
    assert set(claims) == {"fig2_sweep", "fig4_transition_time", "fig10_final_accuracy", "fig12_smoothing"}
    assert {c["verdict"] for c in claims.values()} == {"inconclusive"}
    assert [c["replicates"] for c in claims["fig2_sweep"]["criteria"]] == [1, 1]
    assert claims["fig2_sweep"]["criteria"][0]["low"] is None
    assert "## Claims and verdicts" in findings and "| fig2_sweep | Below the threshold" in findings
    # A run stopped by a failure (or Ctrl-C) at Fig. 4 keeps what it found before: written after each figure.
    (tmp_path / "claims.json").unlink()

    def fails(*_):
        raise RuntimeError("stopped at Fig. 4's analysis")

    monkeypatch.setattr(gallery, "analyze", fails)
    with pytest.raises(RuntimeError, match="stopped at Fig. 4"):
        invoke(gallery.main, "--out", tmp_path, "--only", "fig2_sweep,fig4_transition_time")
    claims = json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert [c["figure"] for c in claims] == ["fig2_sweep"]


@pytest.mark.slow
def test_make_figures_runs_each_sweep_once_and_writes_every_figure(store, tmp_path, monkeypatch):
    """Every figure on the stand-ins: presets with equal settings share one sweep, the larger grids reuse
    the base grid's chains, and every figure lands with its findings."""
    gallery = stand_in_gallery(monkeypatch)
    result = invoke(gallery.main, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    # fig2_cpu (also 4, 5, 10, 12, and ridge_cpu as a stand-in), fig3, fig6, fig7_wd, fig7 width, depth, fig11, 14
    assert result.output.count("sweep fig") == 8
    assert "reusing train-m4 " in result.output  # the larger grids reuse the base grid's trainings
    for entry in gallery.GALLERY:
        assert (tmp_path / f"{entry.name}.png").read_bytes()[:4] == b"\x89PNG"
    findings = (tmp_path / "findings.md").read_text()
    assert findings.count("## ") == len(gallery.GALLERY) + 1 and "bump over its endpoints" in findings
    claims = json.loads((tmp_path / "claims.json").read_text())["claims"]
    expected = ["fig2_sweep", "fig3_data_scale", "fig4_transition_time", "fig5_interpolation", "fig6_dimension"]
    expected += [
        "fig7_weight_decay",
        "fig7_width",
        "fig7_depth",
        "fig10_final_accuracy",
        "fig11_lmc",
        "fig12_smoothing",
    ]
    expected += ["fig13_weight_decay_loss", "fig14_laplace", "setting_ridge"]  # Fig. 13's claim: Fig. 7's sweep
    assert [c["figure"] for c in claims] == expected
    assert all(c["analysis"] for c in claims if c["figure"] in ("fig4_transition_time", "fig11_lmc", "fig14_laplace"))


def test_smoothing_scores_smoothed_dmmse_on_the_tracked_eval_set(store, sweep):
    """Fig. 12 on the smoke sweep (M = 4): the transformer's, dMMSE's and ridge's losses are the summary's;
    smoothed dMMSE's is recomputed here from the eval set the baselines run tracked, at the chosen s."""

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


def test_linked_axes_vary_together_and_a_dimension_sweep_is_analysed(store, dims_sweep):
    """link=n_dims,n_points: K = 2D at each D (2 points per M, not 4); the dimension analysis reads the
    threshold per D and the Deltas at the largest M from the sweep."""
    from pipeline.presets import resolve
    from pipeline.sweep.grid import grid

    settings = resolve("smoke", {"n_dims": [2, 4], "n_points": [4, 8], "link": ["n_dims", "n_points"]})
    points = grid(settings, 1)
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


@pytest.mark.e2e
def test_smoothed_dmmse_is_scored_by_evaluate_baselines_and_read_back_by_train_and_the_analysis(store):
    """smoothed_held_out > 0: evaluate_baselines chooses s on held-out fresh-task sequences (smoothed_seed)
    and logs smoothed dMMSE beside dMMSE; the train run reusing it scores the transformer against it, and
    the smoothing analysis reads it instead of computing it."""
    from baselines import best_smoothing, smoothed_dmmse_predictions
    from pipeline import main
    from pipeline.cli import open_pool
    from tasks import EvalSettings, make_eval_set

    args = ("--preset", "smoke", "--n_tasks", "4", "--total_steps", 40, "--warmup_steps", 10, "--eval_every", 20)
    result = invoke(main.main, *args, "--smoothed_held_out", 32, "--model_name", "smoothed")
    assert result.exit_code == 0, result.output
    sweep_id = re.search(r"sweep run: runs:/(\w+)", result.output).group(1)
    (row,) = summary_rows(store, store.client.get_run(sweep_id))
    baselines = store.client.get_run(row["evaluate_baselines_run"])
    assert baselines.data.params["smoothed_held_out"] == "32" and baselines.data.params["smoothed_seed"] == "108"
    pool = open_pool(f"runs:/{row['generate_pool_run']}/pool/pool.npz")
    tuning = make_eval_set("true", pool, EvalSettings(32, 8, 0.5, 1.0, 108, 108, 108))
    s, held_out_loss = best_smoothing(tuning.xs, tuning.ys, tuning.ws, pool=pool.tasks, noise_scale=0.5)
    metrics = baselines.data.metrics
    assert metrics["smoothed_dmmse/smoothing"] == pytest.approx(s, rel=1e-12)
    assert metrics["smoothed_dmmse/held_out_loss"] == pytest.approx(held_out_loss, rel=1e-12)
    arrays = np.load(store.client.download_artifacts(baselines.info.run_id, "eval/true.npz", str(store.folder)))
    xs, ys = arrays["xs"].astype(np.float64), arrays["ys"].astype(np.float64)
    expected = smoothed_dmmse_predictions(xs, ys, pool=pool.tasks, noise_scale=0.5, smoothing=s)
    np.testing.assert_allclose(arrays["smoothed_dmmse"], expected, rtol=1e-12)
    assert {"pretrain/delta_smoothed_dmmse_ridge", "true/smoothed_dmmse/loss_noiseless"} <= set(metrics)
    train_metrics = store.client.get_run(row["train_run"]).data.metrics
    assert {"true/delta_pt_smoothed_dmmse", "pretrain/delta_pt_smoothed_dmmse"} <= set(train_metrics)
    run, _ = analysed(store, store.client.get_run(sweep_id), "smoothing")
    rows = table(store, run, "smoothing/smoothing.json")
    assert rows["source"] == [f"runs:/{baselines.info.run_id}"]
    assert rows["smoothing"] == [pytest.approx(s)]
    assert rows["smoothed_dmmse"] == [pytest.approx(metrics["true/smoothed_dmmse/loss_noiseless"])]


def test_smoothed_dmmse_refuses_a_seed_that_is_the_eval_sets(store, sweep):
    from pipeline import evaluate_baselines

    pool_uri = f"runs:/{sweep.runs['pool-m4'].info.run_id}/pool/pool.npz"
    args = ("--pool", pool_uri, "--n_dims", 4, "--n_points", 8, "--n_eval", 64, "--smoothed_held_out", 16)
    result = invoke(evaluate_baselines.main, *args, "--smoothed_seed", 105)
    assert result.exit_code == 1
    message = "Error: smoothed_seed=105 is also eval_task_seed: the held-out sequences would be the eval set's"
    assert message in result.output


def test_the_readme_quotes_the_verdicts_between_its_markers():
    """make figures rewrites the README's verdicts block (pipeline/claims/report.py), one row per claim, and
    leaves everything around it, and a README without the markers, as they were."""
    from pipeline.claims.report import BEGIN, END, readme_verdicts

    criterion = {"criterion": "c", "value": -0.02, "low": -0.03, "high": -0.01, "replicates": 3, "verdict": "holds"}
    claims = [{"figure": "fig2_sweep", "claim": "dMMSE below, ridge above", "criteria": [criterion]}]
    claims[0] |= {"verdict": "holds", "made": "2026-12-06 01:00"}
    text = f"# Title\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n"
    new = readme_verdicts(text, claims)
    assert new.startswith("# Title\n\nbefore\n") and new.endswith(f"{END}\nafter\n") and "old table" not in new
    assert "| fig2_sweep | dMMSE below, ridge above | **holds** | -0.02 (-0.03 to -0.01) over 3 replicate(s) |" in new
    assert readme_verdicts(new, claims) == new  # written again, the same
    assert readme_verdicts("no markers", claims) == "no markers"
