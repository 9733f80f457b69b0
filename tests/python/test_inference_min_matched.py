"""A targeted panel (few vocabulary genes) fails by default and goes through once the
caller lowers min_matched_fraction, in the Python API and the CLI alike."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bulkformer
from bulkformer.cli import app
from bulkformer.datasets import tiny_bundle


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    bundle = tiny_bundle(path, n_genes=100)
    genes = bundle.gene_ids[:20]  # 20% of the vocabulary
    counts = pd.DataFrame(np.random.default_rng(0).poisson(30, (3, 20)), index=["a", "b", "c"], columns=genes)
    return path, counts


def test_panel_needs_lower_min_matched_fraction(panel):
    path, counts = panel
    with pytest.raises(ValueError, match="min_matched_fraction"):
        bulkformer.impute(counts, path, progress=False)
    imputed = bulkformer.impute(counts, path, min_matched_fraction=0.1, progress=False)
    assert imputed.shape == (3, 80) and np.isfinite(imputed.to_numpy()).all()
    assert imputed.attrs["mapping_report"]["n_matched"] == 20
    embedding = bulkformer.embed(counts, path, min_matched_fraction=0.1, progress=False)
    assert embedding.shape[0] == 3


def test_cli_min_matched_fraction(panel, tmp_path):
    path, counts = panel
    counts.to_csv(tmp_path / "panel.csv")
    args = ["impute", str(tmp_path / "panel.csv"), "-m", str(path), "-o", str(tmp_path / "out.csv"), "--no-progress"]
    assert CliRunner().invoke(app, args).exit_code != 0
    result = CliRunner().invoke(app, [*args, "--min-matched-fraction", "0.1"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out.csv", index_col=0).shape == (3, 80)
