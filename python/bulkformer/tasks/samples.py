"""Matching per-sample tables to the data's samples before the embedding pass, by sample
ID, optionally on the first ``id_length`` characters of each ID (TCGA aliquot barcodes
against 15-character sample barcodes)."""
from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from ..dataspec import DataSpec
from ..errors import ArgumentError
from ..runtime import Runtime
from .common import on_samples
from .features import FEATURE_SETS, sample_ids


def check_id_length(id_length: int | None) -> int | None:
    """None, or a positive number of characters."""
    if id_length is not None and id_length < 1:
        raise ArgumentError(f"id_length must be at least 1 (the characters of a sample ID to match on), got {id_length}",
                            argument="id_length", value=id_length)
    return id_length


def cut_index(index: pd.Index, id_length: int | None) -> pd.Index:
    """The IDs cut to their first ``id_length`` characters (as they are without one)."""
    return index if not id_length else index.astype(str).str[:id_length]


def data_sample_ids(data: Any) -> pd.Index:
    """The data's sample IDs, read without its values (``data``: raw or a DataSpec)."""
    return pd.Index(sample_ids(DataSpec.of(data)))


def first_of_each_cut(ids: pd.Index, id_length: int) -> tuple[pd.Index, Any]:
    """(IDs cut to ``id_length``, mask of the first sample of each cut ID); the others are
    named in a warning as left out."""
    cut = cut_index(ids, id_length)
    repeated = cut.duplicated()
    if repeated.any():
        warnings.warn(f"{int(repeated.sum())} samples share their first {id_length} characters with an earlier "
                      f"sample and are left out (e.g. {list(ids[repeated][:2])})", stacklevel=3)
    return cut, ~repeated


def samples_of(data: Any, id_length: int | None = None) -> pd.Index:
    """The data's sample IDs (checking its layer and gene-ID column on the way), cut to
    ``id_length`` characters; samples whose cut ID repeats an earlier one are left out
    with a warning."""
    ids = data_sample_ids(data)
    if not check_id_length(id_length):
        return ids
    cut, first = first_of_each_cut(ids, id_length)
    return cut[first]


def cut_rows(frame: pd.DataFrame, id_length: int | None, *, first: bool = True) -> pd.DataFrame:
    """Rows renamed to their first ``id_length`` characters; ``first``: keep the first row
    of each cut ID, as :func:`samples_of` does for the data (a survival table keeps them
    all, so that a repeated ID is an error, not a silent choice)."""
    if not id_length:
        return frame
    frame = frame.set_axis(cut_index(frame.index, id_length))
    return frame[~frame.index.duplicated()] if first else frame


def cut_series(series: pd.Series, id_length: int | None) -> pd.Series:
    """A per-sample table's rows renamed to their cut IDs (all kept: a repeat is an error later)."""
    return cut_rows(series.to_frame(), id_length, first=False).iloc[:, 0]


def labels_by_data_ids(labels: pd.Series, data: Any, id_length: int | None) -> pd.Series:
    """``labels`` (indexed by IDs cut to ``id_length``) re-indexed by the data's full sample
    IDs, for code that reads the data itself (fine-tuning): each kept sample gets the label
    of its cut ID; samples whose cut ID repeats an earlier one are left out, as in
    :func:`samples_of`."""
    if not check_id_length(id_length):
        return labels
    full = data_sample_ids(data)
    cut, first = first_of_each_cut(full, id_length)
    labels = cut_rows(labels.to_frame(), id_length).iloc[:, 0]
    keep = first & cut.isin(labels.index)
    return pd.Series(labels.reindex(cut[keep]).to_numpy(), index=full[keep], name=labels.name)


def feature_sets_for(data: Any, model: Any, samples: Any, *, include: Any = FEATURE_SETS,
                     aggregate: str | None = None, runtime: Runtime | None = None,
                     id_length: int | None = None) -> dict[str, pd.DataFrame]:
    """Both feature sets, rows cut to ``id_length`` and restricted to ``samples`` (the
    samples the checked tables kept, so that the task warns about nothing twice)."""
    from .features import feature_sets  # looked up per call: tests stand in for the embedding pass

    sets = feature_sets(data, model, include=include, aggregate=aggregate, runtime=runtime)
    return {name: on_samples(cut_rows(frame, id_length), samples) for name, frame in sets.items()}
