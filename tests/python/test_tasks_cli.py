"""`bulkformer evaluate <task>` end to end on a tiny bundle and a simulated cohort."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import bulkformer
from bulkformer.cli.main import app, as_cli_advice


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
    provenance = payload["params"]["provenance"]  # which command, version and directory produced the file
    assert provenance["bulkformer_version"] == bulkformer.__version__ and provenance["command"].startswith("bulkformer")
    assert (root / "cls.png").stat().st_size > 1000
    res = runner.invoke(app, ["evaluate", "prognosis", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--survival", str(root / "obs.tsv"), "--time-column", "survival_time",
                              "--event-column", "event", "-m", str(root / "model"), "--folds", "3", "--trees", "10"])
    assert res.exit_code == 0, res.output
    assert "c_index" in res.output
    horizon = str(float(_.obs["survival_time"].median()))
    res = runner.invoke(app, ["evaluate", "prognosis", str(root / "logtpm.csv"), "--input", "logtpm",
                              "--survival", str(root / "obs.tsv"), "--time-column", "survival_time", "--event-column", "event",
                              "-m", str(root / "model"), "--folds", "3", "--trees", "10", "--features", "raw_logtpm",
                              "--horizon", horizon, "-o", str(root / "horizon.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((root / "horizon.json").read_text())["params"]["horizon"] == float(horizon)


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
    assert "500-fold CV needs at least 500 samples in the smallest class" in capsys.readouterr().err


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
    # the simulator's own files are the command's inputs: raw counts with their gene lengths,
    # long responses and drug descriptors
    sim = cohort.save(root / "sim")
    res = runner.invoke(app, ["evaluate", "drug-response", str(sim / "counts.parquet"), "--lengths", str(sim / "lengths.tsv"),
                              "--responses", str(sim / "drug_responses_long.tsv"), "--drugs", str(sim / "drug_descriptors.tsv"),
                              "-m", str(root / "model"), "--folds", "3", "--hidden", "16", "--max-iter", "100",
                              "-o", str(root / "drug.json")])
    assert res.exit_code == 0, res.output
    assert "mean_pcc" in res.output
    payload = json.loads((root / "drug.json").read_text())
    assert {m["n_pairs"] for m in payload["metrics"]} == {cohort.drug_response.size}


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
    provenance = payload["params"]["provenance"]  # which command, version and directory produced the file
    assert provenance["bulkformer_version"] == bulkformer.__version__ and provenance["command"].startswith("bulkformer")
    assert payload["metrics"][0]["n_cell_lines"] == 30


def _error(monkeypatch, capsys, args: list[str]) -> str:
    """Run the CLI as a user does (errors printed, exit 2); the embedding pass must not start."""
    from bulkformer.cli.main import main
    from bulkformer.tasks import features as task_features

    def no_embedding(*_, **__):
        raise AssertionError("this check must come before the embedding pass")

    monkeypatch.setattr(task_features, "feature_sets", no_embedding)
    monkeypatch.setattr(task_features, "logtpm_matrix", no_embedding)
    monkeypatch.setattr("sys.argv", ["bulkformer", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_fold_check_counts_the_labels_that_will_be_used(files, monkeypatch, capsys):
    import pandas as pd

    root, cohort = files
    ids = list(cohort.obs.index)
    base = ["evaluate", "classification", str(root / "logtpm.csv"), "--input", "logtpm", "-m", str(root / "model"),
            "--folds", "3"]
    # blank labels and rows for other samples do not count as classes
    labels = pd.Series(["a", "b", "c"] * 10, index=ids, dtype=object)
    labels.iloc[:2] = None
    extra = pd.Series(["z", "z"], index=["OTHER1", "OTHER2"])
    pd.concat([labels, extra]).rename("group").to_csv(root / "blank_extra.csv")

    from bulkformer.tasks import features as task_features

    def reached(*_, **__):
        raise ValueError("reached the embedding pass")

    monkeypatch.setattr(task_features, "feature_sets", reached)
    monkeypatch.setattr("sys.argv", ["bulkformer", *base, "--labels", str(root / "blank_extra.csv")])
    from bulkformer.cli.main import main

    with pytest.warns(UserWarning) as record, pytest.raises(SystemExit):
        main()
    assert "reached the embedding pass" in capsys.readouterr().err
    message = " ".join(str(w.message) for w in record)
    assert "2 of 30 samples are left out" in message and "2 rows of the labels name samples that are not in the data" in message
    # ...and rows of samples the data lacks cannot make a class big enough
    labels = pd.Series(["a", "a"] + ["b", "c"] * 14, index=ids)
    pd.concat([labels, pd.Series(["a"] * 5, index=[f"X{i}" for i in range(5)])]).rename("group").to_csv(root / "few.csv")
    with pytest.warns(UserWarning):
        err = _error(monkeypatch, capsys, [*base, "--labels", str(root / "few.csv")])
    assert "needs at least 3 samples in the smallest class ('a'), got 2" in err


def test_input_errors_name_flags_before_any_work(files, monkeypatch, capsys, tmp_path):
    root, cohort = files
    data, model = str(root / "logtpm.csv"), str(root / "model")
    common = [data, "--input", "logtpm", "-m", model]
    cls = ["evaluate", "classification", *common, "--labels", str(root / "obs.tsv"), "--column", "tissue", "--folds", "3"]
    assert "--pca -5: must be a whole number >= 1" in _error(monkeypatch, capsys, [*cls, "--pca", "-5"])
    assert "cannot tell the figure format of x.foo" in _error(monkeypatch, capsys, [*cls, "--plot", "x.foo"])
    assert "unknown feature set(s) ['foo']" in _error(monkeypatch, capsys, [*cls, "--features", "embedding,foo"])
    assert "--repeats 0: must be a whole number >= 1" in _error(
        monkeypatch, capsys, ["evaluate", "imputation", *common, "--repeats", "0"])
    err = _error(monkeypatch, capsys, ["evaluate", "prognosis", *common, "--survival", str(root / "obs.tsv"),
                                       "--time-column", "nope", "--event-column", "event"])
    assert "lacks column(s) ['nope']" in err and "--time-column ... / --event-column ..." in err
    err = _error(monkeypatch, capsys, ["evaluate", "drug-response", *common, "--responses", str(root / "obs.tsv"),
                                       "--drugs", str(root / "obs.tsv")])
    assert "--cell-column ... / --drug-column ... / --value-column ..." in err
    bad_lengths = tmp_path / "lengths.tsv"
    bad_lengths.write_text("gene\tlength\nENSG00000000003\t4.5kb\n")
    assert "1 gene lengths are not numbers (e.g. ['4.5kb'])" in _error(
        monkeypatch, capsys, [*cls, "--lengths", str(bad_lengths)])
    other = tmp_path / "other.tsv"
    cohort.obs.set_axis([f"X{i}" for i in range(len(cohort.obs))]).to_csv(other, sep="\t")
    assert "no sample is in both the data" in _error(
        monkeypatch, capsys, ["evaluate", "classification", *common, "--labels", str(other), "--column", "tissue"])
    # a fine-tuned model is not a bundle: say what it is and how to use it
    finetuned = tmp_path / "ft"
    finetuned.mkdir()
    (finetuned / "finetune.json").write_text("{}")
    err = _error(monkeypatch, capsys, ["evaluate", "imputation", data, "-m", str(finetuned)])
    assert "is a fine-tuned model" in err and "load_finetuned" in err and f"as the model: {finetuned / 'encoder'}" in err
    # fine-tuning: flags checked before the model or data is read, an occupied -o refused
    ft = ["finetune", data, "--input", "logtpm", "--labels", str(root / "obs.tsv"), "--column", "tissue", "-m", model]
    assert "--epochs 0: must be a whole number >= 1" in _error(monkeypatch, capsys, [*ft, "-o", str(tmp_path / "r"), "--epochs", "0"])
    assert "--batch-size 0: must be" in _error(monkeypatch, capsys, [*ft, "-o", str(tmp_path / "r"), "--batch-size", "0"])
    assert "is a fine-tuned model" in _error(monkeypatch, capsys, [*ft[:-1], str(finetuned), "-o", str(tmp_path / "r")])
    err = _error(monkeypatch, capsys, [*ft, "-o", str(root)])
    assert "not a fine-tuning output" in err and (root / "logtpm.csv").is_file()


def test_genes_by_symbol_and_depmap_effect_columns(files):
    _require_pipeline()
    root, cohort = files
    info = cohort.gene_info
    symbols = info["symbol"].iloc[:3].tolist()
    res = CliRunner().invoke(app, ["evaluate", "gene-survival", str(root / "logtpm.csv"), "--input", "logtpm",
                                   "--survival", str(root / "obs.tsv"), "--time-column", "survival_time",
                                   "--event-column", "event", "--genes", ",".join(symbols), "-m", str(root / "model"),
                                   "-o", str(root / "by_symbol.json")])
    assert res.exit_code == 0, res.output
    assert set(info.index[:3]) <= set(res.output.split())
    # each row says how its gene was asked for, beside the vocabulary's Ensembl ID
    rows = json.loads((root / "by_symbol.json").read_text())["metrics"]
    assert {r["gene"]: r["requested_as"] for r in rows} == dict(zip(info.index[:3], symbols))
    effects = cohort.essentiality.copy()
    # CRISPRGeneEffect.csv names genes "SYMBOL (ENTREZ)"; the Entrez part may be anything the mapper knows
    effects.columns = [f"{info.loc[g, 'symbol']} (0)" for g in effects.columns]
    effects.to_csv(root / "depmap.csv")
    res = CliRunner().invoke(app, ["evaluate", "essentiality", str(root / "logtpm.csv"), "--input", "logtpm",
                                   "--effects", str(root / "depmap.csv"), "-m", str(root / "model"), "--folds", "3",
                                   "--features", "raw_logtpm", "--hidden", "8", "--max-iter", "30"])
    assert res.exit_code == 0, res.output
    assert "mean_pcc" in res.output


def test_finetune_matches_labels_on_cut_ids(files, tmp_path):
    """The no-overlap error told finetune users to pass --id-length, which only the
    evaluate commands had ('No such option')."""
    root, cohort = files
    long_ids = cohort.log_tpm.set_axis([f"{s}-01A-11R-A29S-07" for s in cohort.log_tpm.index])
    long_ids.iloc[:-1].to_csv(tmp_path / "aliquots.csv")  # the last sample's labels go unused
    common = ["finetune", str(tmp_path / "aliquots.csv"), "--input", "logtpm", "--labels", str(root / "obs.tsv"),
              "--column", "tissue", "-m", str(root / "model"), "--epochs", "2", "--no-progress"]
    res = CliRunner().invoke(app, [*common, "-o", str(tmp_path / "ft")])
    # the library names the argument; the command line words it as its option
    assert res.exit_code != 0 and "--id-length" in as_cli_advice(str(res.exception), ["finetune"])
    res = CliRunner().invoke(app, [*common, "--id-length", str(len(cohort.log_tpm.index[0])), "-o", str(tmp_path / "ft")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["settings"]["n_train"] + metrics["settings"]["n_val"] == len(cohort.log_tpm) - 1


def test_classification_matches_labels_on_cut_ids(files, tmp_path):
    """The classification error advised --id-length, which the command lacked; with it the
    numbers equal those of the same data under the labels' own IDs."""
    root, cohort = files
    long_ids = cohort.log_tpm.set_axis([f"{s}-01A-11R-A29S-07" for s in cohort.log_tpm.index])
    long_ids.to_csv(tmp_path / "aliquots.csv")
    common = ["evaluate", "classification", "--input", "logtpm", "--labels", str(root / "obs.tsv"), "--column", "tissue",
              "-m", str(root / "model"), "--folds", "3", "--trees", "10", "--pca", "5", "--features", "raw_logtpm"]
    res = CliRunner().invoke(app, [common[0], common[1], str(tmp_path / "aliquots.csv"), *common[2:]])
    assert res.exit_code != 0 and "--id-length" in as_cli_advice(str(res.exception), ["evaluate", "classification"])
    cut = str(len(cohort.log_tpm.index[0]))
    res = CliRunner().invoke(app, [common[0], common[1], str(tmp_path / "aliquots.csv"), *common[2:], "--id-length", cut,
                                   "-o", str(tmp_path / "cut.json")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [common[0], common[1], str(root / "logtpm.csv"), *common[2:], "-o", str(tmp_path / "own.json")])
    assert res.exit_code == 0, res.output
    cut_metrics, own_metrics = (json.loads((tmp_path / f"{n}.json").read_text())["metrics"] for n in ("cut", "own"))
    assert cut_metrics == own_metrics


def test_label_column_that_is_the_id_column_is_named(tmp_path):
    """A labels file with the sample IDs second: 'no column tissue; it has [sample_id]'."""
    import pandas as pd

    from bulkformer.cli.inputs import column, read_table

    pd.DataFrame({"tissue": ["a", "b"], "sample_id": ["s1", "s2"]}).to_csv(tmp_path / "labels.csv", index=False)
    table = read_table(tmp_path / "labels.csv", "labels")
    with pytest.raises(ValueError, match="'tissue' is the labels table's first column, which is read as the sample IDs"):
        column(table, "tissue", "labels")
    with pytest.raises(ValueError, match=r"no column 'age'; it has \['sample_id'\] \(the first column is read as the"):
        column(table, "age", "labels")
