"""Reading expression matrices: DataFrame, NumPy, AnnData and files (CSV/TSV(.gz),
parquet, h5ad), whole or in sample chunks for files larger than memory.

Everything is returned as :class:`ExpressionMatrix`, samples x genes, whatever the
orientation of the source (``orientation`` names the source's rows x columns).
``matrix`` reads in-memory data, ``formats`` holds one reader per file format and
``files`` reads files whole, in chunks, or only their IDs and annotations; the names
below are the package's public interface (modules of bulkformer import the concrete
modules).
"""
from __future__ import annotations

from .files import (CHUNK_BYTES, ExpressionFile, SampleSlots, check_gene_column, check_layer, iter_file, open_expression,
                    read_annotations, read_expression, read_gene_ids, read_sample_ids, read_sample_slots)
from .formats import TEXT_ENCODING, file_format, open_h5ad
from .matrix import (ORIENTATIONS, TEXT_SUFFIXES, ExpressionMatrix, Orientation, as_matrix,
                     gene_column_argument, is_anndata)

__all__ = ["CHUNK_BYTES", "ORIENTATIONS", "TEXT_ENCODING", "TEXT_SUFFIXES", "ExpressionFile", "ExpressionMatrix",
           "Orientation", "SampleSlots", "as_matrix", "check_gene_column", "check_layer", "file_format",
           "gene_column_argument", "is_anndata", "iter_file", "open_expression", "open_h5ad", "read_annotations",
           "read_expression", "read_gene_ids", "read_sample_ids", "read_sample_slots"]
