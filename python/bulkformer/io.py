"""Reading expression matrices: DataFrame, NumPy, AnnData and files (CSV/TSV(.gz),
parquet, h5ad), whole or in sample chunks for files larger than memory.

Everything is returned as :class:`ExpressionMatrix`, samples x genes, whatever the
orientation of the source (``orientation`` names the source's rows x columns).
"""
from __future__ import annotations

import csv
import gzip
import io as _io
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from bulkformer.errors import (GENE_COLUMN, ArgumentError, GeneColumnError, InputError,
                                MissingPathError)

Orientation = Literal["samples_by_genes", "genes_by_samples"]
ORIENTATIONS = ("samples_by_genes", "genes_by_samples")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".exp")
CHUNK_BYTES = 1 << 30  # default raw-value budget per chunk (1 GiB of float64)

__all__ = ["ExpressionFile", "ExpressionMatrix", "SampleSlots", "as_matrix", "file_format", "gene_column_argument",
           "iter_file", "open_expression", "read_expression", "read_gene_ids", "read_sample_slots"]


@dataclass
class ExpressionMatrix:
    """``values``: samples x genes (a view where possible, any numeric dtype)."""

    values: np.ndarray
    gene_ids: list[str]
    sample_ids: list[str]


def _check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ArgumentError(f"orientation={orientation!r}", argument="orientation", value=orientation,
                            fix="use 'samples_by_genes' (rows are samples) or 'genes_by_samples' (rows are genes, "
                                "as in R/Bioconductor)")


def _labels(values: Sequence[Any]) -> list[str]:
    return [str(v) for v in values]


def _dense(values: Any) -> np.ndarray:
    if hasattr(values, "to_memory") and not hasattr(values, "toarray"):  # sparse X of a backed AnnData
        values = values.to_memory()
    if hasattr(values, "toarray"):  # scipy.sparse
        return values.toarray()
    return np.asarray(values)


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    non_numeric = [c for c, t in frame.dtypes.items() if not (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t))]
    if non_numeric:
        shown = ", ".join(repr(str(c)) for c in non_numeric[:5])
        raise InputError(
            f"non-numeric columns: {shown}{' ...' if len(non_numeric) > 5 else ''} hold text, not expression values",
            fix=f"If a column carries gene or sample IDs make it the index (df.set_index({str(non_numeric[0])!r})); "
                "otherwise drop annotation columns, or convert numbers stored as text with pd.to_numeric.",
            joiner=". ")
    if any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in frame.dtypes):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.to_numpy()


def as_matrix(data: Any, *, genes: Sequence[Any] | None = None, samples: Sequence[Any] | None = None,
              orientation: Orientation = "samples_by_genes", layer: str | None = None) -> ExpressionMatrix:
    """An in-memory input (DataFrame, NumPy array, scipy sparse, AnnData) as samples x genes.

    ``genes``: one ID per gene overriding the labels, or for AnnData the name of the
    ``var`` column holding them (``obs`` for ``orientation="genes_by_samples"``; the
    file readers take the same name for h5ad files)."""
    _check_orientation(orientation)
    transpose = orientation == "genes_by_samples"
    if isinstance(genes, str) and not is_anndata(data):
        raise GeneColumnError(f"genes={genes!r} is one name, not one ID per gene", argument=GENE_COLUMN, value=genes,
                              fix="a column name picks the gene IDs of an AnnData's var (obs for "
                                  "orientation='genes_by_samples'); otherwise give a list of IDs")
    if layer is not None and not is_anndata(data):
        raise ArgumentError("layer= applies to AnnData inputs only", argument="layer", value=layer, fix="leave it out")
    if is_anndata(data):
        matrix = data.layers[_layer_name(data, layer)] if layer is not None else data.X
        if matrix is None:
            raise ArgumentError(f"the AnnData object has no X (layers: {list(data.layers)})", argument="layer",
                                fix="pass layer= to name the layer holding the values")
        rows, cols = _labels(data.obs_names), _labels(data.var_names)
        values = _dense(matrix)
        if isinstance(genes, str):  # the name of the var column that holds the gene IDs
            genes = _annotation_column(data.obs if transpose else data.var, genes, "obs" if transpose else "var")
    elif isinstance(data, pd.DataFrame):
        values = _frame_values(data)
        rows, cols = _labels(data.index), _labels(data.columns)
        # an explicit genes= / samples= overrides the labels
    elif isinstance(data, pd.Series):
        raise InputError("a pandas Series is one sample or one gene",
                         fix="pass a DataFrame (e.g. series.to_frame().T)")
    else:
        values = _dense(data)
        if values.dtype.kind not in "biuf":
            raise InputError(f"non-numeric array (dtype {values.dtype})", fix="pass numbers (counts, TPM or log1p TPM)")
        if values.ndim != 2:
            raise InputError(f"expected a 2-D matrix, got an array of shape {values.shape}")
        if genes is None:
            raise GeneColumnError("a NumPy matrix carries no gene IDs", argument=GENE_COLUMN,
                                  fix=f"pass genes=[...] (one ID per gene, {'rows' if transpose else 'columns'} for "
                                      f"orientation={orientation!r})")
        rows = cols = None
    if transpose:
        values = values.T
        rows, cols = cols, rows
    if genes is not None:
        genes = _labels(genes)
        if len(genes) != values.shape[1]:
            other = values.shape[0]
            hint = (" — that is the number of samples: the matrix may be the other way round, set "
                    f"orientation={'samples_by_genes' if transpose else 'genes_by_samples'!r}") if len(genes) == other else ""
            raise GeneColumnError(f"genes= has {len(genes):,} IDs but the matrix has {values.shape[1]:,} genes "
                                  f"({'rows' if transpose else 'columns'} for orientation={orientation!r}){hint}",
                                  argument=GENE_COLUMN)
        cols = genes
    if samples is not None:
        samples = _labels(samples)
        if len(samples) != values.shape[0]:
            raise ArgumentError(f"samples= has {len(samples):,} names but the matrix has {values.shape[0]:,} samples",
                                argument="samples")
        rows = samples
    if rows is None:
        rows = [f"sample_{i}" for i in range(values.shape[0])]
    return ExpressionMatrix(values=values, gene_ids=cols, sample_ids=rows)


