"""Transition time (paper Fig. 4): Delta_PT,Ridge against training step, one curve per M; t* (the step of
its minimum) against M on log-log axes, with a power-law fit t* ~ M^alpha over the M whose curve is
U-shaped (the transformer first approaches ridge, then memorises its pool: below the threshold). The
paper reports alpha ~ 0.47 for M <= 2^10 at 500k steps of the small model, batch 512."""

import math

from matplotlib.figure import Figure

from pipeline.analysis.fits import power_law, t_star, u_shaped
from pipeline.analysis.sweep_runs import Analysis, history
from pipeline.figures import TITLES
from pipeline.types import InputError

KEYS = {dist: f"{dist}/delta_pt_ridge" for dist in ("pretrain", "true")}


def transition_time(client, sweep):
    """The Analysis of `sweep` (a sweep_runs.Sweep): per curve of the sweep (its values on the axes other
    than M) and distribution, every train run's Delta_PT,Ridge history, t*, and the power-law fit."""
    table = {"curve": [], "dist": [], "n_tasks": [], "log2_n_tasks": [], "t_star": [], "u_shaped": [], "train_run": []}
    histories, metrics, findings = {}, {}, []
    for row in sweep.rows:
        for dist, key in KEYS.items():
            # At M = inf every task is fresh: T_Pretrain is T_True, and only the latter is tracked.
            steps, values = history(client, row["train_run"], KEYS["true"] if row["n_tasks"] == math.inf else key)
            if not steps:
                raise InputError(f"train run {row['train_run']} has no {key} history")
            histories[sweep.curve(row), dist, row["n_tasks"]] = (steps, values)
            table["curve"].append(sweep.curve(row))
            table["dist"].append(dist)
            table["n_tasks"].append("inf" if row["n_tasks"] == math.inf else row["n_tasks"])
            table["log2_n_tasks"].append(row["log2_n_tasks"])
            table["t_star"].append(t_star(steps, values))
            table["u_shaped"].append(bool(u_shaped(steps, values)))
            table["train_run"].append(row["train_run"])
    fits = {}
    for curve in dict.fromkeys(table["curve"]):
        for dist in KEYS:
            picked = [
                (2 ** table["log2_n_tasks"][i], table["t_star"][i])
                for i in range(len(table["curve"]))
                if table["curve"][i] == curve
                and table["dist"][i] == dist
                and table["u_shaped"][i]
                and math.isfinite(table["log2_n_tasks"][i])
            ]
            suffix = f"{dist}" + (f"/{curve}" if curve else "")
            if len({m for m, _ in picked}) < 2:
                findings.append(f"- {suffix}: fewer than two U-shaped curves at finite M: no power-law fit")
                continue
            alpha, intercept = power_law(*zip(*picked, strict=True))
            fits[curve, dist] = (alpha, intercept, [m for m, _ in picked])
            low, high = math.log2(min(m for m, _ in picked)), math.log2(max(m for m, _ in picked))
            metrics |= {f"alpha/{suffix}": alpha, f"fit_log2_n_tasks_min/{suffix}": low}
            metrics |= {f"fit_log2_n_tasks_max/{suffix}": high, f"fit_points/{suffix}": len(picked)}
            findings.append(
                f"- {suffix}: t* ~ M^{alpha:.2f} over M = 2^{low:g} ... 2^{high:g} ({len(picked)} U-shaped curves; "
                "the paper: alpha ~ 0.47)"
            )
    return Analysis(
        figures={"transition_time/transition_time.png": _figure(histories, table, fits, sweep.setting)},
        tables={"transition_time/t_star.json": table},
        metrics=metrics,
        findings=findings,
        runs=sorted(set(table["train_run"])),
    )


def _figure(histories, table, fits, setting):
    """Left, centre: Delta_PT,Ridge against step per M (log-log), T_Pretrain and T_True; right: t* against M."""
    fig = Figure(figsize=(16, 4.8))
    panels = fig.subplots(1, 3)
    curves = list(dict.fromkeys(table["curve"]))
    for ax, dist in zip(panels[:2], KEYS, strict=True):
        ms = sorted({m for (_, d, m) in histories if d == dist})
        for (curve, d, m), (steps, values) in histories.items():
            if d != dist:
                continue
            shade = ms.index(m) / max(1, len(ms) - 1)
            label = ("M = inf" if m == math.inf else f"M = 2^{math.log2(m):g}") + (f" ({curve})" if curve else "")
            ls = ("-", "--", "-.", ":")[curves.index(curve) % 4]
            color = "black" if m == math.inf else (0.1 + 0.8 * shade, 0.2, 0.9 - 0.8 * shade)
            ax.plot(steps, values, ls=ls, color=color, label=label)
        ax.set(xscale="log", yscale="log", xlabel="training step", title=f"{TITLES[dist]}: " + r"$\Delta_{PT,Ridge}$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    ax = panels[2]
    for c, curve in enumerate(curves):
        for d, dist in enumerate(KEYS):
            points = [
                (2 ** table["log2_n_tasks"][i], table["t_star"][i], table["u_shaped"][i])
                for i in range(len(table["curve"]))
                if table["curve"][i] == curve and table["dist"][i] == dist and math.isfinite(table["log2_n_tasks"][i])
            ]
            color = f"C{(2 * c + d) % 10}"
            name = f"{'T_Pretrain' if dist == 'pretrain' else 'T_True'}" + (f" {curve}" if curve else "")
            ax.scatter([m for m, _, u in points if u], [t for _, t, u in points if u], color=color, label=f"{name}: U")
            ax.scatter(
                [m for m, _, u in points if not u],
                [t for _, t, u in points if not u],
                color=color,
                marker="x",
                label=f"{name}: minimum at an end",
            )
            if (curve, dist) in fits:
                alpha, intercept, ms = fits[curve, dist]
                xs = [min(ms), max(ms)]
                ax.plot(
                    xs, [2 ** (alpha * math.log2(x) + intercept) for x in xs], color=color, label=f"alpha = {alpha:.2f}"
                )
    ax.set(xscale="log", yscale="log", xlabel="M (number of pretraining tasks)", ylabel="t* (step of the minimum)")
    ax.set_title(r"t* = argmin over steps of $\Delta_{PT,Ridge}$")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.suptitle(
        "Transition time: the transformer approaches ridge, then (below the threshold) memorises its pool\n" + setting
    )
    fig.tight_layout()
    return fig
