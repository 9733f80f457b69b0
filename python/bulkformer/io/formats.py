"""One reader per file format (CSV/TSV(.gz), parquet, h5ad), each a source of sample
chunks; the text helpers that name a damaged or mis-encoded file."""
from __future__ import annotations

import csv
import gzip
import io as _io
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pandas as pd

from .matrix import (TEXT_SUFFIXES, ExpressionMatrix, _annotation_column, _dense, _frame_values, _labels,
                     _layer_name)

from bulkformer.errors import InputError, MissingPathError

# ---------------------------------------------------------------- files
def file_format(path: str | Path) -> str:
    """'text', 'parquet' or 'h5ad' from the file name (``.gz`` allowed for text)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    raise InputError(f"unsupported file type: {Path(path).name}", value=str(path), joiner=". ",
                     fix="Use CSV/TSV (optionally .gz), parquet or h5ad, or read the file yourself and pass a DataFrame")


# utf-8-sig: a byte-order mark (Excel, some R exports) is not part of the first name
TEXT_ENCODING = "utf-8-sig"
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding=TEXT_ENCODING)
    return open(path, newline="", encoding=TEXT_ENCODING)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A damaged or mis-encoded text file as an :class:`InputError` naming it, not a bare
    EOFError (which the command line's framework prints as "Aborted.") or a decode error."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path} is truncated or not a valid gzip file ({err or type(err).__name__})",
                         value=str(path), fix="download or compress the file again; `gzip -t FILE` checks it",
                         joiner="; ") from None
    except UnicodeError as err:
        raise InputError(f"{path} is not UTF-8 text ({_encoding_hint(path)}{type(err).__name__})", value=str(path),
                         fix="save it as UTF-8 CSV/TSV (e.g. iconv -f UTF-16 -t UTF-8), or as parquet",
                         joiner="; ") from None


def _encoding_hint(path: Path) -> str:
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as handle:
            start = handle.read(2)
    except (OSError, EOFError, zlib.error):
        return ""
    return "it starts with a UTF-16 byte-order mark; " if start in _UTF16_MARKS else ""


def _text_header(path: Path) -> tuple[str, list[str]]:
    """(separator, header), the header always with a cell above the row names: R's
    write.table leaves that cell out, so its header is one field shorter than the rows."""
    with _reading(path), _open_text(path) as handle:
        first, second = handle.readline(), handle.readline()
    if not first.strip():
        raise InputError(f"empty input: {path} has no header line", value=str(path))
    # a semicolon is what spreadsheets write where the decimal mark is a comma
    separator = next((mark for mark in ("\t", ",", ";") if mark in first), ",")
    try:
        header = next(csv.reader(_io.StringIO(first), delimiter=separator))
        if second.strip() and len(next(csv.reader(_io.StringIO(second), delimiter=separator))) == len(header) + 1:
            header = ["", *header]
    except csv.Error:  # e.g. a wide header with another separator: one field over the csv module's limit
        raise InputError(f"{path}: its header line is not separated by tabs, commas or semicolons (one field of "
                         f"{len(first):,} characters)", value=str(path), fix="save the table as CSV or TSV") from None
    return separator, header


def _no_rows(path: Path) -> bool:
    """A text file with a header and no data rows (pandas refuses to parse it at all)."""
    with _reading(path), _open_text(path) as handle:
        handle.readline()
        return not any(line.strip() for line in handle)


def _require(path: str | Path) -> Path:
    path = Path(path)
    file_format(path)  # an unsupported kind is the more useful message
    if not path.exists():
        raise MissingPathError(f"{path} does not exist", value=str(path))
    return path


@dataclass
class _Source:
    gene_ids: list[str]
    sample_ids: list[str] | None  # None: known only while streaming
    reader: Any  # callable(start, stop) -> ExpressionMatrix
    stream: Any = None  # callable(size) -> iterator, for sources read front to back

    def chunks(self, size: int) -> Iterator[ExpressionMatrix]:
        if self.stream is not None:
            yield from self.stream(size)
            return
        for start in range(0, len(self.sample_ids), size):
            yield self.reader(start, min(start + size, len(self.sample_ids)))


def _text_source(path: Path, orientation: str) -> _Source:
    separator, header = _text_header(path)
    columns = header[1:]
    if orientation == "samples_by_genes":
        def stream(size: int) -> Iterator[ExpressionMatrix]:
            if _no_rows(path):  # no samples: the caller's empty-input check says so
                return
            # one streaming pass; header=None keeps repeated gene IDs (pandas would rename them);
            # sample IDs as written (as numbers, '001' would become '1' and '3' '3.0')
            # a with block: a failing chunk (or a caller that stops early) closes the file
            with _reading(path), pd.read_csv(path, sep=separator, header=None, skiprows=1, index_col=0,
                                             chunksize=size, dtype={0: str}, encoding=TEXT_ENCODING) as frames:
                for frame in frames:
                    yield ExpressionMatrix(_frame_values(_named(frame, columns)), columns, _labels(frame.index))
        return _Source(columns, None, None, stream)

    with _reading(path):
        gene_ids = pd.read_csv(path, sep=separator, header=None, skiprows=1, usecols=[0], dtype=str,
                               keep_default_na=False, encoding=TEXT_ENCODING).iloc[:, 0].tolist() if not _no_rows(path) else []

    def reader(start: int, stop: int) -> ExpressionMatrix:
        # samples are columns: each chunk re-reads the file for its columns (chosen by
        # position, since pandas renames repeated headers and misreads R's short ones)
        with _reading(path):
            frame = pd.read_csv(path, sep=separator, header=None, skiprows=1, index_col=0,
                                usecols=[0, *range(1 + start, 1 + stop)], encoding=TEXT_ENCODING)
        values = _frame_values(_named(frame, columns[start:stop]))
        return ExpressionMatrix(np.ascontiguousarray(values.T), gene_ids, columns[start:stop])
    return _Source(gene_ids, columns, reader)


def _named(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A frame read by position labelled with the header, so that errors name its columns."""
    if frame.shape[1] == len(columns):
        frame.columns = columns
    return frame


