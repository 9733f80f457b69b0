"""Build a gene co-expression graph the way the paper did: |Pearson r| between genes
over a cohort, each gene's top 20 partners, drop |r| < 0.4.

Memory: the cohort is standardised once into a float32 samples x genes matrix Z
(scaled so that r = Z^T Z); correlations are then computed ``block_size`` genes at a
time (block x G) and reduced to the top partners immediately, so the dense G x G
matrix never exists. For 20,000 genes x 100,000 samples: Z is 8 GB, one block of
2,048 genes 164 MB, the edges a few MB (well inside 24 GiB).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .arguments import check_at_least
from .atomic import atomic_file

TOP_K = 20
MIN_ABS_R = 0.4


@dataclass
class GeneGraph:
    """Receiver-first edge index (gene ``edge_index[0, e]`` receives from
    ``edge_index[1, e]``) with |r| weights, over ``gene_ids`` (bundle format)."""

    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    gene_ids: list[str]

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def save(self, path: str | Path) -> Path:
        """``graph.safetensors`` as in a bundle (edge_index, edge_weight; gene IDs in
        the metadata), written to a temporary name and renamed."""
        from safetensors.torch import save_file

        path = Path(path)
        with atomic_file(path) as staging:
            save_file({"edge_index": self.edge_index.contiguous(), "edge_weight": self.edge_weight.contiguous()},
                      str(staging), metadata={"gene_ids": "\n".join(self.gene_ids), "format": "bulkformer-graph"})
        return path


def _cohort_matrix(cohort: Any, genes: Sequence[str] | None, vocabulary: Any, input: str,
                   orientation: str, layer: str | None = None) -> tuple[np.ndarray, list[str]]:
    """samples x genes values and gene IDs (vocabulary order when a vocabulary is given)."""
    if vocabulary is not None:
        from .preprocess import prepare

        prepared = prepare(cohort, vocabulary, input=input, genes=genes, orientation=orientation, layer=layer)
        values = np.asarray(prepared.values, dtype=np.float32)
        values[:, ~np.asarray(prepared.measured, dtype=bool)] = np.nan  # unmeasured genes get no edges
        return values, list(prepared.gene_ids)
    from . import io

    if input != "logtpm":  # was ignored: a graph of raw counts, silently
        raise ValueError(f"input={input!r} needs vocabulary= (a model bundle or gene table): counts and TPM become "
                         "log1p TPM over its genes. Without one the values are correlated as they are: give log1p TPM")
    if isinstance(cohort, (str, Path)):
        # genes= may name an h5ad file's gene-ID column; the reader refuses anything else
        matrix = io.read_expression(cohort, orientation=orientation, layer=layer, genes=genes)
    else:
        matrix = io.as_matrix(cohort, genes=genes, orientation=orientation, layer=layer)
    _check_unaligned(matrix, orientation)
    return matrix.values, list(matrix.gene_ids)


def _check_unaligned(matrix: Any, orientation: str) -> None:
    """Values taken as they are (no vocabulary): nothing else checks them on the way, so a
    table the wrong way round (a graph over samples) or of raw counts is caught here."""
    from .preprocess import resolve_vocabulary
    from .preprocess.advice import genes_on_other_axis
    from .preprocess.ids import lookup_many, vocabulary_index
    from .preprocess.validate import LOG1P_TPM_MAX

    # an unlabelled array's row numbers are not Entrez IDs
    if [str(s) for s in matrix.sample_ids] != [str(i) for i in range(len(matrix.sample_ids))]:
        index = vocabulary_index(resolve_vocabulary(None))
        labels = [str(g) for g in matrix.gene_ids[:2000]]
        gene_match_rate = float((lookup_many(labels, index).positions >= 0).mean()) if labels else 0.0
        advice = genes_on_other_axis(matrix.sample_ids, gene_match_rate, index, orientation)
        if advice:
            raise ValueError(advice)
    largest = float(np.nanmax(matrix.values)) if matrix.values.size else 0.0
    if largest > LOG1P_TPM_MAX + 0.5:
        warnings.warn(f"values reach {largest:.3g}, above log1p(1e6) = {LOG1P_TPM_MAX:.2f}: these look like counts or "
                      "TPM, and without vocabulary= they are correlated as they are. Give log1p TPM, or pass a "
                      "vocabulary with input='counts' (or 'tpm')", UserWarning, stacklevel=4)


def standardise(values: np.ndarray, block: int = 4096) -> np.ndarray:
    """float32 Z with Z[:, j] = (x_j - mean_j) / ||x_j - mean_j|| (so r = Z^T Z); NaN
    columns and constant columns become 0 (no correlation). Statistics in float64,
    one column block at a time."""
    n_samples, n_genes = values.shape
    if n_samples < 3:
        raise ValueError(f"correlations need at least 3 samples, got {n_samples}")
    z = np.empty((n_samples, n_genes), dtype=np.float32)
    for start in range(0, n_genes, block):
        part = np.asarray(values[:, start:start + block], dtype=np.float64)
        bad = ~np.isfinite(part).all(axis=0)
        part = part - part.mean(axis=0)
        norm = np.sqrt((part ** 2).sum(axis=0))
        norm[(norm == 0) | bad] = np.inf
        part /= norm
        part[:, bad] = 0.0
        z[:, start:start + block] = part
    return z


def build_graph(
    cohort: Any,
    *,
    genes: Sequence[str] | None = None,
    vocabulary: Any = None,
    input: str = "logtpm",
    orientation: str = "samples_by_genes",
    top_k: int = TOP_K,
    min_abs_r: float = MIN_ABS_R,
    block_size: int = 2048,
    out: str | Path | None = None,
    layer: str | None = None,
) -> GeneGraph:
    """Co-expression graph over a cohort (samples x genes, log1p TPM or similar).

    Each gene receives from its ``top_k`` partners by |Pearson r| (itself excluded),
    keeping those with |r| >= ``min_abs_r``; weights are |r|. With ``vocabulary`` (a
    Bundle or gene table) the cohort is first aligned with ``bulkformer.preprocess.prepare``
    (``input``: counts / tpm / logtpm) and the graph covers the vocabulary, so it can
    replace a bundle's graph; genes the cohort lacks get no edges. Without
    ``vocabulary`` the values are correlated as they are (``input`` must stay "logtpm").
    ``out`` writes ``graph.safetensors`` (bundle format).

    ``cohort`` is anything ``prepare`` reads (DataFrame, NumPy array, AnnData or a
    CSV/TSV/parquet/h5ad path); ``genes`` names the columns of an unlabelled array, or
    for AnnData and h5ad files the ``var`` column holding the gene IDs (``obs`` for
    genes_by_samples),
    ``orientation`` is "samples_by_genes" (default) or "genes_by_samples"; ``layer``
    names the AnnData (h5ad) layer holding the values (default ``X``);
    ``block_size`` genes are correlated at a time (memory: block x genes floats).

    Example::

        graph = bulkformer.build_graph(log_tpm_frame)          # DataFrame samples x genes
        graph = bulkformer.build_graph(counts, vocabulary=bundle, input="counts", out="graph.safetensors")
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not 0 <= min_abs_r <= 1:
        raise ValueError(f"min_abs_r must be within [0, 1], got {min_abs_r}")
    block_size = check_at_least(block_size, 1, "block_size")  # before the cohort is read
    values, gene_ids = _cohort_matrix(cohort, genes, vocabulary, input, orientation, layer)
    z = torch.from_numpy(standardise(values))
    del values
    n_genes = z.shape[1]
    k = min(top_k, n_genes - 1)
    receivers, senders, weights = [], [], []
    for start in range(0, n_genes, block_size):
        stop = min(start + block_size, n_genes)
        corr = (z[:, start:stop].T @ z).abs_()  # block x G
        corr[torch.arange(stop - start), torch.arange(start, stop)] = -1.0  # a gene is not its own partner
        top, partner = torch.topk(corr, k, dim=1)
        keep = top >= min_abs_r
        rows = torch.arange(start, stop).unsqueeze(1).expand(-1, k)
        receivers.append(rows[keep])
        senders.append(partner[keep])
        weights.append(top[keep].clamp_(max=1.0))
    edge_index = torch.stack([torch.cat(receivers), torch.cat(senders)]).long()
    graph = GeneGraph(edge_index=edge_index, edge_weight=torch.cat(weights).float(), gene_ids=gene_ids)
    if out is not None:
        graph.save(out)
    return graph


def correlation_edges(log_expression: np.ndarray, top_k: int = 20,
                      min_abs_r: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """Receiver-first edge index and |r| weights over the columns of a samples x genes
    matrix, by :func:`build_graph` (each gene's ``top_k`` partners, |r| >= ``min_abs_r``):
    the graph of a new model, whose genes are its columns."""
    values = np.asarray(log_expression, dtype=np.float32)
    graph = build_graph(values, genes=[f"g{i}" for i in range(values.shape[1])], top_k=top_k, min_abs_r=min_abs_r)
    return graph.edge_index.long(), graph.edge_weight.float()


def read_graph(path: str | Path) -> GeneGraph:
    """Read a ``graph.safetensors`` written by :meth:`GeneGraph.save` (or a bundle's)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / "graph.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no graph file at {path}")
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata() or {}
    ids = metadata.get("gene_ids", "")
    return GeneGraph(tensors["edge_index"], tensors.get("edge_weight"), ids.split("\n") if ids else [])
