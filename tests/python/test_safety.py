"""Pickles that would run code are refused before anything executes."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from bulkformer.safe_load import UnsafeCheckpointError, safe_torch_load


class _Hostile:
    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_hostile_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    hostile = _Hostile()
    hostile.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "payload": hostile}, path)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="weights_only=False") as info:
        safe_torch_load(path)
    assert "convert" in str(info.value)
    assert not marker.exists()


def test_hostile_pickle_through_converter_and_cli(tmp_path):
    from typer.testing import CliRunner

    from bulkformer.cli import app

    marker = tmp_path / "marker.txt"
    hostile = _Hostile()
    hostile.marker = marker
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump(hostile, handle)
    (tmp_path / "genes.csv").write_text("ensg_id\nENSG00000000001\n")
    result = CliRunner().invoke(app, ["import-checkpoint", str(tmp_path / "evil.pt"), "--gene-info", str(tmp_path / "genes.csv"),
                                      "--graph", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert isinstance(result.exception, UnsafeCheckpointError)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_damaged_bytes_are_called_corrupt_not_unsafe(tmp_path):
    """A checkpoint with damaged bytes was refused as 'unsafe', with advice to load it
    with weights_only=False: the wrong diagnosis, and dangerous advice."""
    path = tmp_path / "damaged.pt"
    torch.save({f"layer{i}.weight": torch.ones(2) for i in range(200)}, path)
    data = bytearray(path.read_bytes())
    data[1000:2000] = bytes(1000)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="empty, truncated or corrupt") as caught:
        safe_torch_load(path)
    assert not isinstance(caught.value, UnsafeCheckpointError)


def test_a_numpy_array_file_is_refused_with_a_recipe_that_makes_it_a_tensor(tmp_path):
    import numpy as np

    path = tmp_path / "graph_np.pt"
    torch.save(np.zeros((2, 5), dtype=np.int64), path)
    with pytest.raises(UnsafeCheckpointError, match=r"else torch\.as_tensor\(obj\)"):
        safe_torch_load(path)
