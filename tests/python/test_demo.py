"""`bulkformer demo --fast` end to end: report, figures, metrics and model on disk."""
from __future__ import annotations

import json

from typer.testing import CliRunner

import bulkformer
from bulkformer.cli import app


def test_demo_fast_writes_a_complete_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--fast", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"open {out / 'report.html'}" in result.output
    for name in ("report.html", "metrics.json", "figures/training.png", "figures/imputation.png", "figures/embedding.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("masked_pcc", "gene_mean_pcc", "knn_pcc"):
        assert -1.0 <= metrics[key] <= 1.0
    # the baselines are real imputers on this data, far from chance
    assert metrics["gene_mean_pcc"] > 0.5 and metrics["knn_pcc"] > 0.5
    html = (out / "report.html").read_text()
    assert "figures/imputation.png" in html and f"{metrics['knn_pcc']:.4f}" in html
    assert bulkformer.load(out / "model").metadata["pretraining"]["steps"] == metrics["pretrain_steps"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
