"""Gene-embedding stores: atomic, chunked per sample, float16, subsets, fusion, clear errors."""
from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

import bulkformer
from bulkformer.inference import embed, read_gene_embeddings
from bulkformer.inference.stores import GeneEmbeddingWriter


@pytest.fixture(scope="module")
def setup():
    bundle = bulkformer.tiny_bundle(n_genes=50)
    bundle.gene_features = torch.randn(50, 6, generator=torch.Generator().manual_seed(2))
    sim = bulkformer.simulate_cohort(n_samples=5, vocabulary=bundle.genes, n_genes=None, seed=2, missing_fraction=0.0)
    return bundle, sim.counts.iloc[:, 4:]


def _reference_features(bundle, counts) -> np.ndarray:
    """Gene-level features from the module path (published algorithm)."""
    prepared = bulkformer.prepare(counts, bundle)
    with torch.inference_mode():
        return bundle.model(torch.from_numpy(prepared.values), prepared.mask_prob).features.numpy()


def test_store_matches_module_and_is_chunked_per_sample(setup, tmp_path):
    bundle, counts = setup
    path = embed(counts, bundle, level="gene", out=tmp_path / "e.zarr", batch_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"]  # no temporaries left
    stored = read_gene_embeddings(path)
    assert np.abs(stored.values - _reference_features(bundle, counts)).max() <= 1e-5
    assert zarr.open_group(path, mode="r")["embeddings"].chunks[0] == 1
    assert stored.metadata["mapping_report"]["n_missing"] == 4


def test_float16_subset_and_fusion(setup, tmp_path):
    bundle, counts = setup
    genes = [bundle.gene_ids[i] for i in (7, 3, 20)]
    path = embed(counts, bundle, level="gene", out=tmp_path / "f.zarr", genes=genes, dtype="float16",
                 fuse_gene_features=True, progress=False)
    stored = read_gene_embeddings(path, samples=[str(counts.index[3]), str(counts.index[1])], genes=genes[::-1])
    width = bundle.config.feature_dim
    assert stored.values.dtype == np.float16 and stored.shape == (2, 3, width + 6)
    full = _reference_features(bundle, counts)
    expected = full[[3, 1]][:, [20, 3, 7]]
    assert np.abs(stored.values[..., :width].astype(np.float32) - expected).max() <= 1e-2  # float16 rounding
    table = bundle.gene_features.numpy()[[20, 3, 7]]
    assert np.allclose(stored.values[..., width:].astype(np.float32), np.broadcast_to(table, (2, 3, 6)), atol=1e-3)


def test_rewrite_replaces_and_failed_write_leaves_nothing(setup, tmp_path, monkeypatch):
    bundle, counts = setup
    out = tmp_path / "e.zarr"
    embed(counts, bundle, level="gene", out=out, progress=False)
    first = read_gene_embeddings(out).values

    def broken(self, start, values):
        raise RuntimeError("disk full")

    monkeypatch.setattr(GeneEmbeddingWriter, "write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        embed(counts.iloc[:2], bundle, level="gene", out=out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"]
    assert np.array_equal(read_gene_embeddings(out).values, first)  # the old store is intact


def test_gene_subsets_by_symbol_or_versioned_id(setup, tmp_path):
    """genes= takes the IDs expression rows may carry (symbols, versions), when embedding and reading."""
    bundle, counts = setup
    by_id = [bundle.gene_ids[i] for i in (7, 3)]
    by_name = [bundle.genes["symbol"][7].lower(), bundle.gene_ids[3] + ".12"]
    assert np.array_equal(embed(counts, bundle, genes=by_name, progress=False).to_numpy(),
                          embed(counts, bundle, genes=by_id, progress=False).to_numpy())
    path = embed(counts, bundle, level="gene", out=tmp_path / "s.zarr", genes=by_id, progress=False)
    stored = read_gene_embeddings(path, genes=[bundle.genes["symbol"][3]])
    assert stored.gene_ids == [bundle.gene_ids[3]]
    with pytest.raises(ValueError, match=r"1 of the 1 genes are not in the store.*'" + bundle.genes["symbol"][20]):
        read_gene_embeddings(path, genes=[bundle.genes["symbol"][20]])
    with pytest.raises(ValueError, match="same vocabulary gene twice"):
        embed(counts, bundle, genes=[by_id[0], by_name[0]], progress=False)


def test_results_name_their_model(setup):
    bundle, counts = setup
    expected = {"name": "tiny-v2", "version": "v2", "n_genes": 50, "dim": bundle.config.dim, "trained": False}
    assert bulkformer.impute(counts, bundle, progress=False).attrs["model"] == expected
    assert embed(counts, bundle, progress=False).attrs["model"] == expected


def test_errors_name_the_fix(setup, tmp_path):
    bundle, counts = setup
    with pytest.raises(ValueError, match="out="):
        embed(counts, bundle, level="gene", progress=False)
    with pytest.raises(ValueError, match="float32' or 'float16"):
        embed(counts, bundle, level="gene", out=tmp_path / "x.zarr", dtype="int8", progress=False)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        embed(counts, bundle, genes=["ENSG_NOPE"], progress=False)
    with pytest.raises(ValueError, match="aggregate must be"):
        embed(counts, bundle, aggregate="sum", progress=False)
    with pytest.raises(FileNotFoundError, match="no gene-embedding store"):
        read_gene_embeddings(tmp_path / "none.zarr")
    embed(counts, bundle, level="gene", out=tmp_path / "e.zarr", progress=False)
    with pytest.raises(ValueError, match="not in the store"):
        read_gene_embeddings(tmp_path / "e.zarr", samples=["nobody"])


def test_sample_level_anndata_gets_obsm(setup):
    import anndata

    bundle, counts = setup
    adata = anndata.AnnData(counts.to_numpy(dtype=np.float32))
    adata.obs_names = [str(s) for s in counts.index]
    adata.var_names = list(counts.columns)
    out = embed(adata, bundle, aggregate="mean", progress=False)
    frame = embed(counts, bundle, aggregate="mean", progress=False)
    assert np.allclose(out.obsm["X_bulkformer"], frame.to_numpy(), atol=1e-6)
    assert "mapping_report" in out.uns["bulkformer"]
    imputed = bulkformer.impute(adata, bundle, progress=False)
    assert list(imputed.var_names) == bundle.gene_ids[:4]
    assert np.allclose(imputed.layers["bulkformer_imputed"], bulkformer.impute(counts, bundle, progress=False).to_numpy())


def test_bad_store_arguments_fail_before_the_cohort_is_read(setup, tmp_path, monkeypatch):
    """A wrong out= or genes= is reported before prepare() reads and aligns the cohort."""
    embed_module = importlib.import_module("bulkformer.inference.embed")  # the package's `embed` is the function
    bundle, counts = setup
    (tmp_path / "mine.zarr").mkdir()
    (tmp_path / "mine.zarr" / "notes.txt").write_text("keep me")

    def no_prepare(*args, **kwargs):
        raise AssertionError("the cohort was prepared before the arguments were checked")

    monkeypatch.setattr(embed_module, "prepare_for", no_prepare)
    with pytest.raises(ValueError, match=r"zarr store.*name the output \*\.zarr, e\.g\. genes\.zarr"):
        embed(counts, bundle, level="gene", out=tmp_path / "genes.h5", progress=False)  # was a zarr dir named .h5
    with pytest.raises(ValueError, match="is not a gene-embedding store"):
        embed(counts, bundle, level="gene", out=tmp_path / "mine.zarr", progress=False)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        embed(counts, bundle, genes=["ENSG_NOPE"], progress=False)
    with pytest.raises(ValueError, match="out= applies to level='gene'"):  # was ignored: no file, no warning
        embed(counts, bundle, out=tmp_path / "emb.parquet", progress=False)
    assert (tmp_path / "mine.zarr" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "genes.h5").exists()


def test_float16_overflow_is_an_error_not_inf(tmp_path):
    bundle = bulkformer.tiny_bundle(n_genes=50)
    with torch.no_grad():
        bundle.model.layernorm.weight.mul_(1e5)  # gene states far beyond float16's 65504
    counts = bulkformer.simulate_cohort(n_samples=3, vocabulary=bundle.genes, n_genes=None, seed=2,
                                        missing_fraction=0.0).counts
    out = tmp_path / "gene-embeddings"  # no suffix is fine (the R package's tests name it so)
    assert np.isfinite(read_gene_embeddings(embed(counts, bundle, level="gene", out=out, progress=False)).values).all()
    with pytest.raises(ValueError, match="exceed the float16 range.*dtype='float32'"):
        embed(counts, bundle, level="gene", out=out, dtype="float16", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gene-embeddings"]  # no partial store; float32 one stays
    assert read_gene_embeddings(out).values.dtype == np.float32
    with pytest.raises(ValueError, match="exceed the float16 range"):
        embed(counts, bundle, dtype="float16", progress=False)


def test_reading_something_else_says_so(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "table.zarr").write_text("not a store")
    for path in (tmp_path / "folder", tmp_path / "table.zarr"):  # zarr raised GroupNotFoundError
        with pytest.raises(ValueError, match="is not a complete bulkformer gene-embedding store"):
            read_gene_embeddings(path)


def test_genes_by_samples_anndata_keeps_its_sample_annotations(setup):
    """An R-style genes x samples AnnData: samples are its var, so results go there."""
    import anndata

    bundle, counts = setup
    adata = anndata.AnnData(counts.T.to_numpy(dtype=np.float32))
    adata.obs_names = list(counts.columns)
    adata.var_names = [str(s) for s in counts.index]
    adata.var["group"] = [f"g{i}" for i in range(counts.shape[0])]
    out = embed(adata, bundle, aggregate="mean", orientation="genes_by_samples", progress=False)
    assert np.allclose(out.varm["X_bulkformer"], embed(counts, bundle, aggregate="mean", progress=False).to_numpy(),
                       atol=1e-6)  # was an AnnData shape error after the whole run
    imputed = bulkformer.impute(adata, bundle, orientation="genes_by_samples", progress=False)
    assert list(imputed.obs_names) == list(adata.var_names)
    assert list(imputed.obs["group"]) == list(adata.var["group"])  # was an empty obs


def test_renamed_samples_keep_anndata_obs(setup):
    import anndata

    bundle, counts = setup
    adata = anndata.AnnData(counts.to_numpy(dtype=np.float32))
    adata.obs_names = [str(s) for s in counts.index]
    adata.var_names = list(counts.columns)
    adata.obs["group"] = [f"g{i}" for i in range(counts.shape[0])]
    names = [f"patient{i}" for i in range(counts.shape[0])]
    imputed = bulkformer.impute(adata, bundle, samples=names, progress=False)
    assert list(imputed.obs_names) == names and list(imputed.obs["group"]) == list(adata.obs["group"])


def test_imputed_anndata_keeps_the_samples_matrices_and_uns(setup):
    """A scanpy user's PCA, neighbour graph and uns stay with the imputed AnnData (they
    were dropped); DataFrames in obsm follow renamed samples."""
    import anndata
    from scipy import sparse

    bundle, counts = setup
    n = len(counts)
    pca = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    adata = anndata.AnnData(counts.to_numpy(dtype=np.float32), obs=pd.DataFrame({"batch": ["a"] * n}),
                            obsm={"X_pca": pca},
                            obsp={"connectivities": sparse.identity(n, format="csr")},
                            uns={"batch_colors": ["#ff0000"], "bulkformer": {"stale": 1}})
    adata.obs_names = [str(s) for s in counts.index]
    adata.var_names = list(counts.columns)
    adata.obsm["meta"] = pd.DataFrame({"x": np.arange(n)}, index=adata.obs_names)
    for out in (bulkformer.impute(adata, bundle, progress=False),
                bulkformer.impute(adata, bundle, samples=[f"s{i}" for i in range(n)], progress=False)):
        np.testing.assert_array_equal(out.obsm["X_pca"], pca)
        assert list(out.obsm["meta"].index) == list(out.obs_names) and out.obsm["meta"]["x"].tolist() == list(range(n))
        assert (out.obsp["connectivities"] != sparse.identity(n)).nnz == 0
        assert list(out.uns["batch_colors"]) == ["#ff0000"] and out.obs["batch"].tolist() == ["a"] * n
        assert set(out.uns["bulkformer"]) == {"mapping_report", "which", "model"}  # ours replaces a stale one
    out.uns["batch_colors"][0] = "changed"
    assert adata.uns["batch_colors"][0] == "#ff0000"  # a copy, not the input's lists
    transposed = anndata.AnnData(adata.X.T.copy(), obs=adata.var.copy(), var=adata.obs.copy(),
                                 varm={"X_pca": pca}, uns={"batch_colors": ["#ff0000"]})
    out = bulkformer.impute(transposed, bundle, orientation="genes_by_samples", progress=False)
    np.testing.assert_array_equal(out.obsm["X_pca"], pca)
    assert list(out.uns["batch_colors"]) == ["#ff0000"]
