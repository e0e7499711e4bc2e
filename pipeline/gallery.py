"""`make figures`: the paper's figures at CPU scale, from sweeps to PNGs in docs/figures/.

Each entry of GALLERY names a CPU preset (pipeline/presets.py CPU_FIGURES) and the analysis that draws
its figure (None: the sweep's own summary figure, Fig. 2). Presets with equal settings share one sweep
run; every sweep reuses the FINISHED chains of earlier ones (pipeline/sweep/chain.py), so a rerun, or a
run after an interrupted one, trains only what is missing. Each figure is downloaded from its run to
`<out>/<name>.png`, and `<out>/findings.md` records, per figure, the runs it came from and what the
analysis found (each figure's part is also `<name>.md`, so `--only` keeps the others'), so the gallery
(README, docs/gallery.md) can be checked against the run that made it. A figure with a claim in
pipeline/claims/ gets its verdict, decided by code from the sweep's runs and the tables its analysis
logged (Fig. 13's claim is decided on Fig. 7's sweep): `<out>/claims.json` (per figure: the claim, each
criterion's number with its 95% interval and verdict, the claim's verdict) and a table atop findings.md.
"""

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import click
import mlflow

from pipeline.analysis.sweep_runs import open_sweep, read_table
from pipeline.analyze import analyze
from pipeline.bounds import training_flops
from pipeline.claims import CLAIMS
from pipeline.claims.report import claims_table, readme_verdicts
from pipeline.cli import EntryCommand, entry_point
from pipeline.main import sweep
from pipeline.presets import CPU_FIGURES, resolve
from pipeline.settings import build, flat, same_params
from pipeline.sweep.chain import GENERATE_POOL, LINKS, train_settings
from pipeline.sweep.grid import grid
from pipeline.tracking.store import PROJECT_DIR
from pipeline.types import InputError, as_text


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str  # the PNG's name in docs/figures
    preset: str
    kind: str | None  # the analysis; None: the sweep's summary figure
    title: str


GALLERY = [
    Entry("fig2_sweep", "fig2_cpu", None, "Fig. 2: the transition against M"),
    Entry("fig3_data_scale", "fig3_cpu", "data_scale", "Fig. 3: more steps"),
    Entry("fig4_transition_time", "fig4_cpu", "transition_time", "Fig. 4: transition time"),
    Entry("fig5_interpolation", "fig5_cpu", "interpolation", "Fig. 5: interpolation paths"),
    Entry("fig6_dimension", "fig6_cpu", "dimension", "Fig. 6: task dimension"),
    Entry("fig7_weight_decay", "fig7_wd_cpu", "thresholds", "Figs. 7 and 13: weight decay and the threshold"),
    Entry("fig7_width", "fig7_width_cpu", "thresholds", "Fig. 7 (middle): embedding width and the threshold"),
    Entry("fig7_depth", "fig7_depth_cpu", "thresholds", "Fig. 7 (right): depth and the threshold"),
    Entry("fig10_final_accuracy", "fig10_cpu", "final_accuracy", "Fig. 10: final accuracy above the threshold"),
    Entry("fig11_lmc", "fig11_cpu", "lmc", "Fig. 11: linear mode connectivity"),
    Entry("fig12_smoothing", "fig12_cpu", "smoothing", "Fig. 12: smoothed dMMSE"),
    Entry("fig14_laplace", "fig14_cpu", "laplace", "Fig. 14: a Laplace task prior"),
    Entry("setting_ridge", "ridge_cpu", None, "The CPU setting: the M = inf transformer against ridge"),
]
ARTIFACTS = {
    None: "summary/sweep.png",
    "data_scale": "data_scale/data_scale.png",
    "transition_time": "transition_time/transition_time.png",
    "interpolation": "interpolation/interpolation.png",
    "thresholds": "thresholds/thresholds.png",
    "final_accuracy": "final_accuracy/final_accuracy.png",
    "smoothing": "smoothing/smoothing.png",
    "lmc": "lmc/lmc.png",
    "dimension": "dimension/dimension.png",
    "laplace": "laplace/laplace.png",
}
assert set(CPU_FIGURES) == {entry.preset for entry in GALLERY}


