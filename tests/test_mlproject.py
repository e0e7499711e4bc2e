"""MLproject is generated from the click options, and every option is written once."""

import math
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from conftest import PROJECT

from pipeline import mlproject
from pipeline.presets import PRESETS, SWEEP_OPTIONS, resolve
from pipeline.settings import DEFAULTS, OPTIONS
from pipeline.types import InputError

SPEC = yaml.safe_load((PROJECT / "MLproject").read_text())
LINK = {"link": "n_dims,n_points"}


def test_mlproject_is_generated_from_the_options():
    result = CliRunner().invoke(mlproject.main, ["--check"])
    assert result.exit_code == 0, result.output
    assert set(SPEC["entry_points"]) == set(mlproject.ENTRY_POINTS) and SPEC["conda_env"] == "conda.yaml"


def test_generated_parameters_keep_types_and_defaults():
    train = SPEC["entry_points"]["train"]["parameters"]
    assert train["lr"] == {"type": "float", "default": 1e-3} and train["n_layer"] == {"type": "int", "default": 8}
    assert SPEC["entry_points"]["generate_pool"]["parameters"]["n_tasks"] == {"type": "string", "default": "1024"}
    # main declares only preset (declared options would be logged as "" on the sweep's run); the others are
    # listed in a comment and passed through by `mlflow run` as --name value.
    assert SPEC["entry_points"]["main"]["parameters"] == {"preset": {"type": "string", "default": "smoke"}}
    comment = " ".join(line for line in (PROJECT / "MLproject").read_text().splitlines() if line.startswith("  #"))
    assert all(f" {name}," in comment or comment.endswith(f" {name}") for name in SWEEP_OPTIONS)
    for entry, spec in SPEC["entry_points"].items():
        for name in spec["parameters"]:
            assert f"--{name} {{{name}}}" in spec["command"], (entry, name)


def test_presets_override_only_known_settings():
    for name, preset in PRESETS.items():
        assert set(preset) <= set(SWEEP_OPTIONS), name
    assert resolve("smoke", {"lr": [0.5], "n_layer": None}).options["lr"] == (0.5,)
    assert resolve("smoke", {}).options["n_tasks"] == (4, 64, math.inf)
    with pytest.raises(InputError, match="unknown preset 'nope'"):
        resolve("nope", {})
    with pytest.raises(InputError, match="workers takes one value, got 1,2"):
        resolve("smoke", {"workers": [1, 2]})


def test_a_sweep_logs_each_option_once_as_it_ran():
    """SweepSettings.params: an axis's values joined, n_tasks always; the replicate axis said by `replicates`;
    a checkpoint at every evaluation said as its step; the executor, pack and work limit that applied; Ray's
    address (local by default) instead of a worker count, and the reverse."""
    settings = resolve("smoke", {"lr": [1e-3, 2e-3], "replicates": 2, "n_dims": [2, 4], "n_points": [4, 8]} | LINK)
    assert settings.axes == ("n_tasks", "n_dims", "n_points", "lr", "replicate")  # option order, replicate last
    process = SimpleNamespace(name="process", workers=2)
    params = settings.params(process, 3, 1e15)
    assert params["preset"] == "smoke" and params["lr"] == "0.001,0.002" and params["n_tasks"] == "4,64,inf"
    assert params["n_layer"] == PRESETS["smoke"].get("n_layer", DEFAULTS["n_layer"])
    assert params["link"] == "n_dims,n_points" and params["replicates"] == 2 and "replicate" not in params
    assert params["checkpoint_every"] == params["eval_every"]
    assert (params["executor"], params["workers"], params["pack"], params["max_work"]) == ("process", 2, 3, 1e15)
    assert "ray_address" not in params
    ray = settings.params(SimpleNamespace(name="ray", workers=4), 1, 1e15)
    assert ray["ray_address"] == "local" and "workers" not in ray
    assert "link" not in resolve("smoke", {}).params(process, 1, 1e15)  # none linked: no param


def test_every_option_is_defined_once_with_a_default_and_help():
    assert set(DEFAULTS) == set(OPTIONS)
    for name, option in OPTIONS.items():
        assert len(option.help) > 15, name
