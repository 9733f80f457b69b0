"""The two feature sets every task compares, built through the same code path:

* ``embedding``: BulkFormer sample embeddings (``bulkformer.embed``) or gene-level
  embeddings per (sample, gene);
* ``raw_logtpm``: plain natural log1p TPM of the same samples over the model's
  vocabulary genes the data measures (``bulkformer.preprocess.prepare``), so that any
  gain of the embedding is measured against the same head on the same samples.

Task functions take these matrices; nothing here fits a head.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from ..dataspec import DataSpec
from ..io import is_anndata
from ..options import split
from ..runtime import Runtime

FEATURE_SETS = ("embedding", "raw_logtpm")


def model_bundle(model: Any):
    """A Bundle as it is, or loaded from a bundle path."""
    from bulkformer.bundle import Bundle, load

    if isinstance(model, Bundle):
        return model
    if model is None:
        raise ValueError("a model bundle (Bundle or bundle path) is needed to build these features")
    return load(os.fspath(model))


def _quiet_runtime(runtime: Runtime | None, options: dict[str, Any]) -> Runtime | None:
    """Feature builders show no progress bar unless asked to (they run inside a task)."""
    if runtime is None and "progress" not in options:
        return Runtime(progress=False)
    return runtime


def logtpm_matrix(data: Any, model: Any, **options: Any) -> pd.DataFrame:
    """Samples x vocabulary genes natural log1p TPM, NaN where the data set does not
    measure the gene (columns measured by no sample are dropped). ``data``: a table,
    path, AnnData or :class:`~bulkformer.dataspec.DataSpec`, ``options`` its fields as
    keywords; ``model``: a Bundle, a bundle path, or a vocabulary DataFrame (ensembl_id,
    symbol, length)."""
    from bulkformer.model import MASK_VALUE

    spec, _ = split(data, None, options, "logtpm_matrix")
    vocabulary = model if isinstance(model, pd.DataFrame) else model_bundle(model)
    prepared = spec.prepare(vocabulary)
    values = np.asarray(prepared.values, dtype=np.float32)
    frame = pd.DataFrame(np.where(values == MASK_VALUE, np.nan, values), index=pd.Index(prepared.sample_ids, name="sample"),
                         columns=pd.Index(prepared.gene_ids, name="gene"))
    return frame.loc[:, frame.notna().any(axis=0)]


def raw_logtpm_features(data: Any, model: Any, **options: Any) -> pd.DataFrame:
    """The baseline: samples x measured vocabulary genes log1p TPM (genes that any
    sample lacks are dropped so that the matrix is complete)."""
    frame = logtpm_matrix(data, model, **options)
    complete = frame.loc[:, frame.notna().all(axis=0)]
    if complete.shape[1] == 0:
        raise ValueError("no vocabulary gene is measured in every sample; cannot build the raw log1p TPM baseline")
    return complete


def embedding_features(data: Any, model: Any, *, aggregate: str | None = None, genes: Sequence[str] | None = None,
                       runtime: Runtime | None = None, **options: Any) -> pd.DataFrame:
    """Samples x feature_dim BulkFormer sample embeddings (``bulkformer.embed``); ``genes``:
    the vocabulary genes pooled over (the data's gene IDs are the DataSpec's)."""
    from bulkformer.inference.embed import embed
    from bulkformer.inference.inputs import prepare_for

    spec, run = split(data, _quiet_runtime(runtime, options), options, "embedding_features", genes_is_subset=True)
    bundle = model_bundle(model)
    if is_anndata(spec.source):
        # embed() returns AnnData for AnnData; from the aligned input it returns a
        # DataFrame, with the same sample IDs as raw_logtpm_features
        spec = DataSpec(prepare_for(spec, bundle))
    frame = embed(spec, bundle, level="sample", aggregate=aggregate, genes=genes, runtime=run)
    frame = pd.DataFrame(frame).astype(np.float64)
    frame.columns = [f"emb_{i}" for i in range(frame.shape[1])]
    return frame


def check_include(include: Sequence[str]) -> list[str]:
    """Feature set names: known, at least one, none twice."""
    include = list(include)
    unknown = [name for name in include if name not in FEATURE_SETS]
    if unknown:
        raise ValueError(f"unknown feature set(s) {unknown}; choose from {', '.join(FEATURE_SETS)}")
    if not include:
        raise ValueError(f"no feature set chosen; choose one or more of {', '.join(FEATURE_SETS)}")
    if len(set(include)) < len(include):
        raise ValueError(f"a feature set is named twice in {include}")
    return include


def sample_ids(data: Any, **options: Any) -> list[str]:
    """The data's sample IDs without reading its values (a file's ID column, a frame's
    index), so that labels can be checked before the expensive embedding pass. ``data``:
    a file path, a DataFrame, an AnnData (its ``obs_names``) or a DataSpec of one; for a
    file, the layer and the h5ad gene-ID column (``genes``) are checked on the way."""
    spec, _ = split(data, None, options, "sample_ids")
    source, orientation = spec.source, spec.orientation
    if isinstance(source, pd.DataFrame):
        ids = source.index if orientation == "samples_by_genes" else source.columns
    elif is_anndata(source):  # genes x samples (R-style) has the samples as its variables
        ids = source.var_names if orientation == "genes_by_samples" else source.obs_names
    elif isinstance(source, (str, os.PathLike)):
        from bulkformer.io import read_sample_ids

        ids = read_sample_ids(source, orientation=orientation, layer=spec.layer, genes=spec.genes)
    else:
        raise ValueError(f"cannot read sample IDs from {type(source).__name__}; pass a file path or a DataFrame")
    return [str(s) for s in ids]


def feature_sets(data: Any, model: Any, *, include: Sequence[str] = FEATURE_SETS, aggregate: str | None = None,
                 genes: Sequence[str] | None = None, runtime: Runtime | None = None,
                 **options: Any) -> dict[str, pd.DataFrame]:
    """``{"embedding": ..., "raw_logtpm": ...}`` for the same samples, ready for
    ``bulkformer.tasks.<task>.evaluate``. ``data``: raw or a DataSpec; ``options``: the
    DataSpec's fields (but ``genes``, here the genes pooled over) and the Runtime's
    settings as keywords."""
    check_include(include)
    spec, run = split(data, _quiet_runtime(runtime, options), options, "feature_sets", genes_is_subset=True)
    bundle = model_bundle(model)
    sets: dict[str, pd.DataFrame] = {}
    if "embedding" in include:
        sets["embedding"] = embedding_features(spec, bundle, aggregate=aggregate, genes=genes, runtime=run)
    if "raw_logtpm" in include:
        sets["raw_logtpm"] = raw_logtpm_features(spec, bundle)
    return sets


def gene_embedding_features(data: Any, model: Any, genes: Sequence[str], *, out: str | os.PathLike | None = None,
                            runtime: Runtime | None = None, **options: Any) -> pd.DataFrame:
    """Gene-level BulkFormer embeddings of ``genes`` in every sample, as a DataFrame
    indexed by (sample, gene) with one column per embedding dimension (through the
    on-disk store of ``bulkformer.embed(level="gene")``)."""
    from bulkformer.inference.embed import embed
    from bulkformer.inference.stores import read_gene_embeddings

    spec, run = split(data, _quiet_runtime(runtime, options), options, "gene_embedding_features",
                      genes_is_subset=True)
    with tempfile.TemporaryDirectory(prefix="bulkformer-genes-") as tmp:
        store = embed(spec, model_bundle(model), level="gene", genes=list(genes),
                      out=out or os.path.join(tmp, "genes.zarr"), runtime=run)
        return gene_store_to_frame(read_gene_embeddings(store))


def gene_store_to_frame(stored: Any) -> pd.DataFrame:
    """(sample, gene) x dims from what ``read_gene_embeddings`` returns: an object with
    ``values`` (samples x genes x dims) and ``sample_ids``/``gene_ids``, or an
    xarray-like with ``.dims``/``.coords``, or a dict of those three entries."""
    if isinstance(stored, dict):
        values, samples, genes = stored["values"], stored["sample_ids"], stored["gene_ids"]
    elif hasattr(stored, "sample_ids"):
        values, samples, genes = stored.values, stored.sample_ids, stored.gene_ids
    elif hasattr(stored, "coords"):
        values = stored.values
        samples, genes = list(stored.coords[stored.dims[0]].values), list(stored.coords[stored.dims[1]].values)
    else:
        raise TypeError(f"cannot read gene embeddings from {type(stored).__name__}")
    values = np.asarray(values, dtype=np.float64)
    n_samples, n_genes, dims = values.shape
    index = pd.MultiIndex.from_product([[str(s) for s in samples], [str(g) for g in genes]], names=["cell_line", "gene"])
    return pd.DataFrame(values.reshape(n_samples * n_genes, dims), index=index, columns=[f"emb_{i}" for i in range(dims)])


def gene_logtpm_features(logtpm: pd.DataFrame, genes: Sequence[str], *, n_components: int = 16, seed: int = 0) -> pd.DataFrame:
    """The gene-level baseline: per (sample, gene), the gene's log1p TPM in that sample
    plus the top principal components of the gene's standardised expression profile
    across all samples (a label-free description of the gene, as a gene embedding also
    carries one). ``logtpm``: samples x genes, complete."""
    if not isinstance(logtpm, pd.DataFrame):
        raise ValueError("logtpm must be a samples x genes DataFrame")
    absent = [g for g in genes if g not in logtpm.columns]
    if absent:
        raise ValueError(f"{len(absent)} genes are not columns of logtpm, e.g. {absent[:5]}")
    if logtpm.isna().any().any():
        raise ValueError("logtpm has NaN; use raw_logtpm_features (complete genes) or impute first")
    profiles = StandardScaler().fit_transform(logtpm.to_numpy(np.float64)).T  # genes x samples
    k = max(1, min(n_components, profiles.shape[0] - 1, profiles.shape[1]))
    components = PCA(n_components=k, random_state=seed).fit_transform(profiles)
    component = pd.DataFrame(components, index=logtpm.columns.astype(str), columns=[f"profile_PC{i + 1}" for i in range(k)])
    genes = [str(g) for g in genes]
    block = logtpm.copy()
    block.columns = block.columns.astype(str)
    block.index = block.index.astype(str)
    long = block[genes].stack(future_stack=True).rename("expression").to_frame()
    long.index = long.index.set_names(["cell_line", "gene"])
    return long.join(component, on="gene")
