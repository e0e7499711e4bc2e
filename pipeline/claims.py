"""Claims as code: a figure's claim of the paper and the numeric criteria that decide it at CPU scale, written
before its sweep runs, and the verdict from the sweep's runs (`make figures` writes them to
docs/figures/claims.json).

Each criterion measures one number with its 95% interval and decides:
- `Paired`: a quantity computed within each replicate of the sweep (from that replicate's summary rows:
  both sides of a comparison come from the same trainings), which the claim says is below 0; its mean
  over the replicates with Student's t interval. Holds when the whole interval is below 0, does not hold
  when it is all above, inconclusive otherwise (and with fewer than 2 replicates).
- `Within`: a `Paired` quantity that the claim says is about 0 (two things match): holds when the whole
  interval is inside +-margin, does not hold when it is all outside on one side.
- `Ordered`: two groups' thresholds M* (the sweep's summary, with their bootstrap intervals over the
  replicates: pipeline/stats.py; one-sided when a threshold lies beyond the grid), which the claim says
  are in an order. Holds when the intervals are apart in that order, does not hold when apart in the
  other, inconclusive when they overlap or one has no interval.
A criterion reads the sweep's summary or, where it names one (`table`), a table its figure's analysis logged
(pipeline/analysis/): each replicate's quantity then sees that table's rows of the replicate's own train runs.
A claim holds when every criterion holds, does not hold when one does not, and is inconclusive otherwise.
Thresholds named in a criterion ("the M nearest M*") are the sweep's, from the mean curves over replicates.
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from pipeline.analysis.fits import power_law
from pipeline.presets import REPLICATE
from pipeline.stats import t_interval
from pipeline.sweep.summary import data_seen, thresholds

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"


class Context(NamedTuple):
    """What a replicate's quantity may read besides its own summary rows: the sweep's axes, all its rows (for
    its threshold) and the replicate's rows of the analysis table the criterion names (None: it names none)."""

    axes: list
    rows: list
    table: list | None


