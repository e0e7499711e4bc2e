"""Progress reports: the training's display (models/progress.py), the sweep's (pipeline/sweep/progress.py) and
dMMSE's callback (baselines/dmmse.py)."""

import io
import sys
import time

import numpy as np
import pytest

import baselines.dmmse
import baselines.prefix
from baselines import dmmse_predictions
from models.progress import Progress
from pipeline.sweep.progress import SweepProgress

CURVES = {"true/pt/loss_noiseless": np.array([0.4, 0.42]), "true/delta_pt_ridge": np.array([0.1, 0.1])}


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dmmse_with_progress_is_bit_identical_and_counts_every_unit(backend, monkeypatch):
    # Small blocks, row slices and pool chunks: 3 blocks (5, 5, 3 sequences; positions 1..6 go through the
    # pool: 30, 30, 18 rows) x 2 row slices x 4 pool chunks = 24 units.
    monkeypatch.setattr(baselines.prefix, "BLOCK_BYTES", 5 * 7 * 3 * 3 * 8)
    monkeypatch.setattr(baselines.dmmse, "ROWS", 16)
    monkeypatch.setattr(baselines.dmmse, "POOL_CHUNK", 8)
    rng = np.random.default_rng(0)
    xs, ys, pool = rng.standard_normal((13, 7, 3)), rng.standard_normal((13, 7)), rng.standard_normal((30, 3))
    calls = []
    plain = dmmse_predictions(xs, ys, pool=pool, noise_scale=0.5, workers=2, backend=backend)
    reported = dmmse_predictions(
        xs,
        ys,
        pool=pool,
        noise_scale=0.5,
        workers=2,
        backend=backend,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert np.array_equal(plain, reported)
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {24}
    assert done[0] == 0 and done[-1] == 24 and done == sorted(done)


def test_lines_carry_rate_elapsed_and_eta_of_this_process_only(capsys, monkeypatch):
    monkeypatch.setattr(time, "perf_counter", lambda: 100.0)
    progress = Progress(1000, "[m64] ", first=500)  # resumed at 500: 100 steps in 10 s, 400 to go
    monkeypatch.setattr(time, "perf_counter", lambda: 110.0)
    progress.on_log(600, {"training/loss": 0.5, "training/lr": 1e-4})
    progress.on_eval(600, CURVES)
    progress.on_end(600, CURVES)  # a partial run: nothing to close, nothing printed
    assert capsys.readouterr().out == (
        "[m64] step 600/1000 (10.0step/s, 00:10 elapsed, ETA 00:40): "
        "true/delta_pt_ridge 0.1000, true/pt/loss_noiseless 0.4100\n"
    )


def test_a_pipe_gets_lines_with_eta_and_no_bar(capsys):
    progress = Progress(100)
    for step in (50, 100):
        progress.on_log(step, {"training/loss": 0.5, "training/lr": 1e-4})
        progress.on_eval(step, CURVES)
    progress.on_end(100, CURVES)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("ETA" in line and "elapsed" in line for line in lines)
    assert lines[1].startswith("step 100/100 (")


def test_a_terminal_gets_a_bar_closed_even_after_a_partial_run(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    progress = Progress(100, first=20)
    progress.on_log(50, {"training/loss": 0.25, "training/lr": 1e-4})
    progress.on_eval(50, CURVES)  # the bar is the whole display: no line per evaluation
    progress.on_end(50, CURVES)
    progress.close()  # closing twice (on_end, then a caller's `closing`) is harmless
    out = terminal.getvalue()
    assert "50/100" in out and "loss=0.2500" in out and "true/pt" not in out
    assert out.endswith("\n")


def test_a_sweep_prints_a_line_per_point_to_a_pipe_and_draws_one_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(time, "monotonic", lambda: 50.0)
    progress = SweepProgress(4, "[sweep 1f0c2a]")
    monkeypatch.setattr(time, "monotonic", lambda: 110.0)  # one point a minute: three minutes to go
    progress.update(1)
    progress.say("a message")
    progress.close()
    assert capsys.readouterr().out == "[sweep 1f0c2a] 1/4 points done (01:00 elapsed, ETA 03:00)\na message\n"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    progress = SweepProgress(4, "[sweep 1f0c2a]")
    for done in (1, 3, 4):
        progress.update(done)
    progress.say("a message")  # above the bar, which goes on
    progress.close()
    progress.close()
    out = terminal.getvalue()
    assert "4/4" in out and "point" in out and "a message\n" in out and "points done" not in out
