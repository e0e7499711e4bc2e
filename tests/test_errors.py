"""Errors: a user's bad value is one line naming the option; anything else is a bug and keeps its traceback; a
store's transient failure is retried (pipeline/tracking/store.py), any other is not."""

import numpy as np
import pytest
import tenacity
from click.testing import CliRunner
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from pipeline import generate_pool
from pipeline.tracking.store import Retrying


def test_a_bad_value_is_one_line_naming_the_option(store):
    result = CliRunner().invoke(generate_pool.main, ["--n_tasks", "2.5"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: Invalid value for '--n_tasks': n_tasks must be a positive integer or inf, got '2.5'"
    )


@pytest.mark.parametrize("bug", [ValueError("operands could not be broadcast"), np.linalg.LinAlgError("Singular")])
def test_a_bug_keeps_its_traceback(store, monkeypatch, bug):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(generate_pool, "make_pool", broken)
    result = CliRunner().invoke(generate_pool.main, ["--n_tasks", "4"])
    assert result.exit_code == 1 and result.exception is bug  # not turned into a one-line "Error: ..."
    assert "Error:" not in result.output


def test_bad_prompts_files_are_one_line(sweep, tmp_path):
    from conftest import MODEL_NAME

    from pipeline import predict

    np.savez(tmp_path / "nan.npz", xs=np.full((2, 4, 4), np.nan), ys=np.zeros((2, 4)))
    (tmp_path / "text.npz").write_text("not an archive")
    cases = {
        tmp_path / "nan.npz": "hold NaN or infinite values",
        tmp_path / "text.npz": "is not a readable .npz of arrays",
        tmp_path / "missing.npz": "is not a readable .npz of arrays",
    }
    for path, message in cases.items():
        result = CliRunner().invoke(predict.main, ["--model", f"models:/{MODEL_NAME}@m4", "--prompts", str(path)])
        [line] = result.output.strip().splitlines()
        assert result.exit_code == 1 and line.startswith("Error: prompts=") and message in line, result.output


def test_transient_store_errors_are_retried_and_others_are_not(monkeypatch):
    monkeypatch.setattr(Retrying, "WAIT", tenacity.wait_none())
    calls = []

    class Store:
        def write(self):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("(sqlite3.OperationalError) database is locked")
            if len(calls) == 2:
                raise MlflowException("try later", error_code=TEMPORARILY_UNAVAILABLE)
            return "written"

        def always_locked(self):
            calls.append(1)
            raise RuntimeError("(sqlite3.OperationalError) database is locked")

        def broken(self):
            calls.append(1)
            raise ValueError("a bug")

    assert Retrying(Store()).write() == "written" and len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError, match="a bug"):
        Retrying(Store()).broken()
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(RuntimeError, match="database is locked"):  # given up after its attempts, as it was
        Retrying(Store()).always_locked()
    assert len(calls) == Retrying.ATTEMPTS
