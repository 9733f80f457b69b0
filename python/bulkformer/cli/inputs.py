"""The user's files as the commands read them: tables indexed by their first column and
model directories, checked before any expensive work (embedding, training)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

# the --gene-column option of every command that reads an expression file with --layer
ORIENTATION_HELP = "samples_by_genes (rows are samples) or genes_by_samples."
LAYER_HELP = "h5ad layer holding the values (default X)."
GENE_COLUMN_HELP = ("h5ad input: the var column holding gene IDs (obs with --orientation genes_by_samples); "
                    "default var_names.")


def output_path(value: Optional[Path]) -> Optional[Path]:
    """Option callback for output paths: one that cannot be created (a file used as a
    folder, a directory without write permission) fails before any work is done."""
    from bulkformer.atomic import check_output_location

    if value is not None:
        check_output_location(value)  # its ValueError is the command's one-line "error:" like the others
    return value


def read_table(path: Path, what: str):
    """A table indexed by its first column (csv, tsv(.gz), txt(.gz), parquet), or the obs
    of an h5ad file (indexed by its obs names); IDs as text."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".h5ad"):
        from bulkformer.io import open_h5ad

        backed = open_h5ad(path)  # obs only: X stays on disk
        try:
            table = backed.obs.copy()
        finally:
            backed.file.close()
    elif name.endswith(".parquet"):
        table = pd.read_parquet(path)
        table = table.set_index(table.columns[0]) if isinstance(table.index, pd.RangeIndex) else table
    else:
        try:
            # sample IDs as written: read as numbers, '001' would become '1' and match no sample
            table = pd.read_csv(path, sep="," if name.endswith(".csv") else "\t", index_col=0, dtype={0: str},
                                encoding="utf-8-sig")  # a byte-order mark is not part of the first name
        except UnicodeDecodeError:  # a spreadsheet, a binary file
            raise ValueError(f"{what} file {path} is not a text table: give a CSV/TSV(.gz), parquet or h5ad (its "
                             "obs) file with the sample IDs first") from None
    table.index = table.index.astype(str)
    return table


def read_lengths(path: Optional[Path]):
    """A two-column table (gene ID, length in bp) -> Series, or None. Lengths that are not
    numbers are an error here, not NaN TPM later."""
    if path is None:
        return None
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lengths file {path} does not exist")
    try:
        table = pd.read_csv(path, sep=None, engine="python")
        if table.shape[1] >= 2 and _is_number(table.columns[1]):
            table = pd.read_csv(path, sep=None, engine="python", header=None)  # no header: the first row is a gene
    except UnicodeDecodeError:  # parquet, h5ad, a spreadsheet
        raise ValueError(f"lengths file {path} is not a text table: give a CSV/TSV(.gz) with gene ID and "
                         "length (bp) columns") from None
    if table.shape[1] < 2:
        raise ValueError(f"{path} needs two columns: gene ID and length (bp)")
    from bulkformer.preprocess.align import numeric_lengths

    lengths = numeric_lengths(table.iloc[:, 1], f"{path} (second column: length in bp)")
    return pd.Series(lengths.to_numpy(), index=table.iloc[:, 0].astype(str).to_numpy())


def gene_list(genes: Optional[str]) -> Optional[list[str]]:
    """Comma-separated IDs, or a file with one ID per line named as ``@file`` or by its
    path alone (both spellings in every command that takes --genes)."""
    if genes is None:
        return None
    if genes.startswith("@"):
        source = Path(genes[1:])
        if not source.is_file():
            raise FileNotFoundError(f"gene list file {source} does not exist")
    elif Path(genes).is_file():
        source = Path(genes)
    else:
        return [g.strip() for g in genes.split(",") if g.strip()]
    return [g.strip() for line in source.read_text().splitlines() for g in line.split(",") if g.strip()]


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def column(table, name: Optional[str], what: str, flag: str = "--column"):
    """One column of ``table``; ``name`` may be omitted when there is only one."""
    if name is None:
        if table.shape[1] != 1:
            raise ValueError(f"the {what} table has {table.shape[1]} columns {list(table.columns)[:8]}; pick one with {flag}")
        return table.iloc[:, 0]
    if name not in table.columns:
        if name == table.index.name:
            raise ValueError(f"{name!r} is the {what} table's first column, which is read as the sample IDs; put the "
                             f"sample IDs first (the other columns are then {list(table.columns)[:10]})")
        raise ValueError(f"the {what} table has no column {name!r}; it has {list(table.columns)[:10]} (the first "
                         "column is read as the sample IDs)")
    return table[name]


def check_expression_file(path: Path, layer: Optional[str] = None, gene_column: Optional[str] = None) -> None:
    """The expression file, checked before the model is loaded, in command-line terms."""
    from bulkformer.io import check_gene_column, check_layer, file_format

    if path.is_dir():
        raise ValueError(f"{path} is a directory: give one expression file (CSV/TSV(.gz), parquet or h5ad)")
    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    try:
        file_format(path)
    except ValueError:
        raise ValueError(f"cannot read {path.name}: give a CSV/TSV (optionally .gz), parquet or h5ad file "
                         "(save a spreadsheet as CSV)") from None
    check_layer(path, layer)  # their advice names --layer / --gene-column once main translates it
    check_gene_column(path, gene_column)


def check_model_dir(path: Path, note: bool = True) -> Path:
    """A complete bundle directory (checked before any expensive work; a fine-tuning
    output or a run directory is named as such, with how to use it)."""
    from bulkformer.bundle import check_bundle_dir

    checked = check_bundle_dir(path)
    if note and declared_untrained(checked):
        # a tiny/demo bundle runs like a real one: say so, or its output reads as biology
        typer.echo(f"note: {path} has random weights (a demo model): its outputs carry no biology", err=True)
    return checked


def declared_untrained(path: Path) -> bool:
    """Whether the bundle's config.json says ``trained: false`` (tiny and demo bundles).
    An unreadable config is not judged here: loading the bundle names what is wrong."""
    import json

    try:
        metadata = json.loads((path / "config.json").read_text(encoding="utf-8")).get("metadata")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(metadata, dict) and metadata.get("trained") is False


def load_model(path: Path, note: bool = True) -> Any:
    """The bundle at ``path`` (loaded once per command and shared by every step), after
    :func:`check_model_dir`'s checks and advice (``note``: its random-weights note; off
    where the command reports the model itself, as ``info`` does, trained flag included)."""
    from bulkformer.bundle import load

    return load(check_model_dir(path, note=note))