def _parquet_source(path: Path, orientation: str) -> _Source:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    metadata = parquet.schema_arrow.pandas_metadata or {}
    index_columns = [c for c in metadata.get("index_columns", []) if isinstance(c, str)]
    if not index_columns and names and not pd.api.types.is_numeric_dtype(
            parquet.schema_arrow.field(names[0]).type.to_pandas_dtype()):
        index_columns = [names[0]]  # a leading text column holds the row labels
    label_column = index_columns[0] if index_columns else None
    value_columns = [n for n in names if n not in index_columns]
    row_labels = (_labels(parquet.read(columns=[label_column]).column(0).to_pylist()) if label_column
                  else [str(i) for i in range(parquet.metadata.num_rows)])

    def frame_of(columns: list[str]) -> np.ndarray:
        return _frame_values(parquet.read(columns=columns).to_pandas(ignore_metadata=True))

    if orientation == "samples_by_genes":
        gene_ids, sample_ids = value_columns, row_labels

        def reader(start: int, stop: int) -> ExpressionMatrix:
            return ExpressionMatrix(_read_parquet_rows(parquet, value_columns, start, stop), gene_ids, sample_ids[start:stop])
    else:
        gene_ids, sample_ids = row_labels, value_columns

        def reader(start: int, stop: int) -> ExpressionMatrix:
            return ExpressionMatrix(np.ascontiguousarray(frame_of(value_columns[start:stop]).T), gene_ids,
                                    sample_ids[start:stop])
    return _Source(gene_ids, sample_ids, reader)


def _read_parquet_rows(parquet, columns: list[str], start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) reading only the row groups that hold them."""
    offsets = np.cumsum([0] + [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
    groups = [i for i in range(parquet.num_row_groups) if offsets[i] < stop and offsets[i + 1] > start]
    table = parquet.read_row_groups(groups, columns=columns)
    table = table.slice(start - offsets[groups[0]], stop - start)
    return _frame_values(table.to_pandas(ignore_metadata=True))


def open_h5ad(path: str | Path) -> Any:
    """An h5ad file opened backed (values stay on disk); an empty, truncated or non-HDF5
    file is an :class:`InputError` naming it, not h5py's traceback."""
    import anndata

    path = Path(path)
    try:
        return anndata.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError, TypeError) as err:
        size = path.stat().st_size if path.exists() else 0
        what = "is empty (0 bytes)" if size == 0 else f"is not a readable h5ad file ({size:,} bytes: {err})"
        raise InputError(f"{path} {what}", value=str(path), joiner="; ",
                         fix="write it again (adata.write_h5ad), or give the CSV/parquet it came from") from None


def _backed_x(adata: Any, path: Path) -> Any:
    """X of a backed AnnData; an h5ad written with X = None (values in a layer) has none."""
    if "X" not in adata.file:
        layers = list(adata.layers)
        raise ValueError(f"{path.name} has no X (the values are elsewhere, layers: {layers}): pass "
                         f"layer={layers[0] if len(layers) == 1 else 'NAME'!r} to name the layer holding the values")
    return adata.X


def _h5ad_gene_ids(adata: Any, path: Path, orientation: str, genes: str | None) -> list[str] | None:
    """The gene IDs in the h5ad file's column ``genes`` (of var; obs for genes_by_samples),
    or None to use the var (obs) names."""
    if genes is None:
        return None
    where = "obs" if orientation == "genes_by_samples" else "var"
    return _labels(_annotation_column(getattr(adata, where), genes, where, owner=f"{path.name}'s"))


def _h5ad_source(path: Path, orientation: str, layer: str | None, genes: str | None = None) -> _Source:
    adata = open_h5ad(path)
    matrix = adata.layers[_layer_name(adata, layer)] if layer is not None else _backed_x(adata, path)
    rows, cols = _labels(adata.obs_names), _labels(adata.var_names)
    column = _h5ad_gene_ids(adata, path, orientation, genes)
    if column is not None:
        if orientation == "samples_by_genes":
            cols = column
        else:
            rows = column
    if orientation == "samples_by_genes":
        def reader(start: int, stop: int) -> ExpressionMatrix:
            return ExpressionMatrix(_dense(matrix[start:stop]), cols, rows[start:stop])
        return _Source(cols, rows, reader)

    def reader_t(start: int, stop: int) -> ExpressionMatrix:
        return ExpressionMatrix(np.ascontiguousarray(_dense(matrix[:, start:stop]).T), rows, cols[start:stop])
    return _Source(rows, cols, reader_t)
