"""AnnData as a scanpy user has it: backed files, X = None with the counts in a layer,
Ensembl IDs in a var column, labels in obs; through the library and the command line."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from typer.testing import CliRunner

import bulkformer

anndata = pytest.importorskip("anndata")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("anndata_inputs")
    bundle = bulkformer.tiny_bundle(root / "model", n_genes=60)
    sim = bulkformer.simulate_cohort(n_samples=24, vocabulary=bundle, n_genes=60, seed=2, missing_fraction=0.0,
                                      n_tissues=2)
    counts = sim.counts.iloc[:, 3:]  # lacks three vocabulary genes
    obs = sim.obs.copy()
    obs.loc[obs.index[:2], "tissue"] = np.nan  # unlabelled samples
    var = pd.DataFrame({"gene_ids": counts.columns}, index=[f"gene{i}" for i in range(counts.shape[1])])
    adata = anndata.AnnData(X=sparse.csr_matrix(counts.to_numpy(np.float32)), obs=obs,
                            var=pd.DataFrame(index=counts.columns))
    adata.write_h5ad(root / "cohort.h5ad")
    no_x = anndata.AnnData(X=None, obs=obs, var=pd.DataFrame(index=counts.columns),
                           layers={"counts": sparse.csr_matrix(counts.to_numpy(np.float32))})
    no_x.write_h5ad(root / "no_x.h5ad")
    opaque = anndata.AnnData(X=counts.to_numpy(np.float32), obs=pd.DataFrame(index=counts.index), var=var)
    return root, bundle, counts, adata, opaque


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_backed_sparse_anndata_is_read(cohort):
    root, bundle, counts, adata, _ = cohort
    backed = anndata.read_h5ad(root / "cohort.h5ad", backed="r")
    try:
        expected = _quiet(bulkformer.embed, counts, bundle, progress=False)
        embedded = _quiet(bulkformer.embed, backed, bundle, progress=False)  # was IndexError, then a copy error
        assert not embedded.isbacked and list(embedded.obs_names) == list(counts.index)
        np.testing.assert_allclose(embedded.obsm["X_bulkformer"], expected.to_numpy(), rtol=1e-5, atol=1e-6)
        imputed = _quiet(bulkformer.impute, backed[backed.obs["tissue"] == "tissue_A"], bundle, progress=False)
        assert list(imputed.obs_names) == list(counts.index[adata.obs["tissue"] == "tissue_A"])
    finally:
        backed.file.close()


def test_h5ad_without_x_names_the_layer(cohort):
    root, bundle, counts, _, _ = cohort
    with pytest.raises(ValueError, match="no_x.h5ad has no X .*layer='counts'"):  # was h5py's KeyError
        bulkformer.prepare(root / "no_x.h5ad", bundle)
    prepared = _quiet(bulkformer.prepare, root / "no_x.h5ad", bundle, layer="counts")
    assert prepared.sample_ids == list(counts.index)
    with pytest.raises(ValueError, match="layer= names a layer of an h5ad file"):  # was ignored
        counts.to_csv(root / "counts.csv")
        bulkformer.prepare(root / "counts.csv", bundle, layer="counts")
    with pytest.raises(ValueError, match="layer= applies to AnnData inputs only"):  # was ignored
        bulkformer.prepare(counts.to_numpy(), bundle, genes=list(counts.columns), layer="counts")


def test_layer_error_points_at_raw(cohort):
    _, bundle, _, adata, _ = cohort
    with_raw = adata.copy()
    with_raw.raw = with_raw
    with pytest.raises(ValueError, match=r"adata\.raw\.to_adata\(\)"):
        bulkformer.prepare(with_raw, bundle, layer="raw")


def test_gene_ids_from_a_var_column(cohort):
    _, bundle, counts, _, opaque = cohort
    with pytest.raises(ValueError, match="var column 'gene_ids' matches 57 vocabulary genes: pass genes='gene_ids'"):
        bulkformer.prepare(opaque, bundle)
    by_column = _quiet(bulkformer.embed, opaque, bundle, gene_names="gene_ids", progress=False)
    expected = _quiet(bulkformer.embed, counts, bundle, progress=False)
    np.testing.assert_allclose(by_column.obsm["X_bulkformer"], expected.to_numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'ensembl' is not a column of the AnnData's var .*'gene_ids'"):
        bulkformer.prepare(opaque, bundle, genes="ensembl")
    with pytest.raises(ValueError, match="is one name, not one ID per gene"):  # was "genes= has 8 IDs ..."
        bulkformer.prepare(counts, bundle, genes="gene_ids")
    # a gap became the gene 'nan' and was lost among the unmatched genes; a numeric column was read as IDs
    gapped = opaque.copy()
    gapped.var["gene_ids"] = gapped.var["gene_ids"].astype(object)
    gapped.var.iloc[3, gapped.var.columns.get_loc("gene_ids")] = None
    gapped.var.iloc[5, gapped.var.columns.get_loc("gene_ids")] = " "
    with pytest.raises(ValueError, match=r"'gene_ids' of the AnnData's var has 2 empty or missing gene IDs \(e\.g\. row 4, "):
        bulkformer.prepare(gapped, bundle, genes="gene_ids")
    gapped.var["dispersion"] = np.linspace(0, 1, gapped.n_vars)
    with pytest.raises(ValueError, match="'dispersion' of the AnnData's var holds float64 values, not gene IDs"):
        bulkformer.prepare(gapped, bundle, genes="dispersion")


def test_task_features_from_anndata(cohort):
    from bulkformer.tasks import classification, features

    _, bundle, counts, adata, _ = cohort
    sets = _quiet(features.feature_sets, adata, bundle)  # was "DataFrame constructor not properly called"
    assert set(sets) == {"embedding", "raw_logtpm"}
    assert all(list(frame.index) == list(counts.index) for frame in sets.values())
    with pytest.warns(UserWarning, match="2 have a blank or NaN entry"):
        result = classification.evaluate(sets, adata.obs["tissue"], n_splits=2, n_estimators=5)
    assert result.metrics["n_samples"].eq(22).all()
    assert features.sample_ids(adata.T, orientation="genes_by_samples") == list(counts.index)


def test_build_graph_reads_a_layer(cohort):
    root, bundle, _, adata, _ = cohort
    layered = anndata.AnnData(X=None, obs=adata.obs, var=adata.var, layers={"counts": adata.X.copy()})
    graph = _quiet(bulkformer.build_graph, layered, vocabulary=bundle, input="counts", layer="counts")
    assert graph.gene_ids == bundle.gene_ids and graph.n_edges > 0


def test_cli_reads_layers_and_obs_labels(cohort):
    from bulkformer.cli.main import app

    root, _, _, _, _ = cohort
    runner = CliRunner()
    out = root / "cls.json"
    res = runner.invoke(app, ["evaluate", "classification", str(root / "no_x.h5ad"), "--layer", "counts",
                              "--labels", str(root / "cohort.h5ad"), "--column", "tissue", "-m", str(root / "model"),
                              "--folds", "2", "--trees", "5", "--pca", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert {m["n_samples"] for m in json.loads(out.read_text())["metrics"]} == {22}
    res = runner.invoke(app, ["build-graph", str(root / "no_x.h5ad"), "--layer", "counts", "-m", str(root / "model"),
                              "--input", "counts", "-o", str(root / "graph.safetensors")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", "classification", str(root / "cohort.h5ad"), "--labels",
                              str(root / "model" / "model.safetensors"), "-m", str(root / "model")])
    assert res.exit_code != 0 and "is not a text table" in str(res.exception)


# ------------------------------------------------ h5ad files with the gene IDs in a var column
@pytest.fixture(scope="module")
def named_files(cohort):
    """scanpy's layout on disk: symbols as var_names, Ensembl IDs in var['gene_ids']; the
    same cohort with Ensembl var_names, with opaque var_names, genes x samples, and as CSV
    and parquet."""
    root, bundle, counts, _, _ = cohort
    symbols = bundle.genes.set_index("ensembl_id").loc[counts.columns, "symbol"].tolist()
    values = sparse.csr_matrix(counts.to_numpy(np.float32))
    obs = pd.DataFrame(index=counts.index)
    var = pd.DataFrame({"gene_ids": list(counts.columns), "n_cells": np.arange(counts.shape[1])}, index=symbols)
    anndata.AnnData(X=values, obs=obs, var=var).write_h5ad(root / "symbols.h5ad")
    anndata.AnnData(X=values, obs=obs, var=pd.DataFrame(index=counts.columns)).write_h5ad(root / "ensembl.h5ad")
    opaque = var.set_axis([f"gene{i}" for i in range(counts.shape[1])])
    anndata.AnnData(X=values, obs=obs, var=opaque).write_h5ad(root / "opaque.h5ad")
    anndata.AnnData(X=values.T.tocsr(), obs=opaque, var=obs).write_h5ad(root / "opaque_gbs.h5ad")
    counts.to_csv(root / "named.csv")
    counts.to_parquet(root / "named.parquet")
    return root, bundle, counts, anndata.read_h5ad(root / "symbols.h5ad")


def test_h5ad_file_reads_gene_ids_from_a_var_column(named_files):
    from bulkformer import io

    root, bundle, counts, in_memory = named_files
    path = root / "symbols.h5ad"
    assert io.read_gene_ids(path) == list(in_memory.var_names)  # symbols
    assert io.read_gene_ids(path, genes="gene_ids") == list(counts.columns)  # was refused for files
    matrix = io.read_expression(path, genes="gene_ids")
    assert matrix.gene_ids == list(counts.columns) and matrix.sample_ids == list(counts.index)
    np.testing.assert_array_equal(matrix.values, counts.to_numpy(np.float32))
    gene_ids, chunks = io.iter_file(path, genes="gene_ids", chunk_samples=5)
    assert gene_ids == list(counts.columns)
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), matrix.values)
    memory = io.as_matrix(in_memory, genes="gene_ids")
    assert memory.gene_ids == matrix.gene_ids
    np.testing.assert_array_equal(memory.values, matrix.values)
    transposed = io.read_expression(root / "opaque_gbs.h5ad", orientation="genes_by_samples", genes="gene_ids")
    assert transposed.gene_ids == list(counts.columns) and transposed.sample_ids == list(counts.index)
    np.testing.assert_array_equal(transposed.values, matrix.values)
    assert io.read_sample_ids(path, genes="gene_ids") == list(counts.index)

    # the library's readers of files take the column as they take it for AnnData in memory
    by_file = _quiet(bulkformer.prepare, path, bundle, genes="gene_ids")
    by_object = _quiet(bulkformer.prepare, in_memory, bundle, genes="gene_ids")
    np.testing.assert_array_equal(by_file.values, by_object.values)
    assert by_file.report.to_dict() == by_object.report.to_dict()
    embedded = _quiet(bulkformer.embed, path, bundle, gene_names="gene_ids", progress=False)
    expected = _quiet(bulkformer.embed, in_memory, bundle, gene_names="gene_ids", progress=False)
    np.testing.assert_array_equal(embedded.to_numpy(), expected.obsm["X_bulkformer"])
    graph = _quiet(bulkformer.build_graph, path, vocabulary=bundle, input="counts", genes="gene_ids")
    again = _quiet(bulkformer.build_graph, in_memory, vocabulary=bundle, input="counts", genes="gene_ids")
    assert graph.n_edges > 0 and bool((graph.edge_index == again.edge_index).all())


def test_h5ad_gene_column_errors(named_files):
    from bulkformer import io

    root, bundle, counts, _ = named_files
    with pytest.raises(ValueError, match=r"'ensembl' is not a column of symbols\.h5ad's var .*'gene_ids', 'n_cells'"):
        bulkformer.prepare(root / "symbols.h5ad", bundle, genes="ensembl")
    with pytest.raises(ValueError, match=r"'gene_ids' is not a column of symbols\.h5ad's obs"):  # obs: genes x samples
        io.read_sample_ids(root / "symbols.h5ad", orientation="genes_by_samples", genes="gene_ids")
    for name in ("named.csv", "named.parquet"):  # no annotation columns: was ignored by nothing, refused as a list
        with pytest.raises(ValueError, match=rf"genes='gene_ids' .* and {name} is not an h5ad file: its gene IDs are "
                                             "its labels"):
            bulkformer.prepare(root / name, bundle, genes="gene_ids")
        with pytest.raises(ValueError, match="is not an h5ad file"):
            io.read_expression(root / name, genes="gene_ids")
    with pytest.raises(ValueError, match="a file carries its own gene IDs"):
        bulkformer.prepare(root / "symbols.h5ad", bundle, genes=list(counts.columns))
    with pytest.raises(ValueError, match="samples= names the samples of an in-memory matrix"):
        bulkformer.prepare(root / "symbols.h5ad", bundle, samples=list(counts.index))


def test_h5ad_file_whose_names_match_badly_names_the_column(named_files):
    root, bundle, _, _ = named_files
    # the advice was given for AnnData in memory only
    with pytest.raises(ValueError, match=r"opaque\.h5ad's var column 'gene_ids' matches 57 vocabulary genes: "
                                         r"pass genes='gene_ids' \(gene_names='gene_ids' in impute"):
        bulkformer.prepare(root / "opaque.h5ad", bundle)
    with pytest.raises(ValueError, match=r"opaque_gbs\.h5ad's obs column 'gene_ids' matches 57"):
        bulkformer.prepare(root / "opaque_gbs.h5ad", bundle, orientation="genes_by_samples")


@pytest.fixture
def cli(capsys, monkeypatch):
    """`bulkformer ...` through the real entry point (advice translated to flags, exit codes)."""
    import sys

    from bulkformer.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["bulkformer", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_gene_column(named_files, cli, tmp_path):
    root, _, counts, _ = named_files
    model = root / "model"
    for command, extra in (("embed", ["--aggregate", "mean"]), ("impute", ["--which", "all"])):
        code, _, err = cli(command, root / "symbols.h5ad", "--gene-column", "gene_ids", "-m", model,
                           "-o", tmp_path / f"{command}_column.csv", "--no-progress", *extra)
        assert code == 0, err
        code, _, err = cli(command, root / "ensembl.h5ad", "-m", model, "-o", tmp_path / f"{command}_names.csv",
                           "--no-progress", *extra)
        assert code == 0, err
        assert (tmp_path / f"{command}_column.csv").read_text() == (tmp_path / f"{command}_names.csv").read_text()
    code, _, err = cli("embed", root / "opaque_gbs.h5ad", "--orientation", "genes_by_samples", "--gene-column",
                       "gene_ids", "-m", model, "-o", tmp_path / "gbs.csv", "--no-progress", "--aggregate", "mean")
    assert code == 0, err
    assert (tmp_path / "gbs.csv").read_text() == (tmp_path / "embed_names.csv").read_text()
    code, out, err = cli("build-graph", root / "opaque.h5ad", "--gene-column", "gene_ids", "-m", model,
                         "--input", "counts", "-o", tmp_path / "graph.safetensors")
    assert code == 0, err
    code, _, err = cli("evaluate", "classification", root / "opaque.h5ad", "--gene-column", "gene_ids",
                       "--labels", root / "cohort.h5ad", "--column", "tissue", "-m", model, "--folds", "2",
                       "--trees", "5", "--pca", "3", "--features", "raw_logtpm")
    assert code == 0, err


def test_cli_gene_column_errors_and_advice(named_files, cli, tmp_path):
    root, _, _, _ = named_files
    model = root / "model"
    # the advice names the flag (embed's --genes is a gene subset, not this)
    for command in ("impute", "embed"):
        code, _, err = cli(command, root / "opaque.h5ad", "-m", model, "-o", tmp_path / "x.csv", "--no-progress")
        assert code == 2 and "var column 'gene_ids' matches 57 vocabulary genes: pass --gene-column gene_ids to read " \
                              "the gene IDs from it." in err, err
    from bulkformer.cli.main import as_cli_advice
    from bulkformer.io import gene_column_argument

    advice = f"pass {gene_column_argument('gene_ids')} to read the gene IDs from it"
    for command in (["embed"], ["evaluate", "gene-survival"], ["evaluate", "imputation"], ["build-graph"], ["pretrain"]):
        assert as_cli_advice(advice, command) == "pass --gene-column gene_ids to read the gene IDs from it", command
    code, _, err = cli("impute", root / "named.csv", "--gene-column", "gene_ids", "-m", model, "-o", tmp_path / "x.csv")
    assert code == 2 and "--gene-column gene_ids names the column of an h5ad file's var (obs)" in err, err
    assert "named.csv is not an h5ad file" in err and "genes=" not in err and "gene_names" not in err
    code, _, err = cli("embed", root / "symbols.h5ad", "--gene-column", "ensembl", "-m", model, "-o", tmp_path / "x.csv")
    assert code == 2 and "'ensembl' is not a column of symbols.h5ad's var (its columns: ['gene_ids', 'n_cells'])" in err
    code, _, err = cli("evaluate", "classification", root / "symbols.h5ad", "--gene-column", "ensembl",
                       "--labels", root / "cohort.h5ad", "--column", "tissue", "-m", model)
    assert code == 2 and "'ensembl' is not a column of symbols.h5ad's var" in err, err  # before the embedding pass


def test_finetune_reads_the_gene_column_of_an_h5ad_file(named_files, cli, tmp_path):
    """finetune and its predict take gene_names=/layer=/orientation= as the other readers do
    (the mismatch advice named gene_names=, which finetune did not accept)."""
    from bulkformer.training import finetune, load_finetuned

    root, bundle, counts, _ = named_files
    labels = pd.Series(np.where(np.arange(len(counts)) % 2 == 0, "a", "b"), index=counts.index)
    settings = dict(epochs=2, batch_size=8, val_fraction=0.25, progress=False)
    by_column = _quiet(finetune, root / "opaque.h5ad", labels, bundle, gene_names="gene_ids", **settings)
    by_names = _quiet(finetune, root / "ensembl.h5ad", labels, bundle, **settings)
    assert by_column.metrics == by_names.metrics  # was: too few genes matched (opaque var_names)
    transposed = _quiet(finetune, root / "opaque_gbs.h5ad", labels, bundle, gene_names="gene_ids",
                        orientation="genes_by_samples", **settings)
    assert transposed.metrics == by_names.metrics
    predicted = _quiet(by_column.model.predict, root / "opaque.h5ad", gene_names="gene_ids")
    pd.testing.assert_frame_equal(predicted, _quiet(by_names.model.predict, root / "ensembl.h5ad"))
    with pytest.raises(ValueError, match="input='aligned' is a samples x vocabulary array already"):
        finetune(np.zeros((4, bundle.config.n_genes), np.float32), labels.iloc[:4].to_numpy(), bundle,
                 input="aligned", gene_names="gene_ids", **settings)

    args = ["--labels", tmp_path / "labels.csv", "--column", "label", "-m", root / "model", "--epochs", "1"]
    labels.rename("label").to_csv(tmp_path / "labels.csv")
    code, out, err = cli("finetune", root / "opaque.h5ad", "--gene-column", "gene_ids", "-o", tmp_path / "ft", *args)
    assert code == 0, err
    assert json.loads(out[out.index("{\n  \"out\""):])["out"] == str(tmp_path / "ft") and load_finetuned(tmp_path / "ft").classes == ["a", "b"]
    assert "[bulkformer finetune] epoch 1/1" in out
    code, out, err = cli("finetune", root / "opaque.h5ad", "--gene-column", "gene_ids", "-o", tmp_path / "ft", *args,
                         "--no-progress")
    assert code == 0 and out.startswith("{\n  \"out\""), out  # the result alone, no epoch lines
    # predictions from the command line (there was no command for them)
    code, out, err = cli("predict", root / "opaque.h5ad", "--gene-column", "gene_ids", "-m", tmp_path / "ft",
                         "-o", tmp_path / "predicted.csv")
    assert code == 0, err
    assert "wrote" in out and "2 classes (classification)" in out
    expected = _quiet(load_finetuned(tmp_path / "ft").predict, root / "opaque.h5ad", gene_names="gene_ids")
    written = pd.read_csv(tmp_path / "predicted.csv", index_col=0)
    assert list(written.index) == list(expected.index) and list(written.columns) == ["a", "b"]
    np.testing.assert_allclose(written.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-7)
    code, _, err = cli("predict", root / "opaque.h5ad", "--gene-column", "gene_ids", "-m", root / "model",
                       "-o", tmp_path / "p2.csv")
    assert code == 2 and "no fine-tuned model" in err and "it is a model bundle" in err, err
    code, _, err = cli("finetune", root / "opaque.h5ad", "-o", tmp_path / "ft2", *args)
    assert code == 2 and "pass --gene-column gene_ids" in err, err
    code, _, err = cli("finetune", root / "named.csv", "--gene-column", "gene_ids", "-o", tmp_path / "ft3", *args)
    assert code == 2 and "named.csv is not an h5ad file" in err, err


def test_cli_h5ad_to_h5ad_keeps_the_sample_annotations(cohort, cli, tmp_path):
    """`bulkformer embed/impute in.h5ad -o out.h5ad` keeps in.h5ad's obs (they were dropped:
    a scanpy user lost the tissue and batch columns), its obsm, obsp and uns (a PCA, a
    neighbour graph, colours: dropped too, though the library kept them); a genes x
    samples file's var."""
    import scipy.sparse

    root, _, counts, adata, _ = cohort
    rich = adata.copy()
    rich.obsm["X_pca"] = np.arange(rich.n_obs * 2, dtype=np.float64).reshape(-1, 2)
    rich.obsp["connectivities"] = scipy.sparse.random(rich.n_obs, rich.n_obs, density=0.3, format="csr", random_state=0)
    rich.uns["tissue_colors"] = ["#1f77b4", "#ff7f0e"]
    rich.write_h5ad(tmp_path / "rich.h5ad")
    for command in ("embed", "impute"):
        out = tmp_path / f"{command}.h5ad"
        code, _, err = cli(command, tmp_path / "rich.h5ad", "-m", root / "model", "-o", out, "--no-progress")
        assert code == 0, err
        written = anndata.read_h5ad(out)
        assert list(written.obs_names) == list(counts.index)
        pd.testing.assert_frame_equal(written.obs, adata.obs, check_categorical=False)
        np.testing.assert_array_equal(written.obsm["X_pca"], rich.obsm["X_pca"])
        assert (written.obsp["connectivities"] != rich.obsp["connectivities"]).nnz == 0
        assert list(written.uns["tissue_colors"]) == rich.uns["tissue_colors"] and "mapping_report" in written.uns["bulkformer"]
    transposed = anndata.AnnData(X=adata.X.T.tocsr(), obs=adata.var, var=adata.obs)
    transposed.write_h5ad(tmp_path / "gbs.h5ad")
    code, _, err = cli("embed", tmp_path / "gbs.h5ad", "--orientation", "genes_by_samples", "-m", root / "model",
                       "-o", tmp_path / "gbs_out.h5ad", "--no-progress")
    assert code == 0, err
    pd.testing.assert_frame_equal(anndata.read_h5ad(tmp_path / "gbs_out.h5ad").obs, adata.obs, check_categorical=False)
    code, _, err = cli("embed", root / "cohort.h5ad", "-m", root / "model", "-o", tmp_path / "e.csv", "--no-progress")
    assert code == 0, err  # other outputs as before


