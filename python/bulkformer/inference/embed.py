"""Embeddings: per sample (aggregated over genes) or per gene (streamed to disk)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..atomic import check_replaceable
from ..bundle import Bundle
from ..model import MASK_VALUE
from ..options import split
from ..preprocess.vocabulary import vocabulary_positions
from ..runtime import Runtime
from .distributed import barrier, ensure_process_group, gather_rows, local_device, shard_rows
from .execution import Engine
from .records import report_dict, without_none
from ..io import is_anndata
from .inputs import prepare_for
from .stores import (STORE_MARKERS, GeneEmbeddingWriter, cast_checked, check_dtype, check_store_path,
                     discard_staging)

_AGGREGATES = ("max", "mean", "median", "all", "observed_mean")
_LEVELS = ("sample", "gene")


def aggregate_genes(features: np.ndarray, how: str, observed: np.ndarray | None = None) -> np.ndarray:
    """B x genes x F -> B x F: max / mean / median over genes, or "all" = their sum
    (REFERENCE.md). The median is numpy's (mean of the two middle values).
    "observed_mean": each sample's mean over the genes it measured (``observed``, B x
    genes, True where the input was not -10), bulkformer-latest's sample embedding."""
    if how == "observed_mean":
        if observed is None:
            raise ValueError("aggregate='observed_mean' needs the observed-gene mask")
        counts = observed.sum(axis=1)
        if (counts == 0).any():
            row = int(np.flatnonzero(counts == 0)[0])
            raise ValueError(f"sample {row} of the batch measures none of the genes pooled over: choose genes= it "
                             "measures, or another aggregate")
        weights = observed.astype(np.float64)
        total = np.einsum("bg,bgf->bf", weights, features, dtype=np.float64)
        return (total / counts[:, None]).astype(np.float32)
    if how == "max":
        return features.max(axis=1)
    if how == "mean":
        return features.mean(axis=1, dtype=np.float64).astype(np.float32)
    if how == "median":
        return np.median(features, axis=1).astype(np.float32)
    if how == "all":
        return (aggregate_genes(features, "max") + aggregate_genes(features, "mean")
                + aggregate_genes(features, "median"))
    raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, got {how!r}")


def gene_positions(genes: Sequence[str] | None, gene_ids: list[str]) -> np.ndarray:
    """Positions of a gene subset (Ensembl IDs, versioned or not, or symbols) in the vocabulary."""
    if genes is None:
        return np.arange(len(gene_ids))
    return vocabulary_positions(genes, gene_ids)


