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

from ..io import is_anndata

FEATURE_SETS = ("embedding", "raw_logtpm")

# prepare()'s data-description arguments, shared by embed()/impute() (genes -> gene_names there).
_DATA_ARGS = ("input", "samples", "orientation", "lengths", "layer")


def _bundle(model: Any):
    from bulkformer.bundle import Bundle, load

    if isinstance(model, Bundle):
        return model
    if model is None:
        raise ValueError("a model bundle (Bundle or bundle path) is needed to build these features")
    return load(os.fspath(model))


def logtpm_matrix(data: Any, model: Any, *, gene_names: Sequence[str] | None = None, **data_args: Any) -> pd.DataFrame:
    """Samples x vocabulary genes natural log1p TPM, NaN where the data set does not
    measure the gene (columns measured by no sample are dropped). ``model``: a Bundle,
    a bundle path, or a vocabulary DataFrame (ensembl_id, symbol, length)."""
    from bulkformer.model import MASK_VALUE
    from bulkformer.preprocess import prepare

    _check_data_args(data_args)
    vocabulary = model if isinstance(model, pd.DataFrame) else _bundle(model)
    prepared = prepare(data, vocabulary, genes=gene_names, **data_args)
    values = np.asarray(prepared.values, dtype=np.float32)
    frame = pd.DataFrame(np.where(values == MASK_VALUE, np.nan, values), index=pd.Index(prepared.sample_ids, name="sample"),
                         columns=pd.Index(prepared.gene_ids, name="gene"))
    return frame.loc[:, frame.notna().any(axis=0)]


def raw_logtpm_features(data: Any, model: Any, *, gene_names: Sequence[str] | None = None, **data_args: Any) -> pd.DataFrame:
    """The baseline: samples x measured vocabulary genes log1p TPM (genes that any
    sample lacks are dropped so that the matrix is complete)."""
    frame = logtpm_matrix(data, model, gene_names=gene_names, **data_args)
    complete = frame.loc[:, frame.notna().all(axis=0)]
    if complete.shape[1] == 0:
        raise ValueError("no vocabulary gene is measured in every sample; cannot build the raw log1p TPM baseline")
    return complete


def embedding_features(data: Any, model: Any, *, aggregate: str | None = None, genes: Sequence[str] | None = None,
                       gene_names: Sequence[str] | None = None, batch_size: int = 16, device: str | None = None,
                       progress: bool = False, **data_args: Any) -> pd.DataFrame:
    """Samples x feature_dim BulkFormer sample embeddings (``bulkformer.embed``)."""
    from bulkformer.inference import embed
    from bulkformer.inference.inputs import prepare_for

    _check_data_args(data_args)
    bundle = _bundle(model)
    if is_anndata(data):
        # embed() returns AnnData for AnnData; from the aligned input it returns a
        # DataFrame, with the same sample IDs as raw_logtpm_features
        data = prepare_for(data, bundle, gene_names=gene_names, **data_args)
    frame = embed(data, bundle, level="sample", aggregate=aggregate, genes=genes, gene_names=gene_names,
                  batch_size=batch_size, device=device, progress=progress, **data_args)
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


def sample_ids(data: Any, *, orientation: str = "samples_by_genes", layer: str | None = None,
               gene_names: str | None = None) -> list[str]:
    """The data's sample IDs without reading its values (a file's ID column, a frame's
    index), so that labels can be checked before the expensive embedding pass. ``data``:
    a file path or a DataFrame; AnnData gives its ``obs_names``. For a file, ``layer``
    and ``gene_names`` (an h5ad gene-ID column) are checked on the way."""
    if isinstance(data, pd.DataFrame):
        ids = data.index if orientation == "samples_by_genes" else data.columns
    elif is_anndata(data):  # genes x samples (R-style) has the samples as its variables
        ids = data.var_names if orientation == "genes_by_samples" else data.obs_names
    elif isinstance(data, (str, os.PathLike)):
        from bulkformer.io import read_sample_ids

        ids = read_sample_ids(data, orientation=orientation, layer=layer, genes=gene_names)
    else:
        raise ValueError(f"cannot read sample IDs from {type(data).__name__}; pass a file path or a DataFrame")
    return [str(s) for s in ids]


def feature_sets(data: Any, model: Any, *, include: Sequence[str] = FEATURE_SETS, aggregate: str | None = None,
                 genes: Sequence[str] | None = None, gene_names: Sequence[str] | None = None, batch_size: int = 16,
                 device: str | None = None, progress: bool = False, **data_args: Any) -> dict[str, pd.DataFrame]:
    """``{"embedding": ..., "raw_logtpm": ...}`` for the same samples, ready for
    ``bulkformer.tasks.<task>.evaluate``. ``data_args``: prepare()'s ``input``,
    ``samples``, ``orientation``, ``lengths``, ``layer``."""
    check_include(include)
    bundle = _bundle(model)
    sets: dict[str, pd.DataFrame] = {}
    if "embedding" in include:
        sets["embedding"] = embedding_features(data, bundle, aggregate=aggregate, genes=genes, gene_names=gene_names,
                                               batch_size=batch_size, device=device, progress=progress, **data_args)
    if "raw_logtpm" in include:
        sets["raw_logtpm"] = raw_logtpm_features(data, bundle, gene_names=gene_names, **data_args)
    return sets


def gene_embedding_features(data: Any, model: Any, genes: Sequence[str], *, gene_names: Sequence[str] | None = None,
                            batch_size: int = 16, device: str | None = None, out: str | os.PathLike | None = None,
                            **data_args: Any) -> pd.DataFrame:
    """Gene-level BulkFormer embeddings of ``genes`` in every sample, as a DataFrame
    indexed by (sample, gene) with one column per embedding dimension (through the
    on-disk store of ``bulkformer.embed(level="gene")``)."""
    from bulkformer.inference import embed, read_gene_embeddings

    _check_data_args(data_args)
    with tempfile.TemporaryDirectory(prefix="bulkformer-genes-") as tmp:
        store = embed(data, _bundle(model), level="gene", genes=list(genes), gene_names=gene_names,
                      out=out or os.path.join(tmp, "genes.zarr"), batch_size=batch_size, device=device,
                      progress=False, **data_args)
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


def _check_data_args(data_args: dict[str, Any]) -> None:
    unknown = [name for name in data_args if name not in _DATA_ARGS]
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown}; data-description arguments are {_DATA_ARGS} (+ gene_names)")