def gene_column_argument(name: Any = None) -> str:
    """How messages name the argument that picks the gene-ID column: ``genes=`` in
    prepare, build_graph and the readers here, ``gene_names=`` where ``genes=`` means a
    gene subset (the command line's ``--gene-column``; it translates this phrase)."""
    value = "" if name is None else repr(str(name))
    return f"genes={value} (gene_names={value} in impute, embed, finetune, the tasks and pretrain)"


def _annotation_column(annotations: pd.DataFrame, name: str, where: str, owner: str = "the AnnData's") -> list[Any]:
    if name not in annotations.columns:
        raise GeneColumnError(f"the gene ID column {name!r} is not a column of {owner} {where} (its columns: "
                              f"{list(map(str, annotations.columns))[:10]})", argument=GENE_COLUMN, value=name,
                              fix=f"name the {where} column that holds the gene IDs, or leave it out to use the "
                                  f"{where} names")
    column = annotations[name]
    # integer columns may hold Entrez IDs; fractions (lengths, means, dispersions) are no IDs
    if pd.api.types.is_bool_dtype(column) or (pd.api.types.is_numeric_dtype(column)
                                              and not pd.api.types.is_integer_dtype(column)):
        raise GeneColumnError(f"the gene ID column {name!r} of {owner} {where} holds {column.dtype} values, not gene "
                              "IDs", argument=GENE_COLUMN, value=name,
                              fix=f"name the {where} column that holds the gene IDs")
    # a gap would become the label 'nan' and its gene would be lost among the unmatched
    gaps = np.flatnonzero(column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy())
    if gaps.size:
        raise GeneColumnError(f"the gene ID column {name!r} of {owner} {where} has {gaps.size:,} empty or missing gene "
                              f"IDs (e.g. row {gaps[0] + 1}, {where} name {str(annotations.index[gaps[0]])!r})",
                              argument=GENE_COLUMN, value=name, fix="fill them in or drop those genes first")
    return column.tolist()


def is_anndata(data: Any) -> bool:
    """An in-memory AnnData (checked by type, without importing anndata where it is not
    loaded yet)."""
    return type(data).__name__ == "AnnData" and hasattr(data, "obs_names")


def _layer_name(adata: Any, layer: str) -> str:
    if layer not in adata.layers:
        raw = ("; the values of .raw are not a layer: pass adata.raw.to_adata() to read them"
               if getattr(adata, "raw", None) is not None else "")
        raise ArgumentError(f"layer {layer!r} is not in the AnnData object (layers: {list(adata.layers)})",
                            argument="layer", value=layer, fix=f"omit layer= to use X{raw}", joiner="; ")
    return layer


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


def read_gene_ids(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                  genes: str | None = None) -> list[str]:
    """Gene IDs of a file without reading its values (rows of a genes_by_samples text
    file are read, first column only). ``genes``: for an h5ad file, the ``var`` column
    holding them (``obs`` for genes_by_samples) instead of the var (obs) names."""
    _check_orientation(orientation)
    return _open_file(_require(path), orientation, None, genes).gene_ids


