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
