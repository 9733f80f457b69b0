"""`bulkformer info` and `bulkformer import-checkpoint` end to end."""
from __future__ import annotations

import json

from typer.testing import CliRunner

import bulkformer
from bulkformer.cli import app
from tests.conftest import load_reference, reference_config, write_official_release

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
    n_genes = reference_config("v2_tiny")["gene_length"]
    assert bulkformer.load(out).config.n_genes == n_genes
    described = runner.invoke(app, ["info", str(out)])
    summary = json.loads(described.output)
    n_edges = load_reference("v2_tiny", "graph").shape[1]
    assert summary["genes"] == n_genes and summary["graph_edges"] == n_edges


def test_cli_reports_unreadable_and_unsafe_checkpoints_without_traceback(tmp_path, monkeypatch, capsys):
    import pickle
    import sys

    import pytest

    from bulkformer.cli.main import main

    files = write_official_release("v2_tiny", tmp_path / "release")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(print))  # any global beyond tensors is refused
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for checkpoint, expected in ((evil, "refused to load"), (empty, "cannot read")):
        monkeypatch.setattr(sys, "argv", ["bulkformer", "import-checkpoint", str(checkpoint), "--gene-info",
                                          str(files["gene_info"]), "--graph", str(files["graph"]), "-o", str(tmp_path / "out")])
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        assert exited.value.code == 2 and f"error: {expected}" in err and "Traceback" not in err, err
        assert not (tmp_path / "out").exists()


def test_cli_advice_keeps_file_names_and_names_off_switches():
    from bulkformer.cli.main import as_cli_advice

    message = ("this bundle has no per-gene feature table (gene_features.safetensors) to fuse; "
               "import the release with its gene feature table (import_checkpoint's gene_features), or use "
               "fuse_gene_features=False")
    assert as_cli_advice(message, ["embed"]) == (
        "this bundle has no per-gene feature table (gene_features.safetensors) to fuse; "
        "import the release with its gene feature table (import_checkpoint's --gene-features), or use "
        "--no-fuse-gene-features")
    assert as_cli_advice("pass progress=False", ["impute"]) == "pass --no-progress"
