"""MLproject is generated from the click options, and every option is written once."""

import math

import pytest
import yaml
from click.testing import CliRunner
from conftest import PROJECT

from pipeline import mlproject
from pipeline.presets import PRESETS, SWEEP_OPTIONS, resolve
from pipeline.settings import DEFAULTS, OPTIONS
from pipeline.types import InputError

SPEC = yaml.safe_load((PROJECT / "MLproject").read_text())


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
    assert resolve("smoke", {"lr": [0.5], "n_layer": None})["lr"] == [0.5]
    assert resolve("smoke", {})["n_tasks"] == [4, 64, math.inf]
    with pytest.raises(InputError, match="unknown preset 'nope'"):
        resolve("nope", {})
    with pytest.raises(InputError, match="workers takes one value, got 1,2"):
        resolve("smoke", {"workers": [1, 2]})


def test_every_option_is_defined_once_with_a_default_and_help():
    assert set(DEFAULTS) == set(OPTIONS)
    for name, option in OPTIONS.items():
        assert len(option.help) > 15, name
