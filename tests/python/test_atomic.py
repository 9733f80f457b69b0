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
    with atomic_directory(tmp_path / "store", marker="part", what="a test store") as staging:
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


def test_output_directories_never_replace_what_they_did_not_write(tmp_path):
    """simulate -o ~/data, tiny_bundle(dir), import-checkpoint -o dir, demo -o dir and gene
    stores used to swap out whatever directory was there, user files included."""
    import bulkformer
    from bulkformer.demo import run_demo
    from bulkformer.inference.stores import GeneEmbeddingWriter

    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    bundle = tiny_bundle(n_genes=20)
    cohort = bulkformer.simulate_cohort(n_samples=6, vocabulary=bundle, n_genes=20, seed=0)
    for write in (lambda: cohort.save(data), lambda: bundle.save(data), lambda: run_demo(data, progress=False),
                  lambda: GeneEmbeddingWriter(data, n_samples=1, n_genes=2, feature_dim=3)):
        with pytest.raises(ValueError, match=r"data already exists and is not .* would replace everything in it"):
            write()
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and (data / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="is a file"):
        bundle.save(data / "notes.txt")
    # an earlier output of the same kind, or an empty directory, is replaced
    cohort.save(tmp_path / "sim")
    cohort.save(tmp_path / "sim")
    bundle.save(tmp_path / "model")
    bundle.save(tmp_path / "model")
    (tmp_path / "empty").mkdir()
    bundle.save(tmp_path / "empty")
    assert (tmp_path / "empty" / "config.json").is_file()
    # and an output of another kind is not
    with pytest.raises(ValueError, match="is not a model bundle"):
        bundle.save(tmp_path / "sim")
