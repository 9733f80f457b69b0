"""Outputs appear whole or not at all: everything is written beside its target under a
temporary name and renamed into place only once complete."""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArgumentError


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the
    format from it still work); it replaces ``path`` when the block succeeds and is
    removed when it fails."""
    path = check_file_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    handle, name = tempfile.mkstemp(prefix=_staging_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        _publish_mode(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def check_file_output(path: str | os.PathLike, argument: str = "out") -> Path:
    """An output that is one file: refused at once where a directory stands (``d.csv/``),
    not after the computation when the rename fails."""
    path = check_output_location(path)
    if path.is_dir():
        raise ArgumentError(f"{path} is a directory, and this output is one file", argument=argument,
                            value=str(path), fix=f"give a file path, e.g. {path / 'result'}{path.suffix}")
    return path


def check_not_input(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None],
                    argument: str = "out") -> None:
    """Inputs are never outputs: ``out`` naming one of ``inputs`` (argument -> path) would
    replace the user's data with the result, so it is refused before any work."""
    target = Path(out)
    for name, source in inputs.items():
        if source is None or not Path(source).exists() or not target.exists():
            continue
        # an output directory holding the input would be swapped out with it
        if os.path.samefile(source, target) or _inside(Path(source), target):
            raise ArgumentError(f"the output {target} is the input {source} ({name}); writing it would replace the "
                                "input", argument=argument, value=str(target),
                                fix=f"give another output path, e.g. {_free_sibling(target, file=True)}")


def _inside(path: Path, directory: Path) -> bool:
    return directory.is_dir() and path.resolve().is_relative_to(directory.resolve())


def _staging_prefix(path: Path) -> str:
    """Temporary names carry the writer's process id, so that a later writer can tell a
    leftover of a killed process (SIGKILL runs no cleanup) from a write in progress."""
    return f".{path.name}.{os.getpid()}."


def sweep_stale(path: Path) -> None:
    """Remove temporary siblings of ``path`` left by processes that no longer run."""
    sweep_dead_writers(path.parent, re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\."))


def sweep_dead_writers(folder: Path, staging: re.Pattern) -> list[str]:
    """Remove the entries of ``folder`` whose names match ``staging`` (group 1: the
    writer's pid) and whose writer no longer runs; returns the names removed."""
    try:
        entries = list(folder.iterdir())
    except OSError:  # no folder (yet), or unreadable: nothing to sweep
        return []
    removed = []
    for entry in entries:
        match = staging.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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


def _free_sibling(path: Path, file: bool = False) -> Path:
    # a file keeps its suffixes last (x.csv.gz -> x-bulkformer.csv.gz), so its format still reads
    suffix = "".join(path.suffixes[-2:]) if file and path.name.endswith(".gz") else path.suffix if file else ""
    stem = path.name[:len(path.name) - len(suffix)]
    candidate, n = path.with_name(f"{stem}-bulkformer{suffix}"), 2
    while candidate.exists():
        candidate, n = path.with_name(f"{stem}-bulkformer-{n}{suffix}"), n + 1
    return candidate


@contextmanager
def atomic_directory(path: str | os.PathLike, *, marker: str | tuple[str, ...], what: str) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it replaces ``path`` when the
    block succeeds and is removed when it fails. An existing directory is replaced only
    when :func:`check_replaceable` allows it (empty, or an earlier output holding ``marker``)."""
    path = check_replaceable(path, marker, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
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
    # a unique backup name: two writers finishing at once must not swap into one backup
    backup = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(target)}old.", dir=target.parent))
    os.replace(target, backup)
    os.replace(staging, target)
    shutil.rmtree(backup, ignore_errors=True)