def read_sample_ids(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                    layer: str | None = None, genes: str | None = None) -> list[str]:
    """Sample IDs of a file without reading its values (for a samples_by_genes text file,
    the first column only, parsed as the chunked reader parses it so the IDs compare equal).
    ``layer`` and ``genes`` (the h5ad gene-ID column) are checked as the readers check them,
    so that a wrong one is reported before the values are read."""
    _check_orientation(orientation)
    path = _require(path)
    check_layer(path, layer)
    check_gene_column(path, genes)
    if file_format(path) == "text" and orientation == "samples_by_genes":
        separator, _ = _text_header(path)
        if _no_rows(path):
            return []
        with _reading(path):
            return _labels(pd.read_csv(path, sep=separator, header=None, skiprows=1, usecols=[0],
                                       dtype={0: str}, encoding=TEXT_ENCODING).iloc[:, 0])
    if file_format(path) == "h5ad":
        backed = open_h5ad(path)  # names only, closed at once: callers may list many files
        try:
            if layer is not None:
                _layer_name(backed, layer)
            else:
                _backed_x(backed, path)
            _h5ad_gene_ids(backed, path, orientation, genes)
            return _labels(backed.obs_names if orientation == "samples_by_genes" else backed.var_names)
        finally:
            backed.file.close()
    return list(_open_file(path, orientation, layer).sample_ids)


def read_annotations(path: str | Path, *, of: Literal["genes", "samples"] = "genes",
                     orientation: Orientation = "samples_by_genes") -> pd.DataFrame | None:
    """An h5ad file's annotations of its genes (``var``; ``obs`` for genes_by_samples: the
    columns that may hold the gene IDs) or of its samples (``obs``; ``var`` for
    genes_by_samples), without its values; None for other files, which have none."""
    _check_orientation(orientation)
    if of not in ("genes", "samples"):
        raise ArgumentError(f"of must be 'genes' or 'samples', got {of!r}", argument="of", value=of)
    var_side = (of == "genes") != (orientation == "genes_by_samples")
    return _read_backed(path, lambda backed: (backed.var if var_side else backed.obs).copy())


def _read_backed(path: str | Path, read: Callable[[Any], Any]) -> Any:
    """``read`` applied to an h5ad file opened backed (X stays on disk; annotations are
    read into memory) and closed at once; None for other files, which have no annotations."""
    path = _require(path)
    if file_format(path) != "h5ad":
        return None
    backed = open_h5ad(path)
    try:
        return read(backed)
    finally:
        backed.file.close()


@dataclass
class SampleSlots:
    """The per-sample parts of an AnnData that outputs over the same samples keep:
    annotations (``obs``), matrices (``obsm``: a PCA, a UMAP), pairwise graphs (``obsp``)
    and ``uns`` (colours, parameters); for a genes x samples AnnData its var, varm, varp."""

    obs: pd.DataFrame
    obsm: dict[str, Any]
    obsp: dict[str, Any]
    uns: dict[str, Any]

    @classmethod
    def of(cls, adata: Any, orientation: Orientation = "samples_by_genes") -> SampleSlots:
        """Copies of ``adata``'s sample-side slots (in memory or backed)."""
        import copy

        _check_orientation(orientation)
        transposed = orientation == "genes_by_samples"
        return cls(obs=(adata.var if transposed else adata.obs).copy(),
                   obsm=dict(adata.varm if transposed else adata.obsm),
                   obsp=dict(adata.varp if transposed else adata.obsp),
                   uns=copy.deepcopy(dict(adata.uns)))

    def attach(self, target: Any) -> None:
        """Give ``target``, an AnnData over the same samples in the same order, the
        matrices, graphs and uns (its own uns entries win); obs is the caller's to set,
        since sample IDs may have been renamed."""
        if target.n_obs != len(self.obs):
            raise InputError(f"the output has {target.n_obs} samples, the input {len(self.obs)}",
                             fix="per-sample matrices can only follow the same samples")
        for key, matrix in self.obsm.items():
            target.obsm[key] = matrix.set_axis(target.obs_names) if isinstance(matrix, pd.DataFrame) else matrix
        for key, matrix in self.obsp.items():
            target.obsp[key] = matrix
        target.uns.update({key: value for key, value in self.uns.items() if key not in target.uns})


def read_sample_slots(path: str | Path, *, orientation: Orientation = "samples_by_genes") -> SampleSlots | None:
    """An h5ad file's :class:`SampleSlots` without its values; None for other files."""
    _check_orientation(orientation)
    return _read_backed(path, lambda backed: SampleSlots.of(backed, orientation))


@dataclass
class ExpressionFile:
    """An opened expression file: its gene IDs, its number of samples where the format
    tells it without reading the values (None for a samples x genes text file, which is
    read front to back), and its samples x genes chunks."""

    gene_ids: list[str]
    n_samples: int | None
    chunks: Iterator[ExpressionMatrix]


