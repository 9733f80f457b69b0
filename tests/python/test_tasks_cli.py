"""`bulkformer evaluate <task>` end to end on a tiny bundle and a simulated cohort."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import bulkformer
from bulkformer.cli.main import app


def _require_pipeline():
    prepare = pytest.importorskip("bulkformer.preprocess")
    inference = pytest.importorskip("bulkformer.inference")
    if not hasattr(prepare, "prepare") or not hasattr(inference, "embed"):
        pytest.skip("bulkformer.preprocess.prepare / bulkformer.inference.embed not available yet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_tasks")
    bundle = bulkformer.tiny_bundle(root / "model", n_genes=80, seed=0)
    cohort = bulkformer.simulate_cohort(n_samples=30, vocabulary=bundle, n_genes=80, seed=5, n_tissues=3)
    cohort.log_tpm.to_csv(root / "logtpm.csv")
    cohort.obs.to_csv(root / "obs.tsv", sep="\t")
    return root, cohort


def test_classification_and_prognosis_commands(files):
    _require_pipeline()
    root, _ = files
    runner = CliRunner()
    out = root / "cls.json"
    res = runner.invoke(app, ["evaluate", "classification", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--labels", str(root / "obs.tsv"), "--column", "tissue", "-m", str(root / "model"),
                              "--folds", "3", "--trees", "10", "--pca", "5", "-o", str(out), "--plot", str(root / "cls.png")])
    assert res.exit_code == 0, res.output
    assert "weighted_f1" in res.output
    payload = json.loads(out.read_text())
    assert {m["features"] for m in payload["metrics"]} == {"embedding", "raw_logtpm"}
    assert (root / "cls.png").stat().st_size > 1000
    res = runner.invoke(app, ["evaluate", "prognosis", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--survival", str(root / "obs.tsv"), "--time-column", "survival_time",
                              "--event-column", "event", "-m", str(root / "model"), "--folds", "3", "--trees", "10"])
    assert res.exit_code == 0, res.output
    assert "c_index" in res.output


def test_user_errors_exit_cleanly(files, monkeypatch, capsys):
    root, _ = files
    from bulkformer.cli.main import main

    monkeypatch.setattr("sys.argv", ["bulkformer", "evaluate", "classification", str(root / "logtpm.csv"),
                                     "--labels", str(root / "missing.tsv"), "-m", str(root / "model")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "labels file" in err and "does not exist" in err

    from bulkformer.tasks import features as task_features

    def no_embedding(*args, **kwargs):
        raise AssertionError("the fold check must come before the embedding pass")

    monkeypatch.setattr(task_features, "feature_sets", no_embedding)
    monkeypatch.setattr("sys.argv", ["bulkformer", "evaluate", "classification", str(root / "logtpm.csv"), "--input",
                                     "logtpm", "--labels", str(root / "obs.tsv"), "--column", "tissue", "-m", str(root / "model"),
                                     "--folds", "500"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "500-fold CV needs at least 500 labelled samples" in capsys.readouterr().err


def test_gene_survival_and_drug_response_commands(files):
    _require_pipeline()
    root, cohort = files
    runner = CliRunner()
    genes = cohort.gene_ids[:3]
    res = runner.invoke(app, ["evaluate", "gene-survival", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--survival", str(root / "obs.tsv"), "--time-column", "survival_time", "--event-column", "event",
                              "--genes", ",".join(genes), "-m", str(root / "model"), "--plot", str(root / "km.png")])
    assert res.exit_code == 0, res.output
    assert "hazard_ratio" in res.output and (root / "km.png").exists()
    long = cohort.drug_response.stack().rename("response").reset_index().rename(columns={"sample_id": "cell_line"})
    long.to_csv(root / "responses.csv", index=False)
    cohort.drug_weights.to_csv(root / "drugs.csv")
    res = runner.invoke(app, ["evaluate", "drug-response", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--responses", str(root / "responses.csv"), "--drugs", str(root / "drugs.csv"),
                              "-m", str(root / "model"), "--folds", "3", "--hidden", "16", "--max-iter", "100",
                              "-o", str(root / "drug.json")])
    assert res.exit_code == 0, res.output
    assert "mean_pcc" in res.output


def test_essentiality_command(files):
    _require_pipeline()
    root, cohort = files
    cohort.essentiality.to_csv(root / "effects.csv")
    res = CliRunner().invoke(app, ["evaluate", "essentiality", str(root / "logtpm.csv"), "--input", "logtpm",
                                   "--effects", str(root / "effects.csv"), "-m", str(root / "model"), "--folds", "3",
                                   "--hidden", "16", "--max-iter", "100", "-o", str(root / "ess.json")])
    assert res.exit_code == 0, res.output
    payload = json.loads((root / "ess.json").read_text())
    assert {m["features"] for m in payload["metrics"]} == {"embedding", "raw_logtpm"}
    assert payload["metrics"][0]["n_cell_lines"] == 30
