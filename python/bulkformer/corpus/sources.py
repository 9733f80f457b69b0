"""Where training data come from: shard files (h5ad, parquet, zarr, csv/tsv) and arrays
in memory, aligned to a model vocabulary through ``bulkformer.preprocess.prepare``.

A :class:`Shard` knows its size and sample IDs from metadata and reads its values on
demand; ``prepare_corpus`` reads each once into a corpus, pretraining reads in-memory
data through the same functions.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..io import file_format, read_sample_ids
from ..model import MASK_VALUE
from ..preprocess.conventions import InputConventions
from ..preprocess.validate import LOG1P_TPM_MAX

# what a shard folder is scanned for; a file named on its own may be any table the readers
# take (.txt, .exp, .tab too: in a folder those are more often notes than data)
SHARD_SUFFIXES = (".h5ad", ".parquet", ".pq", ".zarr", ".csv", ".tsv", ".csv.gz", ".tsv.gz")


@dataclass(eq=False)
class ModelTarget:
    """What data are prepared for: a model's genes and its layout's input conventions
    (``prepare`` reads both off it, as off a bundle), without building the model."""

    genes: pd.DataFrame
    input_conventions: InputConventions

    def __len__(self) -> int:
        return len(self.genes)


def gene_table(vocabulary: Any) -> pd.DataFrame:
    """The gene table of a vocabulary DataFrame, a Bundle or a :class:`ModelTarget`."""
    genes = getattr(vocabulary, "genes", None)
    return genes if isinstance(genes, pd.DataFrame) else vocabulary


@dataclass
class Shard:
    """One unit of data: its size, and how to read it as aligned log1p TPM values.
    ``sample_ids`` (None where unknown) let repeats across shards be caught before training."""

    name: str
    n_samples: int
    read: Callable[[], np.ndarray]
    sample_ids: Sequence[str] | None = None


def prepare_values(data: Any, vocabulary: pd.DataFrame, *, input: str = "counts", layer: str | None = None,
                   lengths: Any = None, orientation: str = "samples_by_genes",
                   min_matched_fraction: float = 0.5, gene_names: str | None = None) -> np.ndarray:
    """samples x vocabulary float32 log1p TPM (-10 where unmeasured) via the data-preparation
    module; ``input="aligned"`` takes values already in that form. ``gene_names``: the
    ``var`` column (AnnData, h5ad, zarr) holding the gene IDs, as ``prepare``'s ``genes``."""
    return prepared_with_ids(data, vocabulary, input=input, layer=layer, lengths=lengths, orientation=orientation,
                             min_matched_fraction=min_matched_fraction, gene_names=gene_names)[0]


