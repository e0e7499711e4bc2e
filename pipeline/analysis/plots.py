"""Drawing shared by the analyses' figures: a summary number against M as the mean over replicates with its
95% interval (pipeline/sweep/summary.py aggregate), and a value with an interval that may be one-sided."""

import math
import re

from pipeline.presets import REPLICATE
from pipeline.stats import t_interval
from pipeline.sweep.summary import aggregate


def mean_curve(ax, rows, axes, key, x_of, dodge=0.0, **style):
    """`key` of `rows` (one group and data scale, any replicates) against M: the mean per M with its interval
    as error bars (none with one replicate), shifted right by `dodge` so that coinciding curves stay apart.
    Draws nothing where no M has a value."""
    means = sorted(aggregate(rows, axes), key=lambda m: m["log2_n_tasks"])
    points = [(x_of(m["log2_n_tasks"]) + dodge, m[key], m[f"{key}:low"], m[f"{key}:high"]) for m in means]
    points = [p for p in points if math.isfinite(p[1])]
    if points:
        xs, ys, lows, highs = zip(*points, strict=True)
        ax.errorbar(xs, ys, yerr=error_bars(ys, lows, highs), capsize=3, **({"marker": "o"} | style))


def error_bars(values, lows, highs):
    """matplotlib's yerr for `values` with intervals (`lows`, `highs`), 0 where an end is not finite."""
    below = [v - lo if math.isfinite(lo) else 0 for v, lo in zip(values, lows, strict=True)]
    above = [hi - v if math.isfinite(hi) else 0 for v, hi in zip(values, highs, strict=True)]
    return [below, above]


def with_intervals(ax, xs, values, lows, highs, **style):
    """Points (xs, values) with their intervals as error bars, those without a finite value left out."""
    points = [p for p in zip(xs, values, lows, highs, strict=True) if math.isfinite(p[1])]
    if points:
        xs, ys, lows, highs = zip(*points, strict=True)
        ax.errorbar(xs, ys, yerr=error_bars(ys, lows, highs), capsize=4, **({"marker": "o"} | style))


def pooled(curve):
    """A curve's text (analysis tables: "weight_decay=0.1, replicate=2") without its replicate and seed axes,
    whose values differ per replicate (each replicate draws its own seeds: grid.replicate_seed)."""
    return ", ".join(part for part in curve.split(", ") if part and not re.match(rf"({REPLICATE}|\w+_seed)=", part))


def pooled_curves(table, x_of):
    """Per curve of an analysis table (its "curve" and "n_tasks" columns, a row per training), its replicates
    and seed axes pooled (`pooled`): (line style, label suffix, x positions in order of M, values), where
    values(key) gives the per-M (means, lows, highs) of column `key` over the pooled rows (95% t intervals;
    nan for one)."""
    grouped = {}
    for i, (curve, m) in enumerate(zip(table["curve"], table["n_tasks"], strict=True)):
        grouped.setdefault(pooled(curve), {}).setdefault(float(m), []).append(i)
    for c, (curve, by_m) in enumerate(grouped.items()):
        ms = sorted(by_m)

        def values(key, by_m=by_m, ms=ms):
            return tuple(zip(*(t_interval([table[key][i] for i in by_m[m]]) for m in ms), strict=True))

        yield ("-", "--", ":")[c % 3], f" ({curve})" if curve else "", [x_of(math.log2(m)) for m in ms], values


def replicates_note(table):
    """' (means of N replicates, 95% intervals)' for an analysis table of N > 1 replicates, else ''."""
    found = {part for curve in table["curve"] for part in curve.split(", ") if part.startswith(f"{REPLICATE}=")}
    return f" (means of {len(found)} replicates, 95% intervals)" if len(found) > 1 else ""