@dataclasses.dataclass(frozen=True)
class Paired:
    """`quantity(rows, context)` of one replicate's summary rows (and `context`: Context), below 0 when the
    claim holds; `table`: the artifact path of the analysis table it reads, if any."""

    text: str
    quantity: Callable
    table: str | None = dataclasses.field(default=None, kw_only=True)

    def measure(self, rows, axes, tables=None):
        if self.table is not None and self.table not in (tables or {}):
            raise ValueError(f"the criterion {self.text!r} reads the analysis table {self.table}, not given")
        values = []
        for members in replicates(rows):
            own = None
            if self.table is not None:
                runs = {row["train_run"] for row in members}
                own = [row for row in tables[self.table] if row["train_run"] in runs]
            values.append(self.quantity(members, Context(axes, rows, own)))
        finite = [v for v in values if math.isfinite(v)]
        mean, low, high = t_interval(finite) if len(finite) == len(values) else (math.nan,) * 3
        verdict = OPEN if not math.isfinite(low) else HOLDS if high < 0 else FAILS if low > 0 else OPEN
        return {"value": mean, "low": low, "high": high, "replicates": len(values), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Within(Paired):
    """`quantity` of one replicate's rows within +-`margin` when the claim (that two things match) holds:
    holds when the whole interval is inside, does not hold when it is all outside on one side."""

    margin: float = dataclasses.field(default=0.05, kw_only=True)

    def measure(self, rows, axes, tables=None):
        found = super().measure(rows, axes, tables)
        low, high, m = found["low"], found["high"], self.margin
        verdict = OPEN
        if math.isfinite(low):
            verdict = HOLDS if -m < low and high < m else FAILS if low > m or high < -m else OPEN
        return found | {"margin": m, "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Ordered:
    """The thresholds of two groups ({axis: value} each, by `pick(values)` of the axis' values): the
    first's below the second's when the claim holds."""

    text: str
    axis: str
    first: Callable
    second: Callable

    def measure(self, rows, axes, tables=None):
        found = {}
        for threshold in thresholds(rows, axes):
            found.setdefault(dict(threshold.group)[self.axis], []).append(threshold)
        if any(len(group) > 1 for group in found.values()):
            raise ValueError(f"the claim compares one threshold per {self.axis}; the sweep has other axes too")
        [a], [b] = found[self.first(sorted(found))], found[self.second(sorted(found))]
        verdict = OPEN  # an interval may be one-sided (a threshold beyond the grid: summary.threshold)
        if not any(math.isnan(v) for v in (a.low, a.high, b.low, b.high)):
            verdict = HOLDS if a.high < b.low else FAILS if a.low > b.high else OPEN
        difference = a.log2_m - b.log2_m
        return {"value": difference, "first": _threshold(a), "second": _threshold(b), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Claim:
    figure: str  # the paper's figure: the gallery entry's name (pipeline/gallery.py) unless `entry` says
    claim: str  # the paper's claim, in words
    criteria: tuple
    entry: str | None = None  # the gallery entry whose sweep and analysis decide it (None: `figure`)

    @property
    def tables(self):
        """The analysis tables its criteria read (artifact paths of the entry's analysis run)."""
        return sorted({c.table for c in self.criteria if getattr(c, "table", None)})

    def evaluate(self, rows, axes, tables=None):
        """{figure, claim, criteria: [{criterion, value, interval..., verdict}], verdict} from a sweep's summary
        `rows` (one per training) over `axes` and the analysis `tables` ({artifact path: rows}) it reads."""
        measured = [{"criterion": c.text} | c.measure(rows, axes, tables) for c in self.criteria]
        verdicts = {m["verdict"] for m in measured}
        verdict = FAILS if FAILS in verdicts else HOLDS if verdicts == {HOLDS} else OPEN
        made = time.strftime("%Y-%m-%d %H:%M")
        return {"figure": self.figure, "claim": self.claim, "criteria": measured, "verdict": verdict, "made": made}


def replicates(rows):
    """The summary rows grouped by replicate (all of them, for a sweep without replicates)."""
    found = {}
    for row in rows:
        found.setdefault(row.get(REPLICATE, 0), []).append(row)
    return list(found.values())


def _threshold(threshold):
    keys = ("log2_m", "low", "high", "share", "finding")
    return {key: getattr(threshold, key) for key in keys}


def at(rows, key, pick, scale=max):
    """`key` at the finite M that `pick` (min, max) chooses among one replicate's `rows`, on the data scale
    that `scale` chooses there (max: the longest-trained curve). The rows may differ on no other axis."""
    finite = [r for r in rows if math.isfinite(r["log2_n_tasks"])]
    chosen = [r for r in finite if r["log2_n_tasks"] == pick(r["log2_n_tasks"] for r in finite)]
    if len({data_seen(r) for r in chosen}) < len(chosen):
        raise ValueError("the claim reads one curve per data scale; the sweep has other axes too")
    return scale(chosen, key=data_seen)[key]


def _more_data_nearer_dmmse_at_smallest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", min, min) - at(rows, "true/delta_pt_ridge", min, max)


def _more_data_nearer_ridge_at_largest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", max, max) - at(rows, "true/delta_pt_ridge", max, min)


def _pt_on_dmmse_at_smallest_m(rows, _):
    return at(rows, "pretrain/delta_pt_dmmse", min) - at(rows, "pretrain/delta_pt_ridge", min) / 10


def _pt_nearer_ridge_at_largest_m(rows, _):
    return at(rows, "true/delta_pt_ridge", max) - at(rows, "true/delta_pt_dmmse", max)


def _largest_m_against_inf(rows, _):
    """The transformer's T_True loss/D at the largest finite M relative to its loss at M = inf, minus 1."""
    infinite = max((r for r in rows if r["log2_n_tasks"] == math.inf), key=data_seen)
    return at(rows, "true/pt/loss_noiseless", max) / infinite["true/pt/loss_noiseless"] - 1


def _finite(table, **equal):
    """The rows of an analysis table at finite M whose columns equal `equal`."""
    return [r for r in table if math.isfinite(r["n_tasks"]) and all(r[k] == v for k, v in equal.items())]


def _threshold_m(context):
    """The sweep's M* (2^log2 M*, from its mean curves; nan where the grid shows no crossing): one group only."""
    found = thresholds(context.rows, context.axes)
    if len(found) != 1:
        raise ValueError("the claim reads one threshold; the sweep has other axes too")
    return 2 ** found[0].log2_m


def _nearest_threshold(ms, context):
    """The M of `ms` nearest M* on log axes (nan where the sweep has no threshold)."""
    star = _threshold_m(context)
    if not math.isfinite(star):
        return math.nan
    return min(ms, key=lambda m: abs(math.log2(m) - math.log2(star)))


def _t_star_exponent(rows, context):
    """-alpha of the least-squares t* ~ M^alpha over the finite M below M* (all finite M where the sweep has no
    threshold) whose T_True Delta_PT,Ridge curve is U-shaped (pipeline/analysis/transition.py); nan with
    fewer than two such M."""
    star = _threshold_m(context)
    below = [r for r in _finite(context.table, dist="true") if r["u_shaped"] and not r["n_tasks"] >= star]
    if len({r["n_tasks"] for r in below}) < 2:
        return math.nan
    return -power_law([r["n_tasks"] for r in below], [r["t_star"] for r in below])[0]


def _paths(context):
    """{M: {alpha: row}} of the interpolation table (pipeline/analysis/interpolation.py), one curve."""
    found = {}
    for row in _finite(context.table):
        if row["alpha"] in found.setdefault(row["n_tasks"], {}):
            raise ValueError("the claim reads one interpolation curve per M; the sweep has other axes too")
        found[row["n_tasks"]][row["alpha"]] = row
    return found


def _centre(path):
    """The row at the alpha nearest 1/2 of one path {alpha: row}."""
    return path[min(path, key=lambda a: abs(a - 0.5))]


def _dmmse_bump_at_every_m(rows, context):
    """-(the smallest over M of dMMSE's loss/D at alpha = 1/2 minus the mean of its two ends)."""
    bumps = []
    for path in _paths(context).values():
        ends = (path[min(path)]["dmmse"] + path[max(path)]["dmmse"]) / 2
        bumps.append(_centre(path)["dmmse"] - ends)
    return -min(bumps)


def _pt_bumps_at_smallest_m(rows, context):
    """Ridge's loss/D minus the transformer's at alpha = 1/2, at the smallest M."""
    paths = _paths(context)
    centre = _centre(paths[min(paths)])
    return centre["ridge"] - centre["pt"]


def _pt_beats_dmmse_near_threshold(rows, context):
    """The transformer's loss/D over dMMSE's at alpha = 1/2, minus 1, at the M nearest M*."""
    paths = _paths(context)
    m = _nearest_threshold(paths, context)
    if not math.isfinite(m):
        return math.nan
    centre = _centre(paths[m])
    return centre["pt"] / centre["dmmse"] - 1


def _pt_at_ridge_at_largest_m(rows, context):
    """The transformer's loss/D over ridge's at alpha = 1/2, minus 1, at the largest M."""
    paths = _paths(context)
    centre = _centre(paths[max(paths)])
    return centre["pt"] / centre["ridge"] - 1


def _barrier_largest_against_smallest_m(rows, context):
    """The T_True loss barrier between PT(M) and PT(inf) (pipeline/analysis/lmc.py) at the largest finite M
    minus at the smallest, each the mean over the replicate's curves (e.g. data seeds)."""
    barriers = {}
    for pair in dict.fromkeys(r["pair"] for r in _finite(context.table)):
        path = sorted((r["t"], r["true"], r["n_tasks"]) for r in context.table if r["pair"] == pair)
        ts, losses = np.array([t for t, _, _ in path]), np.array([loss for _, loss, _ in path])
        barriers.setdefault(path[0][2], []).append(float(np.max(losses - ((1 - ts) * losses[0] + ts * losses[-1]))))
    means = {m: sum(values) / len(values) for m, values in barriers.items()}
    return means[max(means)] - means[min(means)]


def _pt_against_smoothed_near_threshold(rows, context):
    """The transformer's T_True loss/D over smoothed dMMSE's (its best s; pipeline/analysis/smoothing.py),
    minus 1, at the finite M nearest M*."""
    table = {r["n_tasks"]: r for r in _finite(context.table)}
    if len(table) < len(_finite(context.table)):
        raise ValueError("the claim reads one smoothing curve per M; the sweep has other axes too")
    m = _nearest_threshold(table, context)
    return table[m]["pt"] / table[m]["smoothed_dmmse"] - 1 if math.isfinite(m) else math.nan


def _decay_costs_true_loss(rows, _):
    """The transformer's T_True loss/D at the smallest weight decay over its loss at the largest, minus 1, at
    the largest M (M = inf where the sweep has it)."""
    top = [r for r in rows if r["log2_n_tasks"] == max(r["log2_n_tasks"] for r in rows)]
    by_decay = {r["weight_decay"]: r["true/pt/loss_noiseless"] for r in top}
    if len(by_decay) < len(top):
        raise ValueError("the claim reads one curve per weight_decay; the sweep has other axes too")
    return by_decay[min(by_decay)] / by_decay[max(by_decay)] - 1


def _nearer_laplace_than_ridge(rows, context):
    """Delta^True_PT,Laplace minus Delta^True_PT,Ridge (pipeline/analysis/laplace.py) at the largest M."""
    top = [r for r in context.table if r["n_tasks"] == max(r["n_tasks"] for r in context.table)]
    if len(top) != 1:
        raise ValueError("the claim reads one Laplace curve; the sweep has other axes too")
    return top[0]["true/delta_pt_laplace"] - top[0]["true/delta_pt_ridge"]


TRANSITION, PATHS, LMC = "transition_time/t_star.json", "interpolation/interpolation.json", "lmc/lmc.json"
SMOOTHING, LAPLACE = "smoothing/smoothing.json", "laplace/laplace.json"

CLAIMS = [
    Claim(
        "fig2_sweep",
        "Below the threshold the transformer behaves like dMMSE; above it, like ridge (Fig. 2).",
        (
            Paired("at the smallest M, Delta^Pre_PT,dMMSE < Delta^Pre_PT,Ridge / 10", _pt_on_dmmse_at_smallest_m),
            Paired("at the largest finite M, Delta^True_PT,Ridge < Delta^True_PT,dMMSE", _pt_nearer_ridge_at_largest_m),
        ),
    ),
    Claim(
        "fig3_data_scale",
        "More training data (here: steps; in the paper steps or batch alike) pulls the transformer towards dMMSE "
        "below the threshold and towards ridge above it, so the two data scales' Delta^True_PT,Ridge curves "
        "cross at M* (Fig. 3).",
        (
            Paired(
                "at the smallest M, the larger data scale's Delta^True_PT,Ridge > the smaller's",
                _more_data_nearer_dmmse_at_smallest_m,
            ),
            Paired(
                "at the largest finite M, the larger data scale's Delta^True_PT,Ridge < the smaller's",
                _more_data_nearer_ridge_at_largest_m,
            ),
        ),
    ),
    Claim(
        "fig4_transition_time",
        "Below the threshold the transformer first approaches ridge, then memorises its pool, later the more tasks "
        "it has: the step t* of its closest approach grows as a power of M (Fig. 4; alpha ~ 0.47 in the paper).",
        (
            Paired(
                "alpha > 0: t* ~ M^alpha over the finite M below M* with a U-shaped T_True Delta_PT,Ridge curve "
                "(the value is -alpha)",
                _t_star_exponent,
                table=TRANSITION,
            ),
        ),
    ),
    Claim(
        "fig5_interpolation",
        "Between two pool tasks dMMSE's loss bumps at every M; the transformer bumps like dMMSE at small M, beats "
        "dMMSE at the centre near the threshold and is at ridge's level at large M (Fig. 5).",
        (
            Paired(
                "at every M, dMMSE's loss/D at alpha = 1/2 > the mean of its two ends (the value: minus the "
                "smallest bump)",
                _dmmse_bump_at_every_m,
                table=PATHS,
            ),
            Paired(
                "at the smallest M, the transformer's loss/D at alpha = 1/2 > ridge's",
                _pt_bumps_at_smallest_m,
                table=PATHS,
            ),
            Paired(
                "at the M nearest M*, the transformer's loss/D at alpha = 1/2 < dMMSE's (relative difference)",
                _pt_beats_dmmse_near_threshold,
                table=PATHS,
            ),
            Within(
                "at the largest M, the transformer's loss/D at alpha = 1/2 within 10% of ridge's",
                _pt_at_ridge_at_largest_m,
                table=PATHS,
                margin=0.10,
            ),
        ),
    ),
    Claim(
        "fig6_dimension",
        "The threshold grows with the task dimension D (Fig. 6).",
        (Ordered("M* at the smallest D is below M* at the largest D", "n_dims", min, max),),
    ),
    Claim(
        "fig7_weight_decay",
        "More weight decay, lower threshold (Fig. 7, left).",
        (Ordered("M* at the largest weight decay is below M* at none", "weight_decay", max, min),),
    ),
    Claim(
        "fig10_final_accuracy",
        "Above the threshold the transformer ends as accurate on fresh tasks as the one trained on infinitely "
        "many tasks (Fig. 10).",
        (
            Within(
                "at the largest finite M (above M*), T_True loss/D within 5% of the M = inf transformer's",
                _largest_m_against_inf,
                margin=0.05,
            ),
        ),
    ),
    Claim(
        "fig11_lmc",
        "The transformer trained on few tasks is far from the M = inf one in weight space (a loss barrier on the "
        "straight line between them); above the threshold the barrier is small (Fig. 11).",
        (
            Paired(
                "the T_True loss barrier to PT(inf) at the largest finite M < at the smallest M",
                _barrier_largest_against_smallest_m,
                table=LMC,
            ),
        ),
    ),
    Claim(
        "fig12_smoothing",
        "Near the threshold the transformer beats smoothed dMMSE (the pool blurred by the best s), so it is not "
        "a smoothed version of the pool's Bayes predictor (Fig. 12).",
        (
            Paired(
                "at the finite M nearest M*, the transformer's T_True loss/D < smoothed dMMSE's (relative difference)",
                _pt_against_smoothed_near_threshold,
                table=SMOOTHING,
            ),
        ),
    ),
    Claim(
        "fig13_weight_decay_loss",
        "The weight decay that lowers the threshold costs accuracy on fresh tasks (Fig. 13).",
        (
            Paired(
                "at the largest M, T_True loss/D at the smallest weight decay < at the largest (relative difference)",
                _decay_costs_true_loss,
            ),
        ),
        entry="fig7_weight_decay",
    ),
    Claim(
        "fig14_laplace",
        "With Laplace-distributed tasks, above the threshold the transformer is nearer the Laplace prior's Bayes "
        "predictor than ridge (Fig. 14).",
        (
            Paired(
                "at the largest M, Delta^True_PT,Laplace < Delta^True_PT,Ridge",
                _nearer_laplace_than_ridge,
                table=LAPLACE,
            ),
        ),
    ),
]
CLAIMS = {claim.figure: claim for claim in CLAIMS}