def prepared_with_ids(data: Any, vocabulary: pd.DataFrame, *, input: str, layer: str | None, lengths: Any,
                      orientation: str, min_matched_fraction: float,
                      gene_names: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """(prepare_values' array, the sample IDs or None where the data carry none)."""
    if input == "aligned":
        return _aligned(data, gene_table(vocabulary), layer=layer, orientation=orientation, gene_names=gene_names)
    if isinstance(data, np.ndarray):
        raise ValueError("a NumPy array carries no gene IDs: pass a DataFrame with the genes as columns "
                         "(pd.DataFrame(values, columns=gene_ids)), or input='aligned' for log1p TPM values "
                         "already in the vocabulary's order")
    from ..preprocess import prepare

    prepared = prepare(data, vocabulary, input=input, layer=layer, lengths=lengths, orientation=orientation,
                       min_matched_fraction=min_matched_fraction, genes=gene_names)
    return np.asarray(prepared.values, dtype=np.float32), list(prepared.sample_ids)


def _aligned(data: Any, vocabulary: pd.DataFrame, *, layer: str | None, orientation: str,
             gene_names: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Values already in vocabulary order. Labelled data (files, DataFrames, AnnData) must
    name the vocabulary's genes in that order: a reordered table would otherwise be
    trained on with every gene in the wrong place."""
    from ..io import as_matrix, is_anndata, read_expression

    sample_ids = None
    if isinstance(data, (str, Path)) or isinstance(data, pd.DataFrame) or is_anndata(data):
        matrix = (read_expression(data, orientation=orientation, layer=layer, genes=gene_names)
                  if isinstance(data, (str, Path))
                  else as_matrix(data, orientation=orientation, layer=layer, genes=gene_names))
        expected = vocabulary["ensembl_id"].astype(str).tolist()
        if matrix.gene_ids != expected and not _positional(matrix.gene_ids):
            where = next((i for i, (a, b) in enumerate(zip(matrix.gene_ids, expected)) if a != b),
                         min(len(matrix.gene_ids), len(expected)))
            got = matrix.gene_ids[where] if where < len(matrix.gene_ids) else "(none)"
            want = expected[where] if where < len(expected) else "(none)"
            raise ValueError(
                f"input='aligned' takes values already in the vocabulary's gene order, but the data's "
                f"{len(matrix.gene_ids)} genes are not the vocabulary's {len(expected)} in order (gene {where + 1}: "
                f"{got!r}, vocabulary: {want!r}). Pass input='counts', 'tpm' or 'logtpm' to have them aligned, "
                "or reorder the columns to the vocabulary's ensembl_id first.")
        values, sample_ids = matrix.values, matrix.sample_ids
    else:
        if gene_names is not None or layer is not None:
            raise ValueError("input='aligned' is a samples x vocabulary array already: gene_names= and layer= name "
                             "parts of files, DataFrames or AnnData, not of a plain array; leave them out")
        values = np.asarray(data)
        values = values.T if orientation == "genes_by_samples" and values.ndim == 2 else values
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(vocabulary):
        raise ValueError(f"aligned input must be samples x {len(vocabulary)} (vocabulary order), got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"aligned input has {int((~np.isfinite(values)).sum()):,} NaN or infinite values; "
                         f"unmeasured genes are {MASK_VALUE:g}, not NaN")
    # model-ready values are natural log1p TPM: counts or TPM here would train on nonsense
    # (the -10 entries sit below every valid value, so max() needs no masking; no copy of the
    # corpus-sized array unless the check fails)
    if values.size and (values.max() > LOG1P_TPM_MAX + 0.5 or ((values < 0) & (values != MASK_VALUE)).any()):
        measured = values[values != MASK_VALUE]
        raise ValueError(f"input='aligned' takes natural log1p TPM ({MASK_VALUE:g} where unmeasured), but the values "
                         f"range from {measured.min():.3g} to {measured.max():.3g} (log1p TPM lies in 0-{LOG1P_TPM_MAX:.1f}): "
                         "for counts or TPM pass input='counts' or 'tpm' (with the genes named) to have them prepared")
    return values, sample_ids


def _positional(labels: Sequence[str]) -> bool:
    """Labels that are only positions (0, 1, ...: pandas' and AnnData's defaults) name nothing."""
    return all(label == str(i) for i, label in enumerate(labels))


def shard_paths(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """A directory (its shard files, sorted), a single file, or a list of files. Suffixes
    match in any case (A.CSV); hidden files (.DS_Store, macOS ._copies) are skipped, and
    other files that are not shards are named in a warning rather than dropped unseen."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir() and not _is_shard_name(path.name, (".zarr",)):
            visible = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            found = [p for p in visible if _is_shard_name(p.name)]
            if not found:
                raise FileNotFoundError(f"no shard files ({', '.join(SHARD_SUFFIXES)}) in {path}")
            skipped = [p.name for p in visible if not _is_shard_name(p.name)]
            if skipped:
                shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
                warnings.warn(f"{path}: not shard files, not used: {shown} (shards end in "
                              f"{', '.join(SHARD_SUFFIXES)})", UserWarning, stacklevel=3)
            return found
        paths = [path]
    else:
        # a shard folder in a list stands for its shard files
        paths = [q for p in data for q in (shard_paths(p) if _is_folder(Path(p)) else [Path(p)])]
        if not paths:
            raise ValueError("no training data: the list of shard files is empty")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such shard: {path}")
        if not (_is_shard_name(path.name) or _is_readable_table(path)):
            raise ValueError(f"unsupported shard format {path.name}; use one of {', '.join(SHARD_SUFFIXES)} "
                             "(or, named on its own, .txt, .tab or .exp, optionally .gz)")
    resolved = [p.resolve() for p in paths]
    repeated = sorted({str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1})
    if repeated:
        raise ValueError(f"the same shard file is listed more than once: {', '.join(repeated[:3])}; list each once")
    return paths


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not _is_shard_name(path.name, (".zarr",))


def _is_readable_table(path: Path) -> bool:
    try:
        file_format(path)
    except ValueError:
        return False
    return True


def _is_shard_name(name: str, suffixes: Sequence[str] = SHARD_SUFFIXES) -> bool:
    return name.lower().endswith(tuple(suffixes))


def file_shard(path: Path, vocabulary: pd.DataFrame, *, input: str, layer: str | None = None,
               lengths: Any = None, orientation: str = "samples_by_genes", min_matched_fraction: float = 0.5,
               gene_names: str | None = None) -> Shard:
    """A shard on disk: its samples are read from metadata (the first column of a text
    file), its values on demand through the same readers as ``prepare(path)`` (a leading
    ID column in parquet, repeated gene IDs and ``orientation`` in every format). Errors
    name the file: a bad shard among hundreds must be findable."""
    path = Path(path)
    try:
        if _is_shard_name(path.name, (".zarr",)):
            import anndata
            import zarr

            group = zarr.open_group(str(path), mode="r")
            x = group["X"]
            n = int(x.shape[0]) if hasattr(x, "shape") else int(x.attrs["shape"][0])
            sample_ids = None
            source: Callable[[], Any] = lambda: anndata.read_zarr(str(path))
        else:
            sample_ids = read_sample_ids(path, orientation=orientation, layer=layer, genes=gene_names)
            n = len(sample_ids)
            source = lambda: path
    except (OSError, ValueError) as err:  # zero-byte or truncated files, a wrong layer or gene-ID column
        raise ValueError(f"cannot read shard {path}: {err}") from err

    reported: set[str] = set()  # a shard is read every epoch: its warnings are worth saying once

    def read() -> np.ndarray:
        try:
            # preparation's warnings (unmatched genes, log-looking counts) name the shard too
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values = prepare_values(source(), vocabulary, input=input, layer=layer, lengths=lengths,
                                        orientation=orientation, min_matched_fraction=min_matched_fraction,
                                        gene_names=gene_names)
        except ValueError as err:
            raise ValueError(f"shard {path}: {err}") from err
        for caught_warning in caught:
            message = f"shard {path}: {caught_warning.message}"
            if message not in reported:
                reported.add(message)
                warnings.warn(message, caught_warning.category, stacklevel=2)
        if len(values) != n:
            raise ValueError(f"shard {path} has {len(values)} samples, its metadata said {n}")
        return values

    return Shard(name=path.name, n_samples=int(n), read=read, sample_ids=sample_ids)


def check_distinct_samples(training: Sequence[Shard], validation: Sequence[Shard] = ()) -> None:
    """No sample may be in two training shards (it would be trained on twice per epoch,
    and scored after training if one of them is held out) nor in training and validation
    data. Shards whose samples have no names (positions 0, 1, ...) are not compared."""
    owner: dict[str, str] = {}
    for shard in training:
        ids = shard.sample_ids
        if ids is None or _positional(ids):
            continue
        repeated = [s for s in ids if s in owner]
        if repeated:
            raise ValueError(
                f"{len(repeated)} samples of shard {shard.name} are also in {owner[repeated[0]]} (e.g. "
                f"{', '.join(map(repr, repeated[:3]))}): each would be trained on twice per epoch, or scored after "
                "being trained on when one file is held out for validation. Remove the repeats from one file "
                "(rename them if they are different samples).")
        owner.update(dict.fromkeys(ids, shard.name))
    for shard in validation:
        ids = shard.sample_ids
        repeated = [] if ids is None or _positional(ids) else [s for s in ids if s in owner]
        if repeated:
            raise ValueError(
                f"{len(repeated)} validation samples are also training samples (e.g. {repeated[0]!r} in "
                f"{owner[repeated[0]]}): validation would score samples the model trained on. Remove them from the "
                "training data or from val_data.")


def apply_measured(values: np.ndarray, cohort: Any, vocabulary: pd.DataFrame) -> np.ndarray:
    """Set -10 where a simulated sample's batch did not measure the gene."""
    position = pd.Index(gene_table(vocabulary)["ensembl_id"]).get_indexer(cohort.measured.columns)
    found = position >= 0
    unmeasured = ~cohort.measured.to_numpy()[:, found]
    values = values.copy()
    block = values[:, position[found]]
    block[unmeasured] = MASK_VALUE
    values[:, position[found]] = block
    return values
