"""Per-sample tables (labels, survival, responses) are matched to the data by sample ID,
never by row order, and their values are checked: the tasks and fine-tuning share these
rules so that the same table means the same thing everywhere.

* repeated sample IDs are an error naming them;
* a default RangeIndex that does not name the data's samples is an error (a row-order
  match would silently misalign);
* samples without a row or with a missing value are left out with a warning that
  counts them, as are rows for samples the data does not have;
* values that should be numbers and are not (``">10"``, ``"yes"``, ``inf``) are an
  error naming the column and examples, never NaN.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# Labels with more distinct numeric values than this share of the samples are a measurement, not classes.
CONTINUOUS_SHARE = 0.5


def _examples(values: Sequence[Any], n: int = 3) -> str:
    return ", ".join(repr(v) for v in list(values)[:n])


def check_unique_ids(index: pd.Index, what: str) -> None:
    """Error naming the sample IDs that have more than one row."""
    counts = pd.Index(index).astype(str).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        shown = ", ".join(f"{name!r} ({n} rows)" for name, n in repeated.head(5).items())
        raise ValueError(f"the {what} have several rows for the same sample: {shown}"
                         f"{' ...' if len(repeated) > 5 else ''} ({len(repeated)} repeated IDs); keep one row per sample")


def as_label_series(labels: Any) -> Any:
    """A one-column DataFrame is its column; a wider one is an error (which column?)."""
    if isinstance(labels, pd.DataFrame):
        if labels.shape[1] != 1:
            raise ValueError(f"labels must be one label per sample (a Series, e.g. obs['tissue']); got a table with "
                             f"columns {list(labels.columns)[:8]}")
        return labels.iloc[:, 0]
    return labels


def match_samples(table: pd.Series | pd.DataFrame | Sequence[Any], sample_ids: Sequence[Any], *,
                  what: str = "labels", complete: bool = True,
                  id_length_option: bool = True) -> pd.Series | pd.DataFrame:
    """``table`` restricted to the data's samples, in the data's order, indexed by the
    sample IDs (as strings).

    A Series / DataFrame is matched by its index (sample IDs); a list or array is taken
    in sample order and must have one entry per sample. Samples without a row or with a
    missing value (any column; with ``complete=False`` only a row missing every value)
    are left out with a warning; so are rows naming samples the data lacks. No sample
    left is an error; when one side's IDs are the other's cut short, it says to what length
    (naming ``id_length``, which each front end words as its own option, unless
    ``id_length_option`` is False: the caller has no such option)."""
    ids = pd.Index([str(s) for s in sample_ids])
    if isinstance(table, pd.DataFrame) or isinstance(table, pd.Series):
        positional = False
    elif isinstance(table, (str, bytes)) or not hasattr(table, "__len__"):
        raise ValueError(f"the {what} must be a pandas Series indexed by sample ID, or a list in sample order; "
                         f"got {type(table).__name__}")
    else:
        values = list(np.asarray(table, dtype=object).ravel()) if np.ndim(table) > 1 else list(table)
        if len(values) != len(ids):
            raise ValueError(f"got {len(values)} {what} for {len(ids)} samples: a list is taken in sample order, so give "
                             "one entry per sample, or a pandas Series indexed by sample ID")
        table, positional = pd.Series(values, index=ids, dtype=object), True
    if not positional:
        check_unique_ids(table.index, what)
        index = table.index.astype(str)
        if isinstance(table.index, pd.RangeIndex) and not ids.isin(index).any():
            raise ValueError(
                f"the {what} have a default row index (0, 1, 2, ...) but the data's samples are named e.g. "
                f"{_examples(ids)}: {what} are matched by sample ID, not by row order. Index them by sample ID "
                "(e.g. labels.index = data.index, or table.set_index('sample_id')), or pass a plain list in sample order")
        table = table.set_axis(index)
    present = ids[ids.isin(table.index)]
    if len(present) == 0:
        raise ValueError(f"no sample is in both the data (e.g. {_examples(ids)}) and the {what} "
                         f"(e.g. {_examples(table.index)}); {what} are matched by sample ID: index both by the same IDs"
                         + _prefix_advice(ids, table.index, what, id_length_option))
    matched = table.loc[present]
    if isinstance(matched, pd.Series):
        incomplete = matched.isna()
    else:
        incomplete = matched.isna().any(axis=1) if complete else matched.isna().all(axis=1)
    kept = matched[~incomplete.to_numpy()]
    lacking, blank = ids[~ids.isin(table.index)], present[incomplete.to_numpy()]
    extra = table.index[~table.index.isin(ids)]
    notes = []
    if len(lacking) or len(blank):
        reasons = [f"{len(lacking)} have no row in the {what} (e.g. {_examples(lacking)})" if len(lacking) else "",
                   f"{len(blank)} have a blank or NaN entry in the {what} (e.g. {_examples(blank)})" if len(blank) else ""]
        notes.append(f"{len(lacking) + len(blank)} of {len(ids)} samples are left out: "
                     + "; ".join(r for r in reasons if r))
    if len(extra):
        notes.append(f"{len(extra)} rows of the {what} name samples that are not in the data (e.g. {_examples(extra)}) "
                     "and are not used")
    if len(kept) == 0:
        raise ValueError(f"none of the {len(present)} samples in both the data and the {what} has a value "
                         f"(e.g. {_examples(present)})")
    if notes:
        warnings.warn("; ".join(notes), stacklevel=3)
    return kept


def numeric_column(values: pd.Series, what: str, *, hint: str = "") -> pd.Series:
    """``values`` as floats; missing entries stay NaN, text that is not a number and
    infinite values are an error naming ``what`` and examples (``hint`` is appended)."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(float)
    parsed = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & parsed.isna()
    if bad.any():
        examples = pd.unique(values[bad].astype(str))
        raise ValueError(f"{what}: {int(bad.sum())} values are not numbers (e.g. {_examples(examples)}); "
                         f"give plain numbers, or leave the entry blank for a missing value{hint}")
    parsed = parsed.astype(float)
    infinite = np.isinf(parsed.to_numpy())
    if infinite.any():
        raise ValueError(f"{what}: infinite values (samples {_examples(parsed.index[infinite])}); "
                         f"give finite numbers, or leave the entry blank for a missing value")
    return parsed


