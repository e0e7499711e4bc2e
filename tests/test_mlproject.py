"""MLproject and the click scripts agree: same parameters, same defaults, every parameter passed on."""

import importlib

import click
import pytest
import yaml
from conftest import PROJECT

from pipeline.presets import DEFAULTS, PRESETS, resolve

ENTRY_POINTS = ("generate_pool", "evaluate_baselines", "train", "main", "predict")
SPEC = yaml.safe_load((PROJECT / "MLproject").read_text())


def test_mlproject_declares_exactly_the_entry_points():
    assert set(SPEC["entry_points"]) == set(ENTRY_POINTS)
    assert SPEC["conda_env"] == "conda.yaml"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_parameters_match_the_click_options(entry):
    declared = SPEC["entry_points"][entry]["parameters"]
    command = importlib.import_module(f"pipeline.{entry}").main
    assert list(declared) == [p.name for p in command.params]
    for param in command.params:
        spec = declared[param.name]
        assert "type" in spec and "default" in spec, param.name
        default = "" if param.default is None else param.default
        if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType):
            assert spec["type"] in ("int", "float") and spec["default"] == default, param.name
        else:
            assert spec["type"] == "string" and str(spec["default"]) == str(default), param.name
        assert f"--{param.name} {{{param.name}}}" in SPEC["entry_points"][entry]["command"], param.name
        if param.name in DEFAULTS and entry != "main":
            assert param.default == DEFAULTS[param.name], param.name


def test_presets_override_only_known_settings():
    for name, preset in PRESETS.items():
        assert set(preset) <= set(DEFAULTS), name
        assert isinstance(resolve(name, {})["n_tasks"], list)
    assert resolve("smoke", {"lr": 0.5, "n_layer": None})["lr"] == 0.5
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        resolve("nope", {})
