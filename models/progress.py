"""The progress display of a training: a hook on the loop (models/training.py)."""

import sys
import time

from models.training import Hook


class Progress(Hook):
    """A live status line on a terminal; on a pipe or log file (or with a `label`, when several trainings
    share a terminal), one line per evaluation instead."""

    def __init__(self, total, label="", first=0):
        self.total, self.first, self.start, self.label = total, first, time.perf_counter(), label
        self.live, self.last_draw = sys.stdout.isatty() and not label, 0.0

    def rate(self, step):
        """Steps per second since this display started (at step `first`: a resumed training)."""
        return (step - self.first) / max(time.perf_counter() - self.start, 1e-9)

    def on_log(self, step, scalars):
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.5 or step == self.total):
            self.last_draw = now
            bar = "#" * int(30 * step / self.total)
            line = f"\r[{bar:30s}] {step}/{self.total} {self.rate(step):.1f} steps/s loss {scalars['train/loss']:.4f}"
            sys.stdout.write(line)
            sys.stdout.flush()

    def on_eval(self, step, curves):
        if self.live:
            return
        parts = [
            f"{key} {curves[key].mean():.4f}"
            for key in sorted(curves)
            if key.endswith("/pt/loss_noiseless") or "delta_pt" in key
        ]
        print(f"{self.label}step {step}/{self.total} ({self.rate(step):.1f} steps/s): " + ", ".join(parts), flush=True)

    def on_end(self, step, curves):
        if self.live:
            sys.stdout.write("\n")
