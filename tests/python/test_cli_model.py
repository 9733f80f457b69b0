"""`bulkformer info` and `bulkformer import-checkpoint` end to end."""
from __future__ import annotations

import json

from typer.testing import CliRunner

import bulkformer
from bulkformer.cli import app
from tests.conftest import write_official_release

runner = CliRunner()


def test_info_lists_presets():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "147M (132,143,047 parameters)" in result.output


def test_import_checkpoint_then_info(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    out = tmp_path / "bundle"
    result = runner.invoke(app, ["import-checkpoint", str(files["checkpoint"]), "--gene-info", str(files["gene_info"]),
                                 "--graph", str(files["graph"]), "--graph-weight", str(files["graph_weight"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "v2" in result.output
    assert bulkformer.load(out).config.n_genes == 300
    described = runner.invoke(app, ["info", str(out)])
    summary = json.loads(described.output)
    assert summary["genes"] == 300 and summary["graph_edges"] == 5983
