"""The progress display of a training: a hook on the loop (models/training.py), drawn by tqdm."""

import sys
import time

from tqdm import tqdm

from models.training import Hook

# One line per evaluation when no live bar can be drawn; tqdm fills in the rate and times (rate and ETA
# from the steps of this process only, `initial` being where a resumed training started).
LINE_FORMAT = "step {n}/{total} ({rate_fmt}, {elapsed} elapsed, ETA {remaining})"


class Progress(Hook):
    """A live tqdm bar on a terminal; on a pipe or log file (or with a `label`, when several trainings
    share a terminal), one line per evaluation with the rate, elapsed time and ETA instead.

    `first` is the step a resumed training starts from. The bar is closed by `on_end`; a training that
    raises never gets there, so callers should also `close()` it (e.g. `contextlib.closing`).
    """

    def __init__(self, total, label="", first=0):
        self.total, self.first, self.label, self.start = total, first, label, time.perf_counter()
        self.bar = None
        if sys.stdout.isatty() and not label:
            self.bar = tqdm(total=total, initial=first, unit="step", file=sys.stdout, dynamic_ncols=True)

    def on_log(self, step, scalars):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{scalars['training/loss']:.4f}", refresh=False)
            self.bar.update(step - self.bar.n)

    def on_eval(self, step, curves):
        if self.bar is not None:
            return
        parts = [
            f"{key} {curves[key].mean():.4f}"
            for key in sorted(curves)
            if key.endswith("/pt/loss_noiseless") or "delta_pt" in key
        ]
        # unit_scale: a rate of 9.1 reads "9.10step/s", not padded to a fixed width.
        meter = tqdm.format_meter(
            step,
            self.total,
            time.perf_counter() - self.start,
            unit="step",
            unit_scale=True,
            initial=self.first,
            bar_format=LINE_FORMAT,
        )
        print(f"{self.label}{meter}: " + ", ".join(parts), flush=True)

    def on_end(self, step, curves):
        self.close()

    def close(self):
        """End the bar's line on the terminal (idempotent; nothing to do without a bar)."""
        if self.bar is not None:
            self.bar.close()
