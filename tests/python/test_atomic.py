"""Outputs written through bulkformer.atomic: whole or absent, and with the mode a plain
open()/mkdir() would give (mkstemp/mkdtemp alone would leave them private)."""
from __future__ import annotations

import os
import stat

import pytest

from bulkformer.atomic import atomic_directory, atomic_file
from bulkformer.datasets.tiny import tiny_bundle


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_get_the_umask_mode(tmp_path, umask_022):
    with atomic_file(tmp_path / "table.csv") as staging:
        staging.write_text("a,b\n1,2\n")
    with atomic_directory(tmp_path / "store") as staging:
        (staging / "part").write_text("x")
    assert _mode(tmp_path / "table.csv") == 0o644
    assert _mode(tmp_path / "store") == 0o755


def test_saved_bundle_is_readable_by_others(tmp_path, umask_022):
    tiny_bundle(n_genes=20).save(tmp_path / "model")
    modes = {p.name: _mode(p) for p in [tmp_path / "model", *(tmp_path / "model").iterdir()]}
    assert modes == {name: (0o755 if name == "model" else 0o644) for name in modes}, modes


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "table.csv") as staging:
            staging.write_text("partial")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