def open_expression(path: str | Path, *, orientation: Orientation = "samples_by_genes", layer: str | None = None,
                    chunk_samples: int | None = None, genes: str | None = None) -> ExpressionFile:
    """Open a file to read it ``chunk_samples`` samples at a time (default: ~1 GiB of
    values), so that a file larger than memory can be processed; ``genes``: for an h5ad
    file, the ``var`` column holding the gene IDs (``obs`` for genes_by_samples), e.g.
    ``"gene_ids"`` where var_names are symbols."""
    _check_orientation(orientation)
    source = _open_file(_require(path), orientation, layer, genes)
    n_genes = max(len(source.gene_ids), 1)
    chunk = chunk_samples or max(1, CHUNK_BYTES // (8 * n_genes))
    n_samples = None if source.sample_ids is None else len(source.sample_ids)
    return ExpressionFile(source.gene_ids, n_samples, source.chunks(chunk))


def iter_file(path: str | Path, *, orientation: Orientation = "samples_by_genes", layer: str | None = None,
              chunk_samples: int | None = None, genes: str | None = None) -> tuple[list[str], Iterator[ExpressionMatrix]]:
    """(gene_ids, iterator of samples x genes chunks) of a file, as :func:`open_expression`."""
    opened = open_expression(path, orientation=orientation, layer=layer, chunk_samples=chunk_samples, genes=genes)
    return opened.gene_ids, opened.chunks


def read_expression(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                    layer: str | None = None, genes: str | None = None) -> ExpressionMatrix:
    """A whole file as one :class:`ExpressionMatrix` (samples x genes); ``genes`` as in
    :func:`open_expression`. Where the format tells the sample count, the chunks are
    copied into one matrix as they are read (a concatenation would hold the values twice)."""
    opened = open_expression(path, orientation=orientation, layer=layer, genes=genes)
    values: np.ndarray | None = None
    parts: list[np.ndarray] = []
    sample_ids: list[str] = []
    for chunk in opened.chunks:
        if opened.n_samples is not None:
            if values is None:
                values = np.empty((opened.n_samples, chunk.values.shape[1]), dtype=chunk.values.dtype)
            elif chunk.values.dtype != values.dtype:  # e.g. a parquet row group whose integers have gaps
                values = values.astype(np.result_type(values.dtype, chunk.values.dtype))
            values[len(sample_ids):len(sample_ids) + len(chunk.sample_ids)] = chunk.values
        else:
            parts.append(chunk.values)
        sample_ids.extend(chunk.sample_ids)
    if values is None:
        values = np.concatenate(parts) if parts else np.empty((0, len(opened.gene_ids)))
    return ExpressionMatrix(values=values, gene_ids=opened.gene_ids, sample_ids=sample_ids)


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


def check_layer(path: Path, layer: str | None) -> None:
    """``layer=`` only for h5ad files (text and parquet have no layers: it would be ignored)."""
    if layer is not None and file_format(path) != "h5ad":  # text and parquet have no layers: it was ignored
        raise ArgumentError(f"layer= names a layer of an h5ad file, and {path.name} is not one", argument="layer",
                            value=layer, fix="leave layer= out")


def check_gene_column(path: Path, genes: Any) -> None:
    """``genes=`` for a file: only the name of an h5ad file's gene-ID column (text and
    parquet files have no annotation columns; their labels are the gene IDs)."""
    if genes is None:
        return
    if not isinstance(genes, str):  # a list would relabel the file's genes, which no reader does
        raise GeneColumnError(f"a file carries its own gene IDs: a list in {gene_column_argument()} relabels "
                              "in-memory data only", argument=GENE_COLUMN, joiner="; ",
                              fix="for an h5ad file give the name of the var column that holds the IDs, otherwise "
                                  "leave it out")
    if file_format(path) != "h5ad":
        raise GeneColumnError(f"{gene_column_argument(genes)} names the column of an h5ad file's var (obs) that holds "
                              f"the gene IDs, and {Path(path).name} is not an h5ad file: its gene IDs are its labels "
                              "(the header, or the first column for orientation='genes_by_samples')",
                              argument=GENE_COLUMN, value=genes, fix="leave it out", joiner="; ")


def _open_file(path: Path, orientation: str, layer: str | None, genes: str | None = None) -> _Source:
    kind = file_format(path)
    check_layer(path, layer)
    check_gene_column(path, genes)
    if kind == "text":
        return _text_source(path, orientation)
    if kind == "parquet":
        return _parquet_source(path, orientation)
    return _h5ad_source(path, orientation, layer, genes)


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
