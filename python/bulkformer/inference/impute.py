"""Imputation: log1p TPM for the vocabulary genes a data set lacks (or denoised
values for all genes), from a bundle and raw or normalised expression."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..bundle import Bundle
from ..errors import ArgumentError
from ..io import SampleSlots
from ..model import MASK_VALUE
from ..options import split
from ..preprocess.vocabulary import vocabulary_positions
from ..runtime import Runtime
from .distributed import ensure_process_group, gather_rows, local_device, shard_rows
from .execution import Engine
from ..io import is_anndata
from .inputs import prepare_for
from .records import report_dict, without_none

_WHICH = ("missing", "all")
# the arrays frame() labels (samples x vocabulary genes each)
_ARRAYS = ("imputed", "observed", "predicted", "values")


@dataclass
class ImputationResult:
    """All arrays are samples x vocabulary genes (float32 log1p TPM).

    values: the model's input (-10 where not measured, and at the genes ``mask_genes``
    hid); predicted: the model's output for every gene, as its release defines it: v2's
    mask-corrected head, v1's ReLU head (>= 0), bulkformer-latest's raw head, which is
    unconstrained and can be slightly negative (returned as it is, never clipped); observed (computed): the input, NaN where not measured; imputed (computed):
    observed where measured, model prediction where missing; measured: (G,) which
    vocabulary genes the data set measures; gene_symbols: the vocabulary's symbol of each
    gene (None where it has none); input_ids: the input gene label(s) behind each measured
    gene (see ``PreparedInput.input_ids``). observed and imputed are made when asked for:
    held as well, they made a call hold four result-sized matrices instead of two."""

    values: np.ndarray
    predicted: np.ndarray
    measured: np.ndarray
    sample_ids: list[str]
    gene_ids: list[str]
    report: Any  # bulkformer.preprocess.MappingReport
    model: dict[str, Any] | None = None  # Bundle.describe(): which model produced it
    gene_symbols: list[str | None] | None = None
    input_ids: list[str | None] | None = None

    @property
    def observed(self) -> np.ndarray:
        return np.where(self.values == MASK_VALUE, np.float32(np.nan), self.values)

    @property
    def imputed(self) -> np.ndarray:
        return np.where(self.values == MASK_VALUE, self.predicted, self.values)

    def to_frame(self, which: str = "missing") -> pd.DataFrame:
        """``missing``: imputed values of the unmeasured genes; ``all``: predictions."""
        _check_which(which)
        if which == "all":
            values, columns = self.predicted, self.gene_ids
        else:
            keep = ~self.measured  # genes no sample measures: the imputed values are the predictions
            values = self.predicted[:, keep]
            columns = [g for g, k in zip(self.gene_ids, keep) if k]
        frame = pd.DataFrame(values, index=pd.Index(self.sample_ids, name="sample"), columns=pd.Index(columns, name="gene"))
        # attrs hold small things only: pandas deep-copies them on every column operation,
        # so a per-gene list there made writing 20,000 columns take a minute (gene_annotation)
        frame.attrs["mapping_report"] = report_dict(self.report)
        frame.attrs["model"] = self.model
        return frame

    def frame(self, name: str = "imputed") -> pd.DataFrame:
        """One of the arrays (``imputed``, ``observed``, ``predicted``, ``values``) as a
        samples x vocabulary genes DataFrame labelled by sample and gene ID: the arrays
        themselves carry no labels, so a column could be read as the wrong gene."""
        if name not in _ARRAYS:
            raise ArgumentError(f"name must be one of {', '.join(map(repr, _ARRAYS))}, got {name!r}",
                                argument="name", value=name)
        frame = pd.DataFrame(getattr(self, name), index=pd.Index(self.sample_ids, name="sample"),
                             columns=pd.Index(self.gene_ids, name="gene"))
        frame.attrs["mapping_report"] = report_dict(self.report)
        frame.attrs["model"] = self.model
        return frame

    def gene_annotation(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The ``var`` table of an AnnData over ``frame``'s genes (from :meth:`to_frame`): the
        gene IDs as index and their symbols (scanpy users label plots with these)."""
        var = pd.DataFrame(index=pd.Index([str(c) for c in frame.columns], name="gene"))
        if self.gene_symbols is not None:
            symbol_of = dict(zip(self.gene_ids, self.gene_symbols))
            var["symbol"] = ["" if symbol_of.get(g) is None else str(symbol_of[g]) for g in var.index]  # h5ad: ""
        return var


def _check_which(which: str) -> None:
    if which not in _WHICH:
        raise ValueError(f"which must be 'missing' (values for the genes the data lacks) or 'all' (denoised "
                         f"predictions for every vocabulary gene), got {which!r}")


