"""Another CPU's kernels (ATEN_CPU_CAPABILITY, how `make test-cpus` checks them) and torch.compile: inductor's
on-disk cache leaves the capability out of its key, so a kernel it cached under one capability fails to
build under another ("'at::vec' has not been declared", measured: avx512 then default). `compiled` gives each
capability a cache folder of its own, unless the user chose one."""

import getpass
import os
import tempfile

import pytest
import torch

from models.strategies import compiled

SHARED = os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """Both variables restored after each test, set or not before it: `compiled` sets the cache folder
    itself, and monkeypatch restores only what it recorded (a delenv of an unset variable records nothing,
    which left later tests compiling into the avx2 folder on this CPU's kernels: an abort)."""
    for key in ("ATEN_CPU_CAPABILITY", "TORCHINDUCTOR_CACHE_DIR"):
        monkeypatch.setenv(key, "recorded")
        monkeypatch.delenv(key)


def test_each_capability_compiles_into_a_cache_folder_of_its_own(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    compiled(torch.nn.Linear(2, 2))  # compiles at its first call only
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == SHARED + "_avx2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", SHARED)  # as importing inductor leaves it
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    compiled(torch.nn.Linear(2, 2))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == SHARED + "_default"


def test_a_cache_folder_the_user_chose_or_no_capability_is_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    compiled(torch.nn.Linear(2, 2))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    compiled(torch.nn.Linear(2, 2))
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ or os.environ["TORCHINDUCTOR_CACHE_DIR"] == SHARED