def make_gallery(tracking, names, out, seed_offset=0, replicates=None):
    """Run the sweeps and analyses of the GALLERY entries in `names` (all when empty), every seed shifted by
    `seed_offset`, with `replicates` (None: the presets'), and write their PNGs, findings.md and claims.json
    to `out`; returns {name: (sweep run id, figure run id)}."""
    unknown = sorted(set(names) - {entry.name for entry in GALLERY})
    if unknown:
        raise InputError(f"unknown figure {unknown[0]!r}; choose from {[e.name for e in GALLERY]}")
    entries = [entry for entry in GALLERY if not names or entry.name in names]
    out.mkdir(parents=True, exist_ok=True)
    client = tracking.client()
    start = time.monotonic()
    sweeps, made = [], {}  # sweeps: [(resolved settings, run id)]
    verdicts = _read_claims(out / "claims.json")  # earlier runs' verdicts of figures not made this time
    overrides = {"seed_offset": seed_offset, "replicates": replicates}
    todo, work = remaining(tracking, entries, overrides)
    click.echo(f"=== figures: {todo} training(s) to run (about {work:.2g} FLOPs); finished ones are reused")
    for i, entry in enumerate(entries, 1):
        click.echo(f"=== figures {i}/{len(entries)}: {entry.name} ({entry.title}), preset {entry.preset}")
        settings = resolve(entry.preset, overrides)
        sweep_id = next((run_id for s, run_id in sweeps if s == settings), None)
        if sweep_id is None:
            sweep_id = sweep(tracking, entry.preset, overrides)
            sweeps.append((settings, sweep_id))
        if entry.kind is None:
            run_id = sweep_id
            tags = client.get_run(sweep_id).data.tags
            findings = [f"- {tags.get('threshold', 'no threshold')} (rule: {tags.get('threshold_rule', '-')})"]
        else:
            run_id, findings = analyze(tracking, entry.kind, f"runs:/{sweep_id}")
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=ARTIFACTS[entry.kind], tracking_uri=tracking.uri
        )
        target = out / f"{entry.name}.png"
        _write(target, Path(local).read_bytes())
        made[entry.name] = (sweep_id, run_id)
        minutes = (time.monotonic() - start) / 60
        left, work_left = remaining(tracking, entries[i:], overrides)
        eta = (
            f", about {minutes * work_left / (work - work_left):.0f} min to go at this pace" if work > work_left else ""
        )
        click.echo(f"wrote {target} ({minutes:.1f} min since the start; {left} training(s) left{eta})")
        note = [f"## {entry.title}: `{entry.name}.png`", ""]
        note += [f"Preset `{entry.preset}`, sweep `runs:/{sweep_id}`, figure from `runs:/{run_id}`.", ""]
        _write(out / f"{entry.name}.md", "\n".join([*note, *findings, ""]).encode())
        for claim in (claim for claim in CLAIMS.values() if (claim.entry or claim.figure) == entry.name):
            swept = open_sweep(client, f"runs:/{sweep_id}")
            tables = {path: read_table(client, run_id, path)[1] for path in claim.tables}
            verdicts[claim.figure] = claim.evaluate(swept.rows, swept.axes, tables) | {"sweep": sweep_id}
            if tables:
                verdicts[claim.figure]["analysis"] = run_id
            click.echo(f"claim of {claim.figure}: {verdicts[claim.figure]['verdict']}")
        _write_findings(out, verdicts, len(made), (time.monotonic() - start) / 60, seed_offset)  # a stop keeps it
    click.echo(f"figures: {len(made)} in {out}; what each found: {out / 'findings.md'}")
    return made


def _write_findings(out, verdicts, made, minutes, seed_offset):
    """claims.json, findings.md (the claims' table, then each figure's findings) and the README's verdicts,
    as they stand after `made` figures of this run: written after each figure."""
    header = [
        "# Findings of the runs that made these figures",
        "",
        f"Written by `make figures` (pipeline/gallery.py); its last run, on {time.strftime('%Y-%m-%d %H:%M')}, "
        f"made {made} figure(s) in {minutes:.1f} min (runs reused from earlier sweeps take no time)"
        + (f", every seed shifted by {seed_offset}." if seed_offset else "."),
        "",
    ]
    notes = [(out / f"{e.name}.md").read_text() for e in GALLERY if (out / f"{e.name}.md").exists()]
    ordered = _no_nan([verdicts[name] for name in CLAIMS if name in verdicts])
    _write(out / "claims.json", json.dumps({"claims": ordered}, indent=1).encode())
    _write(out / "findings.md", "\n".join(header + claims_table(ordered) + notes).encode())
    if out == PROJECT_DIR / "docs" / "figures" and (readme := PROJECT_DIR / "README.md").exists():
        _write(readme, readme_verdicts(readme.read_text(), ordered).encode())  # the gallery's verdicts