def class_labels(labels: pd.Series, *, numeric_hint: str = "") -> tuple[np.ndarray, list[str]]:
    """(label per sample as text, sorted classes). At least 2 classes; numeric labels with
    more distinct values than half the samples are an error (a continuous measurement
    would make one class per sample); ``numeric_hint`` says what to do instead."""
    present = labels.dropna()
    parsed = pd.to_numeric(present, errors="coerce") if not pd.api.types.is_bool_dtype(present) else present
    n_distinct = present.nunique()
    if len(present) and parsed.notna().all() and n_distinct > max(2, CONTINUOUS_SHARE * len(present)):
        raise ValueError(f"the labels are numbers with {n_distinct} distinct values for {len(present)} samples: "
                         f"that is a continuous measurement, not classes{numeric_hint}")
    if pd.api.types.is_float_dtype(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
        # whole numbers read as floats because a blank entry made the column float: 0/1, not 0.0/1.0
        present = present.astype(np.int64)
    text = present.astype(str).to_numpy()
    classes = sorted(set(text.tolist()))
    if len(classes) < 2:
        raise ValueError(f"classification needs at least 2 classes, got {classes}")
    return text, classes


def _prefix_advice(data_ids: pd.Index, table_ids: pd.Index, what: str, id_length_option: bool = True) -> str:
    """When one side's IDs are the other's cut short (TCGA aliquot barcodes against
    15-character sample barcodes): the length to cut to; '' otherwise."""
    for longer, shorter, whose in ((data_ids, table_ids, "the data's"), (table_ids, data_ids, f"the {what}'s")):
        lengths = pd.Series([len(str(i)) for i in shorter])
        if lengths.empty:
            continue
        length = int(lengths.mode().iloc[0])
        cut = pd.Index([str(i)[:length] for i in longer])
        n_matching = int(cut.isin(shorter.astype(str)).sum())
        if n_matching:
            option = f" (id_length={length})" if id_length_option else ""
            return (f". {whose[0].upper() + whose[1:]} IDs begin with the other's: {n_matching} of {len(longer)} "
                    f"match when cut to their first {length} characters; cut them to that length before matching{option}")
    return ""
