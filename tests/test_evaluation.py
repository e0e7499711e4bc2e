"""The transformer's evaluation on a CPU: chunks shared among threads at one torch thread each
(pipeline/evaluation.py transformer_predictions, pipeline/devices.py in_threads)."""

import itertools
import threading

import numpy as np
import pytest
import torch

import pipeline.evaluation
from models import ModelConfig, build_model
from models.strategies import compiled, thread_safe
from pipeline.devices import fixed_threads, in_threads
from pipeline.evaluation import chunk_rows, transformer_predictions
from tasks import EvalSet


def eval_set(n, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((n, 16, 8)).astype(np.float32)
    return EvalSet(xs, None, rng.standard_normal((n, 16)).astype(np.float32))


def test_chunks_shared_among_threads_give_the_predictions_of_two_threads_splitting_each_chunk_bit_for_bit():
    model = build_model(ModelConfig.of_size("small", n_dims=8, n_points=16), seed=0)  # float32, as trained
    sequences = eval_set(45)
    seen, calls = [], itertools.count()  # per forward: its thread, torch's thread count there, grad mode
    together = threading.Barrier(2, timeout=60)  # the first two forwards wait for each other: two threads

    def hook(module, args):
        seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_grad_enabled()))
        if next(calls) < 2:
            together.wait()

    handle = model.register_forward_pre_hook(hook)
    with fixed_threads(2):
        shared = transformer_predictions(model, sequences, device="cpu", chunk=8, workers=2)
        assert torch.get_num_threads() == 2  # the caller's count is back
        workers = {ident for ident, _, _ in seen}
        assert len(seen) == 6 and threading.get_ident() not in workers and len(workers) == 2
        assert all(threads == 1 and not grad for _, threads, grad in seen)
        seen.clear()
        split = transformer_predictions(model, sequences, device="cpu", chunk=8, workers=1)
        assert [(ident, threads) for ident, threads, _ in seen] == [(threading.get_ident(), 2)] * 6
    handle.remove()
    assert split.shape == (45, 16) and np.array_equal(shared, split)
    assert model.training  # left in the mode it was in
    model.eval()
    transformer_predictions(model, sequences, device="cpu", chunk=8)
    assert not model.training


def test_default_chunks_are_sized_for_the_threads_that_compute_each_and_a_small_set_gives_each_thread_one():
    config = ModelConfig.of_size("base", n_dims=8, n_points=16)
    assert chunk_rows(config, "cpu") == 32 and chunk_rows(config, "cpu", threads=2) == 64
    assert chunk_rows(config, "cuda", threads=2) == chunk_rows(config, "cuda") == 2**26 // (32 * 128)
    model = build_model(ModelConfig(n_dims=8, n_points=16, n_layer=1, n_embd=16, n_head=2), seed=0)
    own = chunk_rows(model.config, "cpu")  # one thread per chunk: 2^17 activations, 256 sequences
    sizes = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    for n, expected in ((2048 + 5, [own] * 9), (45, [23, 23])):  # 45: two chunks, the last padded
        sizes.clear()
        with fixed_threads(2):
            transformer_predictions(model, eval_set(n), device="cpu")
        assert sizes == expected, n
    handle.remove()


def test_a_model_that_is_not_thread_safe_computes_its_chunks_in_turn_whatever_the_workers(monkeypatch):
    model = build_model(ModelConfig(n_dims=8, n_points=16, n_layer=1, n_embd=16, n_head=2), seed=0)
    assert thread_safe(model) and not thread_safe(compiled(model))  # torch.compile is not thread-safe
    monkeypatch.setattr(pipeline.evaluation, "thread_safe", lambda model: False)
    threads = []
    handle = model.register_forward_pre_hook(lambda module, args: threads.append(threading.get_ident()))
    transformer_predictions(model, eval_set(40), device="cpu", chunk=8, workers=2)
    handle.remove()
    assert threads == [threading.get_ident()] * 5


def test_an_error_in_a_worker_thread_reaches_the_caller_drops_the_items_not_started_and_restores_threads():
    started, released = [], threading.Event()

    def compute(item):
        started.append(item)
        if item == 3:
            raise ValueError(f"bad item {item}")
        if item > 3:  # still running when the error reaches the caller, so that the rest are not started
            released.wait(timeout=2)
        return item * torch.get_num_threads()

    with fixed_threads(2):
        assert in_threads(compute, range(3), 2) == [0, 1, 2]  # in order, one torch thread each
        started.clear()
        with pytest.raises(ValueError, match="bad item 3"):
            in_threads(compute, range(1000), 2)
        assert torch.get_num_threads() == 2
    assert 3 in started and max(started) <= 5  # the two workers' items at the error, not the other 994