def remaining(tracking, entries, overrides):
    """(trainings, their estimated FLOPs: pipeline/bounds.py) of the sweeps of GALLERY `entries` that have no
    FINISHED train run yet: one with the same params, its pool and baselines runs aside but M included (as a
    sweep reuses them, pipeline/sweep/chain.py; an estimate: a sweep also checks that its pool and baselines
    runs match, e.g. their seeds)."""
    client, done = tracking.client(), {}
    where = "tags.stage = 'train' and attributes.status = 'FINISHED'"
    token = None
    while True:  # every finished training, page by page, by M
        page = client.search_runs([tracking.experiment_id], where, max_results=1000, page_token=token)
        for run in page:
            done.setdefault(run.data.params.get("n_tasks"), []).append(run.data.params)
        token = page.token
        if not token:
            break
    seen, count, work = set(), 0, 0.0
    for entry in entries:
        for point in grid(resolve(entry.preset, overrides), 0):
            settings = train_settings(point)
            wanted = {k: v for k, v in flat(settings).items() if k not in ("pool", "baselines", "model")}
            if not wanted["threads"]:  # 0: whatever count the sweep's executor gives it
                del wanted["threads"]
            wanted["n_tasks"] = point.values["n_tasks"]  # a train run's param, from its pool
            pool = flat(build(GENERATE_POOL.settings, point.values | LINKS))  # what else tells pools apart
            key = tuple(
                sorted((k, as_text(v)) for k, v in (wanted | {f"pool/{k}": v for k, v in pool.items()}).items())
            )
            if key in seen:
                continue
            seen.add(key)
            candidates = done.get(as_text(point.values["n_tasks"]), [])
            if not any(same_params(params, wanted) and _same_pool(params, pool) for params in candidates):
                count, work = count + 1, work + training_flops(settings)
    return count, work


def _same_pool(params, pool):
    """Whether a train run's params (which carry its pool's task_prior, task_scale and n_tasks) match `pool`'s
    settings on those (a Laplace pool's training is another training than a Gaussian one's)."""
    return all(as_text(params.get(k)) == as_text(pool[k]) for k in ("task_prior", "task_scale") if k in params)


def _read_claims(path):
    """{figure: verdict} of an earlier claims.json at `path` (none: {})."""
    if not path.exists():
        return {}
    return {claim["figure"]: claim for claim in json.loads(path.read_text())["claims"]}


def _no_nan(value):
    """`value` with every NaN as None: JSON has no NaN (Python would write one that other readers refuse)."""
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _write(path, data):
    """Write `data` to `path` through a temporary file: an interrupted run leaves no half-written figure."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


@click.command(
    cls=EntryCommand,
    help="The paper's figures at CPU scale: runs the CPU presets' sweeps (reusing finished runs) and their "
    "analyses, and writes the PNGs to docs/figures/.",
)
@click.option(
    "--only",
    type=click.STRING,
    default="",
    help="comma list of figures to make (empty: all): " + ", ".join(e.name for e in GALLERY),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for the PNGs and findings.md [default: docs/figures, or docs/figures/seed_offset_<k>].",
)
@click.option(
    "--seed_offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="added to every seed of every sweep: the gallery again on seeds nobody chose (make figures SEED_OFFSET=k).",
)
@click.option(
    "--replicates",
    type=click.IntRange(min=1),
    default=None,
    help="trainings of every grid point, each with seeds of its own (make figures REPLICATES=n) [default: the "
    "presets']; a claim's verdict needs at least 2.",
)
@entry_point
def main(tracking, only, out, seed_offset, replicates):
    out = out or PROJECT_DIR / "docs" / "figures" / (f"seed_offset_{seed_offset}" if seed_offset else "")
    make_gallery(tracking, [name for name in only.split(",") if name], out, seed_offset, replicates)


if __name__ == "__main__":
    main()