def test_symbol_names_with_an_ensembl_column_warn_and_name_it(cohort):
    """Symbols matched well enough to pass, so the Ensembl IDs beside them went unused
    (in R: symbol rownames with a gene_id rowData column) without a word."""
    _, bundle, counts, _, _ = cohort
    symbols = bundle.genes.set_index("ensembl_id").loc[counts.columns, "symbol"]
    assert symbols.notna().all()
    adata = anndata.AnnData(X=counts.to_numpy(np.float32), obs=pd.DataFrame(index=counts.index),
                            var=pd.DataFrame({"gene_ids": list(counts.columns), "n_cells": 1}, index=list(symbols)))
    with pytest.warns(UserWarning, match=r"The AnnData's var names are gene symbols \(57 matched as symbols or "
                                         r"aliases\), but its var column 'gene_ids' holds Ensembl IDs that match 57 "
                                         r"vocabulary genes: pass genes='gene_ids'"):
        prepared = bulkformer.prepare(adata, bundle)
    assert any("'gene_ids' holds Ensembl IDs" in w for w in prepared.report.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the column named: nothing to advise
        bulkformer.prepare(adata, bundle, genes="gene_ids")
        bulkformer.prepare(counts, bundle)  # Ensembl names: nothing to advise either
    # repeated names of a genes x samples AnnData (R's symbol rownames) are not warned about again on its copy
    transposed = _quiet(anndata.AnnData, X=counts.to_numpy(np.float32).T, obs=pd.DataFrame(
        {"gene_ids": list(counts.columns)}, index=[symbols.iloc[0]] * 2 + list(symbols.iloc[2:])),
        var=pd.DataFrame(index=counts.index))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bulkformer.embed(transposed, bundle, gene_names="gene_ids", orientation="genes_by_samples", progress=False)
    assert not [w for w in caught if "names are not unique" in str(w.message)]
