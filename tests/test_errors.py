"""Errors: a user's bad value is one line naming the option; anything else is a bug and keeps its traceback."""

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import generate_pool


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
