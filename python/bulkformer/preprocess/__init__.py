"""Data preparation: any expression table -> the model's input.

:func:`prepare` takes counts, TPM or natural log1p TPM keyed by Ensembl IDs (versioned
or not), symbols (aliases and previous symbols included), Entrez IDs or
``SYMBOL|ENTREZ``, as a DataFrame, NumPy array, AnnData or file, and returns a
:class:`PreparedInput`: float32 samples x vocabulary log1p TPM with -10 where the
vocabulary gene is not measured, plus a :class:`MappingReport`.
"""
from __future__ import annotations

from bulkformer.preprocess._kernel import native_available
from bulkformer.preprocess.normalize import MASK_VALUE, transform_aligned
from bulkformer.preprocess.pipeline import PreparedInput, prepare, prepare_chunks
from bulkformer.preprocess.report import MappingReport
from bulkformer.preprocess.vocabulary import map_genes, resolve_vocabulary, vocabulary_positions, vocabulary_table

__all__ = ["MASK_VALUE", "MappingReport", "PreparedInput", "map_genes", "native_available", "prepare", "prepare_chunks",
           "resolve_vocabulary", "transform_aligned", "vocabulary_positions", "vocabulary_table"]
