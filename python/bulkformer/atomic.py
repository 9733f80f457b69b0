"""Outputs appear whole or not at all: everything is written beside its target under a
temporary name and renamed into place only once complete."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the
    format from it still work); it replaces ``path`` when the block succeeds and is
    removed when it fails."""
    path = check_output_location(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; this output is one file: give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        _publish_mode(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def check_output_location(path: str | os.PathLike) -> Path:
    """Whether an output can be created at ``path`` at all: its nearest existing ancestor
    must be a directory this process may write in. Run before expensive work, so that a
    mistyped path (a file used as a folder) fails at once, not after the computation."""
    path = Path(path)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{path} cannot be created: {ancestor} is a file, not a directory; give an output path "
                         "inside a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{path} cannot be created: no permission to write in {ancestor}; give an output path in a "
                         "directory you can write to")
    return path


def check_replaceable(path: str | os.PathLike, marker: str | tuple[str, ...], what: str) -> Path:
    """Whether an output directory may be written at ``path``: nothing there, an empty
    directory, or an earlier output of the same kind (it holds ``marker``, a file name or
    one of several). Anything else is refused, so that an output path given by mistake
    (a data folder, a home directory) is never wiped. Callers run it before expensive work
    too; :func:`atomic_directory` runs it again just before the swap."""
    path = check_output_location(path)
    markers = (marker,) if isinstance(marker, str) else tuple(marker)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; {what} is written as a directory: give a new directory path")
    if path.is_dir() and any(path.iterdir()) and not any((path / m).exists() for m in markers):
        raise ValueError(f"{path} already exists and is not {what} (it has no {' or '.join(markers)}): writing there "
                         f"would replace everything in it. Give a new or empty directory, e.g. {_free_sibling(path)}")
    return path


def _free_sibling(path: Path) -> Path:
    candidate, n = path.with_name(f"{path.name}-bulkformer"), 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}-bulkformer-{n}"), n + 1
    return candidate


@contextmanager
def atomic_directory(path: str | os.PathLike, *, marker: str | tuple[str, ...], what: str) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it replaces ``path`` when the
    block succeeds and is removed when it fails. An existing directory is replaced only
    when :func:`check_replaceable` allows it (empty, or an earlier output holding ``marker``)."""
    path = check_replaceable(path, marker, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        _publish_mode(staging)
        check_replaceable(path, marker, what)  # something may have appeared there meanwhile
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish_mode(staging: Path) -> None:
    """mkstemp/mkdtemp (and some writers, safetensors among them) create private
    entries; give the finished output, and everything in it, the mode a plain
    open()/mkdir() would have had, so that shared bundles stay readable."""
    umask = os.umask(0)
    os.umask(umask)
    if not staging.exists():  # a writer may have removed it: nothing to publish
        return
    entries = [staging, *staging.rglob("*")] if staging.is_dir() else [staging]
    for entry in entries:
        if entry.is_symlink():
            continue
        mode = stat.S_IMODE(entry.stat().st_mode)
        wanted = (0o777 if entry.is_dir() else 0o666 | (mode & 0o111)) & ~umask
        if mode != wanted:
            entry.chmod(wanted)


def replace_directory(staging: Path, target: Path) -> None:
    """Move a finished directory into place; an older one is swapped out only at the end."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = target.with_name(f".{target.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(target, backup)
    os.replace(staging, target)
    shutil.rmtree(backup, ignore_errors=True)
