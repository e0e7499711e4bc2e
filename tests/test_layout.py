"""The layout's rules (docs/architecture.md): imports point one way, the MLflow plumbing stays in
pipeline/tracking/ and the entry points, and no source file passes 300 lines."""

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def imports_of(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["tasks", "models", "baselines"])
def test_library_packages_import_no_tracking_no_cli_and_not_each_other(package):
    forbidden = {"mlflow", "click", "pipeline", *({"tasks", "models", "baselines"} - {package})}
    for path in sorted((PROJECT / package).rglob("*.py")):
        assert not imports_of(path) & forbidden, path


def test_no_source_file_over_300_lines():
    for folder in ("tasks", "models", "baselines", "pipeline", "tests", "benchmarks"):
        for path in (PROJECT / folder).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 300, path


# What the entry points share besides tracking: computations and the boundary's types, none of which logs.
UNTRACKED = ("evaluation", "stats", "bounds", "devices", "types", "settings", "shutdown", "figures", "presets")


@pytest.mark.parametrize("module", UNTRACKED)
def test_the_shared_computations_import_no_mlflow_and_no_tracking(module):
    path = PROJECT / "pipeline" / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] == "mlflow" or name.startswith("pipeline.tracking")}


def test_the_embedded_store_and_the_gallery_live_in_the_project_root():
    """PROJECT_DIR (where the default SQLite store, its artifacts and docs/figures go) is the project's root,
    wherever the module that defines it sits."""
    from pipeline.tracking.store import PROJECT_DIR

    assert PROJECT_DIR == PROJECT and (PROJECT_DIR / "MLproject").is_file()
