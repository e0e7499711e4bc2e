"""Peak memory of one call, whoever allocates it (numpy, torch's CPU allocator, BLAS).

tracemalloc sees only what Python and numpy allocate, not torch's tensors, so the estimators' peak is
measured as the process's resident set size, sampled every 5 ms while the call runs, minus the
size before it. On CUDA the device's own peak is added (torch.cuda.max_memory_allocated).
"""

import threading
import time

import torch

PAGE = 4096


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def peak_growth(fn, *args, **kwargs):
    """(result, peak bytes above the resident size at the start) of fn(*args, **kwargs)."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        device_start = torch.cuda.memory_allocated()
    start = _resident_bytes()
    peak, done = start, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _resident_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn(*args, **kwargs)
    finally:
        done.set()
        sampler.join()
    peak = max(peak, _resident_bytes())
    growth = peak - start
    if cuda:
        growth += torch.cuda.max_memory_allocated() - device_start
    return result, growth
