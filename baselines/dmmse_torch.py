"""dMMSE's streamed posterior means in torch, float64, on a CPU thread or a CUDA device.

The same computation as the numpy loop in baselines.dmmse (`_posterior_means`): per pool chunk, one
matrix product gives every prefix row's log-weights relative to its running maximum, and a running
log-sum-exp folds them into the weighted task sums. Two differences: on a CUDA device the running
maximum is updated for every row without asking which rows grew (no device-to-host copy inside the
loop, so the host never waits on the device), and the weighted sums are kept transposed, (D + 1, R),
which measured about 2x faster than (R, D + 1) for torch's product on a CPU.
Why torch: its float64 exp is vectorised on AVX2 CPUs, where numpy's is not, and it runs on CUDA.
"""

import contextlib

import torch

# Rows and pool tasks per product on a CUDA device: a (ROWS, CHUNK) float64 block is 512 MiB, large
# enough to keep the device busy and small next to any current accelerator's memory.
CUDA_ROWS = 8192
CUDA_CHUNK = 8192


def posterior_means(features, blocks, *, pool, out, tick, chunk, floor):
    """out[b] = the softmax-weighted pool mean for the prefix rows in each slice b of `blocks`.

    `features` (R, F) numpy float64 holds the rows' coefficients (baselines.dmmse._prefix_features),
    `pool` (M, D) is a float64 tensor on the device that does the work, `chunk` tasks are streamed at
    a time and log-weights below `floor` (relative to the row's maximum) are clamped to it before exp.
    `tick(len(blocks))` (if not None) after each pool chunk, as in the numpy loop.
    """
    device, n_dims = pool.device, pool.shape[1]
    on_device = device.type != "cpu"
    rows, cols = torch.triu_indices(n_dims, n_dims, device=device)
    state = []  # per slice: [coefficients, -shift] (r, F + 1) and the sums [sum e_i w_i; sum e_i] (D + 1, r)
    for b in blocks:
        f = torch.as_tensor(features[b], device=device)
        state.append((torch.cat([f, f.new_zeros(len(f), 1)], dim=1), f.new_zeros(n_dims + 1, len(f))))
    buffer = pool.new_empty(max((len(scaled) for scaled, _ in state), default=0) * chunk)
    for start in range(0, len(pool), chunk):
        tasks = pool[start : start + chunk]
        ones = tasks.new_ones(len(tasks), 1)
        # [phi(w), 1] as in baselines.dmmse._task_features: the 1 multiplies the row's -shift.
        phi = torch.cat([tasks, tasks[:, rows] * tasks[:, cols], ones], dim=1).T.contiguous()  # (F + 1, Mc)
        tasks1 = torch.cat([tasks, ones], dim=1).T.contiguous()  # (D + 1, Mc)
        for scaled, sums in state:
            logits = buffer[: len(scaled) * len(tasks)].view(len(scaled), len(tasks))
            torch.mm(scaled, phi, out=logits)
            up = logits.amax(dim=1)  # the first chunk sets the shift; later ones only raise it
            if start:
                up.clamp_(min=0.0)
                sums.mul_(torch.exp(-up))  # rescale what was accumulated to the new maximum
            # On a CPU, asking whether any row grew is free and spares a pass over the block when none
            # did (most chunks once the maximum has settled); a device would have to wait for the answer.
            if not start or on_device or bool(up.any()):
                logits.sub_(up[:, None])
            logits.clamp_(min=floor).exp_()
            sums.addmm_(tasks1, logits.T)
            scaled[:, -1].sub_(up)
        if tick is not None:
            tick(len(blocks))
    for b, (_, sums) in zip(blocks, state, strict=True):
        out[b] = (sums[:-1] / sums[-1]).T.cpu().numpy()


@contextlib.contextmanager
def one_thread_per_op():
    """Torch ops at one thread each for the duration (worker threads created inside inherit it), as
    numpy's BLAS is limited to one thread in the numpy loop: the worker threads share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
