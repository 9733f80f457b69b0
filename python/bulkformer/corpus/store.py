"""A prepared corpus on disk: shards read and prepared once, then streamed by pretraining.

    corpus/zarr.json, values/    samples x vocabulary, log1p TPM (-10 = unmeasured), float32 or
                                 float16, chunks of ``chunk_rows`` samples (zarr)
    corpus/measured/             samples x vocabulary bool: the gene was measured in the sample
    corpus/samples.tsv           sample_id, shard (index into the manifest's shards)
    corpus/manifest.json         format, vocabulary and input conventions (sha256 of the gene
                                 IDs), preparation settings, and per source shard: path, size,
                                 sha256, sample range and the sha256 of its stored values

A new corpus is written under a temporary name and renamed; appending writes the new rows
past the manifest's end and replaces the manifest last, so a killed append leaves the
corpus as it was (its extra rows are overwritten by the next append). One writer at a time
(a lock beside the corpus). A corpus refuses a model of another vocabulary or layout
conventions: its values were prepared for those genes.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_directory, atomic_file, check_replaceable
from ..dataspec import lengths_identity
from ..errors import ArgumentError, InputError
from ..locks import OutputLock
from ..model import MASK_VALUE
from ..preprocess.conventions import ORIGINAL_CONVENTIONS
from .sources import ModelTarget, Shard, check_distinct_samples, file_shard, gene_table, shard_paths

FORMAT = "bulkformer-corpus"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.tsv"
VALUES, MEASURED = "values", "measured"
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class CorpusSettings:
    """How shards are read and stored; the same meaning as in ``prepare``. ``genes``: the
    ``var`` column holding the gene IDs (h5ad, zarr shards); ``chunk_rows``: samples per
    stored chunk (the unit a reader decompresses); ``dtype``: float32 keeps prepare's
    values exactly, float16 halves the corpus (log1p TPM to ~3 significant digits; -10 exact)."""

    input: str = "counts"
    layer: str | None = None
    orientation: str = "samples_by_genes"
    genes: str | None = None
    min_matched_fraction: float = 0.5
    dtype: str = "float32"
    chunk_rows: int = 256

    def check(self) -> "CorpusSettings":
        if self.dtype not in DTYPES:
            raise ArgumentError(f"dtype={self.dtype!r} is not a corpus dtype", argument="dtype", value=self.dtype,
                                fix="use 'float32' (exact) or 'float16' (half the size)")
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise ArgumentError(f"chunk_rows={self.chunk_rows!r} must be a whole number >= 1", argument="chunk_rows",
                                value=self.chunk_rows, fix="leave it at 256 unless samples are very wide")
        return self

    def preparation(self, lengths: Any) -> dict[str, Any]:
        """What decides the stored values: an append must repeat it."""
        record = {k: v for k, v in asdict(self).items() if k not in ("chunk_rows",)}
        return {**record, "lengths": lengths_identity(lengths)}


def model_target(model: Any = None) -> ModelTarget:
    """What a corpus is prepared for: a Bundle or bundle path (its genes and conventions), a
    preset name (the shipped vocabulary, the preset's layout conventions), a vocabulary
    table (the original conventions) or None (the shipped vocabulary)."""
    if isinstance(model, ModelTarget):
        return model
    from ..preprocess import vocabulary_table

    if model is None or isinstance(model, pd.DataFrame):
        return ModelTarget(vocabulary_table(model), ORIGINAL_CONVENTIONS)
    conventions = getattr(model, "input_conventions", None)
    if conventions is not None:  # a Bundle
        return ModelTarget(model.genes, conventions)
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        from ..bundle import load

        bundle = load(model)
        return ModelTarget(bundle.genes, bundle.input_conventions)
    from ..model import PRESETS, layout_of

    if isinstance(model, str) and model in PRESETS:
        return ModelTarget(vocabulary_table(None), layout_of(PRESETS[model]).conventions)
    raise ArgumentError(f"model={model!r} is neither a bundle directory nor a preset", argument="model", value=str(model),
                        fix=f"give a bundle directory, a preset ({', '.join(PRESETS)}) or a vocabulary table")


def vocabulary_record(target: ModelTarget) -> dict[str, Any]:
    ids = gene_table(target)["ensembl_id"].astype(str).tolist()
    conventions = target.input_conventions
    return {"n_genes": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "first_gene": ids[0] if ids else None, "last_gene": ids[-1] if ids else None,
            "conventions": {"tpm_denominator": conventions.tpm_denominator,
                            "nan_is_unmeasured": conventions.nan_is_unmeasured}}


def is_corpus(path: Any) -> bool:
    if not isinstance(path, (str, Path)):
        return False
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


class PreparedCorpus:
    """A corpus on disk (:func:`open_corpus`). ``n_samples``, ``n_genes``, ``shards`` (the
    manifest's records), ``sample_ids`` and ``shard_index`` (per sample) come from the
    manifest and samples.tsv; :meth:`read` reads rows."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not is_corpus(self.path):
            raise InputError(f"{self.path} is not a prepared corpus (no {MANIFEST} of format {FORMAT})",
                             argument="data", value=str(self.path),
                             fix="prepare one with bulkformer.corpus.prepare_corpus(shards, out)")
        self.manifest: dict[str, Any] = json.loads((self.path / MANIFEST).read_text())
        if self.manifest.get("format_version", 0) > FORMAT_VERSION:
            raise InputError(f"{self.path} is a corpus of a newer format ({self.manifest['format_version']})",
                             argument="data", value=str(self.path), fix="update bulkformer to read it")
        self.n_samples = int(self.manifest["n_samples"])
        self.n_genes = int(self.manifest["vocabulary"]["n_genes"])
        self.shards: list[dict[str, Any]] = list(self.manifest["shards"])
        table = pd.read_csv(self.path / SAMPLES, sep="\t", dtype={"sample_id": str}, keep_default_na=False,
                            nrows=self.n_samples)
        self.sample_ids = table["sample_id"].astype(str).tolist()
        self.shard_index = table["shard"].to_numpy(dtype=np.int64)
        self._arrays: dict[str, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.n_samples

    @property
    def chunk_rows(self) -> int:
        return int(self.manifest["chunk_rows"])

    def array(self, name: str = VALUES) -> Any:
        """The zarr array, opened once per process (worker processes open their own)."""
        if self._pid != os.getpid():
            self._arrays, self._pid = {}, os.getpid()
        if name not in self._arrays:
            import zarr

            self._arrays[name] = zarr.open_group(str(self.path), mode="r")[name]
        return self._arrays[name]

    def read(self, start: int, stop: int, name: str = VALUES) -> np.ndarray:
        stop = min(stop, self.n_samples)
        values = np.asarray(self.array(name)[start:stop])
        return values.astype(np.float32, copy=False) if name == VALUES else values

    def shard_ranges(self) -> list[tuple[str, int, int]]:
        return [(s["name"], int(s["start"]), int(s["stop"])) for s in self.shards]

    def check_target(self, target: ModelTarget, *, what: str = "the model") -> None:
        """Refuse a model of another vocabulary or input conventions."""
        saved, now = self.manifest["vocabulary"], vocabulary_record(target)
        if saved["sha256"] != now["sha256"]:
            raise InputError(
                f"the corpus {self.path} was prepared for another vocabulary ({saved['n_genes']} genes, "
                f"{saved['first_gene']} ... {saved['last_gene']}) than {what} ({now['n_genes']} genes, "
                f"{now['first_gene']} ... {now['last_gene']})", argument="data", value=str(self.path),
                fix="prepare a corpus for this model (prepare_corpus(shards, out, model=...)) from the same shards")
        if saved["conventions"] != now["conventions"]:
            raise InputError(
                f"the corpus {self.path} was prepared with other input conventions ({saved['conventions']}) than "
                f"{what} takes ({now['conventions']})", argument="data", value=str(self.path),
                fix="prepare a corpus for this model from the same shards")

    def describe(self) -> str:
        return (f"{self.n_samples} samples x {self.n_genes} genes from {len(self.shards)} shard files "
                f"({self.manifest['dtype']}, {self.path})")


def open_corpus(path: str | Path) -> PreparedCorpus:
    return PreparedCorpus(path)


def file_sha256(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of a file, or of a directory's files (a zarr shard) in name order."""
    digest, size = hashlib.sha256(), 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return size, digest.hexdigest()


def prepare_corpus(shards: str | Path | Sequence[str | Path], out: str | Path, model: Any = None, *,
                   settings: CorpusSettings | None = None, lengths: Any = None,
                   progress: bool = True) -> PreparedCorpus:
    """Read shard files once, prepare them for ``model`` (its vocabulary and its layout's
    input conventions: see :func:`model_target`) and store them as a corpus at ``out``.

    ``out`` new (or empty): a corpus is written. ``out`` a corpus: the shards it does not
    hold yet are appended (those it holds, same path and checksum, are skipped; a held shard
    whose file changed is an error), with the corpus's own settings, which ``settings`` and
    ``lengths`` must repeat, and for the vocabulary it was prepared for. A sample ID already
    in the corpus is an error. Returns the corpus."""
    settings = (settings or CorpusSettings()).check()
    target = model_target(model)
    paths = shard_paths(shards)
    out = Path(out)
    say = (lambda message: print(f"[bulkformer prepare-corpus] {message}", flush=True)) if progress else (lambda m: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    if is_corpus(out):
        lock = OutputLock(out).acquire()
        try:
            return _append(PreparedCorpus(out), paths, target, settings, lengths, say)
        finally:
            lock.release()
    check_replaceable(out, MANIFEST, "a prepared corpus")
    lock = OutputLock(out).acquire()
    try:
        with atomic_directory(out, marker=MANIFEST, what="a prepared corpus") as staging:
            _create(staging, target, settings, lengths)
            _append(PreparedCorpus(staging), paths, target, settings, lengths, say, final=out)
    finally:
        lock.release()
    return PreparedCorpus(out)


def _create(path: Path, target: ModelTarget, settings: CorpusSettings, lengths: Any) -> None:
    import zarr

    n_genes = len(gene_table(target))
    group = zarr.open_group(str(path), mode="w")
    create = getattr(group, "create_array", None) or group.create_dataset  # zarr 3 / zarr 2
    chunks = (settings.chunk_rows, max(n_genes, 1))
    create(VALUES, shape=(0, n_genes), chunks=chunks, dtype=settings.dtype, fill_value=0)
    create(MEASURED, shape=(0, n_genes), chunks=chunks, dtype="bool", fill_value=False)
    pd.DataFrame({"sample_id": [], "shard": []}).to_csv(path / SAMPLES, sep="\t", index=False)
    _write_manifest(path, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "n_samples": 0, "dtype": settings.dtype,
        "chunk_rows": settings.chunk_rows, "vocabulary": vocabulary_record(target),
        "preparation": settings.preparation(lengths), "shards": [],
    })


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with atomic_file(path / MANIFEST) as staging:
        staging.write_text(json.dumps(manifest, indent=1) + "\n")


def _append(corpus: PreparedCorpus, paths: list[Path], target: ModelTarget, settings: CorpusSettings, lengths: Any,
            say, final: Path | None = None) -> PreparedCorpus:
    import zarr

    name = final or corpus.path
    corpus.check_target(target, what="the model given")
    saved, now = corpus.manifest["preparation"], settings.preparation(lengths)
    changed = [f"{k}={saved.get(k)!r} (now {v!r})" for k, v in now.items() if saved.get(k) != v]
    if changed:
        raise ArgumentError(f"the corpus {name} was prepared with other settings: {', '.join(changed)}",
                            argument="settings", value=now, fix="append with the corpus's settings, or prepare a new corpus")
    held = {s["path"]: s for s in corpus.shards}
    known = set(corpus.sample_ids)
    group = zarr.open_group(str(corpus.path), mode="r+")
    values, measured = group[VALUES], group[MEASURED]
    manifest, ids, owners = dict(corpus.manifest), list(corpus.sample_ids), list(corpus.shard_index)
    records, n = list(corpus.shards), corpus.n_samples
    todo = []
    for path in paths:
        size, sha = file_sha256(path)
        key = str(path.resolve())
        if key in held:
            if held[key]["sha256"] != sha:
                raise InputError(f"{path} changed since it was added to the corpus {name} (its sha256 differs)",
                                 argument="shards", value=str(path),
                                 fix="prepare a new corpus, or add the new version under another file name")
            say(f"{path.name}: already in the corpus, skipped")
            continue
        todo.append((path, key, size, sha))
    shards = open_shards([p for p, *_ in todo], target, settings, lengths)
    earlier = [Shard(name=str(name), n_samples=len(ids), read=lambda: None, sample_ids=ids)] if ids else []
    check_distinct_samples([*earlier, *(shard for shard in shards if shard is not None)])
    for (path, key, size, sha), shard in zip(todo, shards):
        if shard is None:
            continue
        rows = shard.read().astype(settings.dtype, copy=False)
        sample_ids = [str(s) for s in (shard.sample_ids or [f"{path.name}:{i}" for i in range(len(rows))])]
        repeated = [s for s in sample_ids if s in known]
        if repeated:
            raise InputError(f"{len(repeated)} samples of {path} are already in the corpus (e.g. {repeated[0]!r})",
                             argument="shards", value=str(path),
                             fix="remove the repeats from one file (rename them if they are different samples)")
        stop = n + len(rows)
        values.resize((stop, values.shape[1]))
        measured.resize((stop, measured.shape[1]))
        values[n:stop] = rows
        measured[n:stop] = rows != MASK_VALUE
        records.append({"name": path.name, "path": key, "bytes": size, "sha256": sha, "n_samples": len(rows),
                        "start": n, "stop": stop,
                        "values_sha256": hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()})
        ids += sample_ids
        owners += [len(records) - 1] * len(rows)
        known.update(sample_ids)
        n = stop
        say(f"{path.name}: {len(rows)} samples prepared ({n} in the corpus)")
    with atomic_file(corpus.path / SAMPLES) as staging:
        pd.DataFrame({"sample_id": ids, "shard": owners}).to_csv(staging, sep="\t", index=False)
    _write_manifest(corpus.path, {**manifest, "n_samples": n, "shards": records})  # last: the commit point
    return PreparedCorpus(corpus.path)


def open_shards(paths: Sequence[Path], target: ModelTarget, settings: CorpusSettings,
                lengths: Any) -> list[Shard | None]:
    """The shard files as :class:`Shard` s (sizes and sample IDs from metadata; None for one
    without samples, skipped with a warning); a sample in two files is an error."""
    shards = [file_shard(p, target, input=settings.input, layer=settings.layer, lengths=lengths,
                         orientation=settings.orientation, min_matched_fraction=settings.min_matched_fraction,
                         gene_names=settings.genes) for p in paths]
    empty = [s.name for s in shards if not s.n_samples]
    if shards and len(empty) == len(shards):
        raise InputError(f"no training data: the shard files ({', '.join(empty[:5])}) hold no samples",
                         argument="data", value=empty[:5], fix="give shard files that hold samples")
    if empty:  # known from metadata: skipping them changes nothing else
        warnings.warn(f"shard files without samples, skipped: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}",
                      UserWarning, stacklevel=3)
    kept = [s if s.n_samples else None for s in shards]
    check_distinct_samples([s for s in kept if s is not None])
    return kept


def verify_corpus(path: str | Path) -> list[str]:
    """Shards whose stored values no longer match their checksum (empty: all good)."""
    corpus = PreparedCorpus(path)
    dtype = np.dtype(corpus.manifest["dtype"])
    bad = []
    for shard in corpus.shards:
        stored = np.asarray(corpus.array()[shard["start"]:shard["stop"]]).astype(dtype, copy=False)
        if hashlib.sha256(np.ascontiguousarray(stored).tobytes()).hexdigest() != shard["values_sha256"]:
            bad.append(shard["name"])
    return bad
