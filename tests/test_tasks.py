"""Task pools, training batches and evaluation sets: reproducible, independent streams, checked files."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from tasks import (
    STREAMS,
    DataSettings,
    EvalSettings,
    interpolation_path,
    load_pool,
    make_eval_set,
    make_pool,
    parse_n_tasks,
    path_sequences,
    sample_batch,
    save_pool,
    stream_seed,
)


def test_pool_is_seeded_and_scaled():
    pool = make_pool(4000, 3, seed=1, task_scale=2.0)
    assert pool.tasks.shape == (4000, 3) and pool.tasks.dtype == np.float32
    np.testing.assert_array_equal(pool.tasks, make_pool(4000, 3, seed=1, task_scale=2.0).tasks)
    assert not np.array_equal(pool.tasks, make_pool(4000, 3, seed=2, task_scale=2.0).tasks)
    assert abs(pool.tasks.std() - 2.0) < 0.05 and abs(pool.tasks.mean()) < 0.05


def test_pool_file_round_trip_records_shape_and_digest(tmp_path):
    pool = make_pool(17, 5, seed=3, task_scale=1.0)
    save_pool(pool, tmp_path / "pool.npz")
    loaded = load_pool(tmp_path / "pool.npz")
    np.testing.assert_array_equal(loaded.tasks, pool.tasks)
    assert (loaded.n_tasks, loaded.n_dims, loaded.seed, loaded.digest) == (17, 5, 3, pool.digest)
    assert len(pool.digest) == 64 and pool.digest != make_pool(17, 5, seed=4, task_scale=1.0).digest


def test_infinite_pool_has_no_tasks_and_round_trips(tmp_path):
    pool = make_pool(math.inf, 4, seed=0, task_scale=1.0)
    assert pool.tasks is None and pool.n_tasks == math.inf
    save_pool(pool, tmp_path / "inf.npz")
    loaded = load_pool(tmp_path / "inf.npz")
    assert loaded.tasks is None and loaded.n_tasks == math.inf and loaded.digest == pool.digest


def test_corrupted_pool_file_is_rejected(tmp_path):
    path = tmp_path / "pool.npz"
    save_pool(make_pool(8, 2, seed=0, task_scale=1.0), path)
    with np.load(path) as data:
        tasks, header = data["tasks"].copy(), data["header"]
    tasks[3, 1] += 1.0  # a changed value under an unchanged header
    np.savez(path, tasks=tasks, header=header)
    with pytest.raises(ValueError, match="is corrupted: sha256"):
        load_pool(path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="is not a readable task pool"):
        load_pool(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_pool(tmp_path / "missing.npz")


@pytest.mark.parametrize("value", [0, -3, "-3", 1.5, "abc", "nan", True, "1e400", "infinity"])
def test_bad_n_tasks_is_named(value):
    with pytest.raises(ValueError, match=f"n_tasks must be a positive integer or inf, got {value!r}"):
        parse_n_tasks(value)


def test_parse_n_tasks_accepts_integers_and_inf():
    assert parse_n_tasks("1024") == 1024 and parse_n_tasks(2.0) == 2 and parse_n_tasks("1e3") == 1000
    assert parse_n_tasks("inf") == math.inf and parse_n_tasks(math.inf) == math.inf


SPEC = DataSettings(
    batch_size=64, n_points=6, n_dims=3, noise_scale=0.5, data_scale=1.0, data_seed=101, task_seed=102, noise_seed=103
)


def spec(**changes):
    return dataclasses.replace(SPEC, **changes)


def eval_settings(n_eval, **seeds):
    seeds = {"eval_data_seed": 104, "eval_task_seed": 105, "eval_noise_seed": 106} | seeds
    return EvalSettings(n_eval=n_eval, n_points=6, noise_scale=0.5, data_scale=1.0, **seeds)


def test_batch_is_a_pure_function_of_the_step():
    pool = torch.from_numpy(make_pool(10, 3, seed=0, task_scale=1.0).tasks)
    direct = sample_batch(SPEC, 7, pool=pool, task_scale=1.0)
    for step in range(7):  # whatever was drawn before (a run that started at 0) ...
        sample_batch(SPEC, step, pool=pool, task_scale=1.0)
    resumed = sample_batch(SPEC, 7, pool=pool, task_scale=1.0)  # ... step 7 is the same as when resuming at 7
    for a, b in zip(direct, resumed, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(direct[0], sample_batch(SPEC, 8, pool=pool, task_scale=1.0)[0])


def test_batch_targets_follow_tasks_and_noise():
    xs, ws, ys = sample_batch(SPEC, 0, pool=None, task_scale=1.0)
    assert xs.shape == (64, 6, 3) and ws.shape == (64, 3) and ys.shape == (64, 6)
    residual = ys - torch.einsum("bkd,bd->bk", xs, ws)
    assert 0.4 < residual.std() < 0.6
    noiseless = sample_batch(spec(noise_scale=0.0), 0, pool=None, task_scale=1.0)
    torch.testing.assert_close(noiseless[2], torch.einsum("bkd,bd->bk", xs, ws))


def test_streams_are_separate():
    pool = torch.from_numpy(make_pool(50, 3, seed=0, task_scale=1.0).tasks)
    base = sample_batch(SPEC, 3, pool=pool, task_scale=1.0)
    other_noise = sample_batch(spec(noise_seed=999), 3, pool=pool, task_scale=1.0)
    assert torch.equal(base[0], other_noise[0]) and torch.equal(base[1], other_noise[1])
    assert not torch.equal(base[2], other_noise[2])
    other_task = sample_batch(spec(task_seed=999), 3, pool=pool, task_scale=1.0)
    assert torch.equal(base[0], other_task[0]) and not torch.equal(base[1], other_task[1])


def test_pool_smaller_than_batch_samples_with_replacement():
    pool = torch.from_numpy(make_pool(2, 3, seed=0, task_scale=1.0).tasks)
    _, ws, _ = sample_batch(SPEC, 0, pool=pool, task_scale=1.0)
    matches = (ws[:, None, :] == pool[None]).all(dim=2)  # (B, M)
    assert torch.all(matches.sum(dim=1) == 1)
    assert torch.all(matches.sum(dim=0) > 10)  # both tasks used, many times each


def test_infinite_pool_draws_a_fresh_task_per_sequence():
    _, ws, _ = sample_batch(SPEC, 0, pool=None, task_scale=1.0)
    assert len(torch.unique(ws, dim=0)) == 64


def test_batches_are_reproducible_across_processes():
    code = (
        "import torch; from tasks import DataSettings, sample_batch;"
        "spec = DataSettings(64, 6, 3, 0.5, 1.0, 101, 102, 103);"
        "xs, ws, ys = sample_batch(spec, 11, pool=None, task_scale=1.0);"
        "print(repr(float(xs.sum())), repr(float(ws.sum())), repr(float(ys.sum())))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    xs, ws, ys = sample_batch(SPEC, 11, pool=None, task_scale=1.0)
    assert [float(v) for v in out] == [float(xs.sum()), float(ws.sum()), float(ys.sum())]


def test_eval_sets_share_no_draw_with_training_even_with_equal_seeds():
    pool = make_pool(20, 3, seed=0, task_scale=1.0)
    same = eval_settings(
        64, eval_data_seed=SPEC.data_seed, eval_task_seed=SPEC.task_seed, eval_noise_seed=SPEC.noise_seed
    )
    sets = [make_eval_set(kind, pool, same) for kind in ("pretrain", "true")]

    # Compare whole x vectors: single float32 values do coincide by chance among 10^5 draws.
    def vectors(xs):
        return {tuple(x) for x in xs.reshape(-1, 3).tolist()}

    train = set().union(*(vectors(sample_batch(SPEC, step, pool=None, task_scale=1.0)[0]) for step in range(200)))
    assert len(train) == 200 * 64 * 6  # the training steps themselves never repeat a draw
    pretrain, true = (vectors(s.xs) for s in sets)
    assert not train & pretrain and not train & true and not pretrain & true


def test_eval_sets_are_fixed_and_use_the_right_tasks():
    pool = make_pool(5, 3, seed=0, task_scale=1.0)
    pretrain = make_eval_set("pretrain", pool, eval_settings(100))
    again = make_eval_set("pretrain", pool, eval_settings(100))
    np.testing.assert_array_equal(pretrain.ys, again.ys)
    assert all((pool.tasks == w).all(axis=1).any() for w in pretrain.ws)
    true = make_eval_set("true", pool, eval_settings(100))
    assert not any((pool.tasks == w).all(axis=1).any() for w in true.ws)
    with pytest.raises(ValueError, match="needs a finite pool, got n_tasks=inf"):
        make_eval_set("pretrain", make_pool(math.inf, 3, seed=0, task_scale=1.0), eval_settings(4))


def test_bad_batch_spec_and_pool_are_named():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        spec(batch_size=0)
    with pytest.raises(ValueError, match=r"pool must have shape \(M, 3\) with M > 0, got \(4, 2\)"):
        sample_batch(SPEC, 0, pool=torch.zeros(4, 2), task_scale=1.0)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\^63\), got -1"):
        sample_batch(spec(data_seed=-1), 0, pool=None, task_scale=1.0)


def test_stream_seeds_do_not_collide_across_seeds_streams_and_steps():
    keys = [(seed, stream, index) for seed in (0, 1, 5, 2**32 + 5, 2**62) for stream in STREAMS for index in range(50)]
    assert len({stream_seed(*key) for key in keys}) == len(keys)


def test_interpolation_paths_follow_eq_5():
    rng = np.random.default_rng(3)
    w_i, w_j = rng.standard_normal(8), 2 * rng.standard_normal(8)
    alphas = np.linspace(0, 1, 11)
    path = interpolation_path(w_i, w_j, alphas)
    mean_norm = (np.linalg.norm(w_i) + np.linalg.norm(w_j)) / 2
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), mean_norm, rtol=1e-12)  # every point: the mean norm
    np.testing.assert_allclose(path[-1], mean_norm * w_i / np.linalg.norm(w_i), rtol=1e-12)  # alpha = 1: along w_i
    np.testing.assert_allclose(path[0], mean_norm * w_j / np.linalg.norm(w_j), rtol=1e-12)  # alpha = 0: along w_j
    np.testing.assert_allclose(interpolation_path(w_j, w_i, 1 - alphas), path, rtol=1e-12)  # symmetric
    chord = 0.3 * w_i + 0.7 * w_j  # the direction is the chord's, written out
    np.testing.assert_allclose(interpolation_path(w_i, w_j, [0.3])[0], mean_norm * chord / np.linalg.norm(chord))
    with pytest.raises(ValueError, match="passes through 0"):
        interpolation_path(w_i, -w_i, [0.5])


def test_path_sequences_are_seeded_and_pair_distinct_tasks():
    tasks = np.random.default_rng(0).standard_normal((3, 4))
    kwargs = {"pairs": 50, "alphas": [0.0, 0.5, 1.0], "sequences": 2, "n_points": 5, "noise_scale": 0.5}
    xs, ws, ys, pairs = path_sequences(tasks, **kwargs, data_scale=1.0, seed=7)
    assert xs.shape == (50, 3, 2, 5, 4) and ws.shape == (50, 3, 4) and ys.shape == (50, 3, 2, 5)
    assert (pairs[:, 0] != pairs[:, 1]).all() and set(pairs.ravel()) == {0, 1, 2}
    again = path_sequences(tasks, **kwargs, data_scale=1.0, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((xs, ws, ys, pairs), again, strict=True))
    residual = ys - np.einsum("pasku,pau->pask", xs, ws)
    assert 0.4 < residual.std() < 0.6  # the noise, at noise_scale
    with pytest.raises(ValueError, match="two pool tasks or more"):
        path_sequences(tasks[:1], **kwargs, data_scale=1.0, seed=7)