def embed(
    data: Any,
    model: Bundle | str | Path,
    *,
    level: str = "sample",
    aggregate: str | None = None,
    genes: Sequence[str] | None = None,
    out: str | Path | None = None,
    dtype: str = "float32",
    fuse_gene_features: bool = False,
    runtime: Runtime | None = None,
    **options: Any,
):
    """BulkFormer embeddings.

    ``level="sample"``: samples x feature_dim (d+3 for v2, d for v1 and latest),
    aggregated over ``genes`` (default: all vocabulary genes) by ``aggregate`` (max /
    mean / median / all = their sum / observed_mean = each sample's mean over the genes
    it measured; default: the model layout's, max for v1/v2 and observed_mean for
    bulkformer-latest, as each release extracts them); a DataFrame (``attrs["mapping_report"]``, ``attrs["model"]``), or for
    AnnData input a copy with ``obsm["X_bulkformer"]`` (``varm`` for a genes x samples
    AnnData, ``orientation="genes_by_samples"``) and ``uns["bulkformer"]``.

    ``level="gene"``: the B x genes x feature_dim tensor (optionally concatenated
    with the bundle's per-gene table, ``fuse_gene_features=True``) is streamed batch by
    batch into a zarr store at ``out`` (``dtype`` float32 or float16); returns its path.
    Read it with :func:`bulkformer.inference.read_gene_embeddings`.

    ``genes`` here is the subset of vocabulary genes to embed or pool; the data's own gene
    IDs (or the AnnData / h5ad column holding them) are the DataSpec's ``genes``:
    ``embed(DataSpec(adata, genes="gene_ids"), model)`` (``gene_names="gene_ids"`` still
    works, with a DeprecationWarning).

    ``data``, ``runtime`` and ``options`` (the DataSpec's other fields and the Runtime's
    settings as keywords) are those of :func:`bulkformer.impute`.

    Example::

        emb = bulkformer.embed(counts, bundle, aggregate="mean")
        path = bulkformer.embed(counts, bundle, level="gene", out="genes.zarr", dtype="float16")
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be 'sample' or 'gene', got {level!r}")
    if level == "sample" and aggregate is not None and aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, got {aggregate!r}")
    if level == "gene" and out is None:
        raise ValueError("level='gene' writes an on-disk store: pass out='embeddings.zarr'")
    if level == "sample" and out is not None:  # was ignored: nothing written, no warning
        raise ValueError("out= applies to level='gene' (an on-disk store); sample embeddings are returned: save the "
                         "DataFrame yourself (e.g. emb.to_parquet(...))")
    if level == "sample" and fuse_gene_features:
        raise ValueError("fuse_gene_features applies to level='gene' (the per-gene table is the same for every "
                         "sample, so it adds nothing to a sample embedding)")
    dtype = check_dtype(dtype)
    if level == "gene":
        # before the cohort is read and aligned, which can take minutes
        out = check_replaceable(check_store_path(out), STORE_MARKERS, "a gene-embedding store")
    spec, run = split(data, runtime, options, "embed", genes_is_subset=True)
    data, orientation = spec.source, spec.orientation
    engine = Engine.of(model, run, device=local_device(run.device))
    ensure_process_group(engine.device)
    bundle = engine.bundle
    aggregate = bundle.layout.sample_pooling if aggregate is None else aggregate
    table = None
    if fuse_gene_features:
        if bundle.gene_features is None:
            raise ValueError("this bundle has no per-gene feature table (gene_features.safetensors) to fuse; "
                             "import the release with its gene feature table (import_checkpoint's gene_features), or use "
                             "fuse_gene_features=False")
        table = bundle.gene_features.float().cpu().numpy()
    positions = gene_positions(genes, bundle.gene_ids)
    prepared = prepare_for(spec, bundle)
    values = np.asarray(prepared.values, dtype=np.float32)
    shard = shard_rows(values.shape[0], engine.batch_size)
    report = report_dict(prepared.report)
    sample_ids = [str(s) for s in prepared.sample_ids]

    if level == "sample":
        width = bundle.config.feature_dim
        part = np.empty((len(shard.rows), width), dtype=np.float32)
        for batch in engine.stream(values, prepared.mask_prob, want_expr=False, feature_index=positions,
                                   rows=shard.rows, description="embedding"):
            observed = values[batch.start:batch.stop][:, positions] != MASK_VALUE
            part[batch.start - shard.rows.start:batch.stop - shard.rows.start] = aggregate_genes(
                batch.features, aggregate, observed)
        matrix = gather_rows(shard, part)
        frame = pd.DataFrame(cast_checked(matrix, dtype), index=pd.Index(sample_ids, name="sample"),
                             columns=[f"bf_{i}" for i in range(width)])
        frame.attrs["mapping_report"] = report
        frame.attrs["model"] = bundle.describe()
        frame.attrs["aggregate"] = aggregate
        if not is_anndata(data):
            return frame
        # a backed AnnData cannot be copied without a file name: the copy is made in memory.
        # Repeated names were warned about when the AnnData was made (and repeated genes
        # are reported by the mapping); anndata would warn again for the copy.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(Observation|Variable) names are not unique")
            adata = data.to_memory() if getattr(data, "isbacked", False) else data.copy()
        # genes x samples AnnData (R-style): the samples are its variables
        slot = adata.varm if orientation == "genes_by_samples" else adata.obsm
        slot["X_bulkformer"] = frame.to_numpy()
        adata.uns.setdefault("bulkformer", {}).update(mapping_report=report, model=without_none(bundle.describe()),
                                                      aggregate=aggregate)
        return adata

    width = bundle.config.feature_dim + (0 if table is None else table.shape[1])
    fused = None if table is None else table[positions]
    # the writer is made inside the try: a signal while it creates the staging store must
    # remove that store too
    try:
        if shard.is_main:
            writer = GeneEmbeddingWriter(out, n_samples=values.shape[0], n_genes=len(positions), feature_dim=width,
                                         dtype=dtype)
        barrier(shard)
        if not shard.is_main:
            writer = GeneEmbeddingWriter(out, create=False)
        for batch in engine.stream(values, prepared.mask_prob, want_expr=False, feature_index=positions,
                                   rows=shard.rows, description="gene embeddings"):
            features = batch.features
            if fused is not None:
                tiled = np.broadcast_to(fused, (features.shape[0], *fused.shape))
                features = np.concatenate([features, tiled], axis=-1)
            writer.write(batch.start, features)
        barrier(shard)
        if shard.is_main:
            writer.complete(
                sample_ids=sample_ids, gene_ids=[bundle.gene_ids[i] for i in positions],
                metadata={"mapping_report": report, "model": dict(bundle.metadata, **{"config": bundle.config.to_dict()}),
                          "fused_gene_features": fused is not None, "dtype": dtype},
            )
        barrier(shard)
    except BaseException:
        if shard.is_main:
            discard_staging(out)
        raise
    return str(out)
