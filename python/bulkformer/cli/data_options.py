"""The options that describe the data and the run, declared once for every command that
reads an expression file, and the :class:`~bulkformer.DataSpec` / :class:`~bulkformer.Runtime`
each command builds from them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .inputs import GENE_COLUMN_HELP, LAYER_HELP, ORIENTATION_HELP, read_lengths

INPUT_HELP = "What the values are: counts, tpm or logtpm (natural log1p TPM)."
LENGTHS_HELP = "Gene lengths (bp) for counts: CSV/TSV with gene ID and length columns (default: the shipped lengths)."

INPUT = typer.Option("counts", "--input", help=INPUT_HELP)
ORIENTATION = typer.Option("samples_by_genes", "--orientation", help=ORIENTATION_HELP)
LAYER = typer.Option(None, "--layer", help=LAYER_HELP)
GENE_COLUMN = typer.Option(None, "--gene-column", help=GENE_COLUMN_HELP)
LENGTHS = typer.Option(None, "--lengths", help=LENGTHS_HELP)
MIN_MATCHED = typer.Option(0.5, "--min-matched-fraction",
                           help="Fail when fewer than this share of vocabulary genes is measured.")
BATCH = typer.Option(16, "--batch-size", help="Samples per forward pass.")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: cuda > mps > cpu).")
PRECISION = typer.Option(None, "--precision", help="fp32, bf16 or fp16 (default: bf16 on CUDA, fp16 on MPS or where "
                         "bf16 is unsupported, fp32 on CPU).")


def data_spec(data: Path, *, input: str, orientation: str, layer: Optional[str], gene_column: Optional[str],
              lengths: Optional[Path], min_matched_fraction: Optional[float] = None) -> Any:
    """The DataSpec of an expression file from the shared options (``--gene-column`` is the
    DataSpec's ``genes``; ``--lengths`` is read here)."""
    from bulkformer.dataspec import DataSpec

    return DataSpec.of(str(data), input=input, orientation=orientation, layer=layer, genes=gene_column,
                       lengths=read_lengths(lengths), min_matched_fraction=min_matched_fraction)


def runtime(*, batch_size: int = 16, device: Optional[str] = None, precision: Optional[str] = None,
            progress: bool = True) -> Any:
    """The Runtime of a command from its run options."""
    from bulkformer.runtime import Runtime

    return Runtime(device=device, precision=precision, batch_size=batch_size, progress=progress)