def run_imputation(
    data: Any,
    model: Bundle | str | Path,
    *,
    which: str = "missing",
    mask_genes: Sequence[str] | None = None,
    runtime: Runtime | None = None,
    **options: Any,
) -> ImputationResult:
    """Align ``data`` to the model's vocabulary, run the model, return every view of
    the result (see :class:`ImputationResult`). ``mask_genes`` (vocabulary genes by
    Ensembl ID or symbol): measured genes to impute anyway; they are set to -10 (not
    measured) before the model runs, and come out as imputed. Under torchrun, samples
    are sharded across ranks and every rank returns the whole result.

    ``data``: a table, path, AnnData or :class:`~bulkformer.dataspec.DataSpec` (or a prepared
    input); ``runtime``: a :class:`~bulkformer.runtime.Runtime`. ``options``: the DataSpec's
    fields and the Runtime's settings as keywords (``input="tpm"``, ``batch_size=8``, ...)."""
    _check_which(which)
    spec, run = split(data, runtime, options, "run_imputation")
    engine = Engine.of(model, run, device=local_device(run.device))
    ensure_process_group(engine.device)
    prepared = prepare_for(spec, engine.bundle)
    values = np.asarray(prepared.values, dtype=np.float32)
    measured = np.asarray(prepared.measured, dtype=bool)
    if mask_genes is not None:
        # the release's way to impute measured genes: hide them (-10), then predict
        hidden = vocabulary_positions(list(mask_genes), list(prepared.gene_ids))
        values = values.copy()
        values[:, hidden] = MASK_VALUE
        measured = measured.copy()
        measured[hidden] = False
    shard = shard_rows(values.shape[0], engine.batch_size)
    predicted = np.empty((len(shard.rows), values.shape[1]), dtype=np.float32)
    for batch in engine.stream(values, prepared.mask_prob, rows=shard.rows, description="imputing"):
        predicted[batch.start - shard.rows.start:batch.stop - shard.rows.start] = batch.expr
    predicted = gather_rows(shard, predicted)
    return ImputationResult(
        values=values, predicted=predicted,
        measured=measured,
        sample_ids=[str(s) for s in prepared.sample_ids], gene_ids=list(prepared.gene_ids),
        report=prepared.report, model=engine.bundle.describe(), gene_symbols=_symbols(engine.bundle, prepared.gene_ids),
        input_ids=prepared.input_ids,
    )


def _symbols(bundle: Bundle, gene_ids) -> list[str | None]:
    table = bundle.genes
    symbol_of = dict(zip(table["ensembl_id"].astype(str), table["symbol"]))
    return [None if pd.isna(symbol_of.get(str(g))) else str(symbol_of[str(g)]) for g in gene_ids]


def impute(
    data: Any,
    model: Bundle | str | Path,
    *,
    which: str = "missing",
    mask_genes: Sequence[str] | None = None,
    runtime: Runtime | None = None,
    **options: Any,
):
    """Impute expression with BulkFormer.

    ``which="missing"`` returns log1p TPM for the vocabulary genes the data lacks;
    ``"all"`` returns denoised predictions for every vocabulary gene. A DataFrame
    (samples x genes, ``attrs["mapping_report"]`` and ``attrs["model"]``, see
    ``Bundle.describe``) is returned, or, for AnnData input, an AnnData over the returned
    genes (``X`` and ``layers["bulkformer_imputed"]``, the input's ``obs``, ``obsm``, ``obsp`` and
    ``uns`` (its ``var``, ``varm`` and ``varp`` for ``orientation="genes_by_samples"``),
    ``var["symbol"]``, ``uns["bulkformer"]["mapping_report"]`` and ``["model"]``). The genes' symbols are in the
    model's vocabulary (``bundle.genes``) and in :meth:`ImputationResult.gene_annotation`.

    ``mask_genes``: measured genes to impute as well (hidden first, see
    :func:`run_imputation`); they join the "missing" genes.

    The values are the model's predictions on its natural log1p TPM scale. For
    bulkformer-latest they are its head's raw output, unconstrained: a gene predicted
    near zero can come out slightly negative; bulkformer returns it as it is.

    ``data``: a table, path, AnnData, prepared input, or a :class:`~bulkformer.dataspec.DataSpec`
    saying how to read it (input kind, gene IDs or the AnnData column holding them,
    orientation, lengths, layer, min_matched_fraction; see
    :func:`bulkformer.preprocess.prepare`). ``runtime``: a
    :class:`~bulkformer.runtime.Runtime` (device None picks cuda > mps > cpu; precision
    None is bf16 autocast on CUDA, fp16 on MPS, fp32 on CPU; batch_size; progress).
    ``options``: those fields and settings as keywords, laid over ``data`` and
    ``runtime`` (``gene_names=`` is the deprecated spelling of ``genes=``).

    Example::

        frame = bulkformer.impute(counts, "models/bulkformer-147M")          # missing genes
        denoised = bulkformer.impute(tpm, bundle, which="all", input="tpm")   # TPM table
    """
    spec, run = split(data, runtime, options, "impute")
    result = run_imputation(spec, model, which=which, mask_genes=mask_genes, runtime=run)
    frame = result.to_frame(which)
    if not is_anndata(spec.source):
        return frame
    return _as_anndata(frame, result.gene_annotation(frame), spec.source, which, spec.orientation)


def _as_anndata(frame: pd.DataFrame, var: pd.DataFrame, source, which: str, orientation: str = "samples_by_genes"):
    import anndata

    # the sample annotations (var of a genes x samples AnnData) and, with them, the per-sample
    # matrices (a PCA, a UMAP, neighbour graphs) and uns; rows keep the input's order (samples=
    # may have renamed them), so they are carried over by position
    slots = SampleSlots.of(source, orientation)
    same_samples = len(slots.obs) == len(frame.index)
    obs = slots.obs if same_samples else pd.DataFrame(index=frame.index)
    obs.index = pd.Index([str(s) for s in frame.index], name=obs.index.name)
    values = frame.to_numpy(dtype=np.float32)
    adata = anndata.AnnData(X=values, obs=obs, var=var, layers={"bulkformer_imputed": values.copy()})
    if same_samples:
        slots.attach(adata)
    else:
        adata.uns.update(slots.uns)
    adata.uns["bulkformer"] = {"mapping_report": frame.attrs["mapping_report"], "which": which,
                               "model": without_none(frame.attrs["model"])}
    return adata
