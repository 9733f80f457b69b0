"""File integrity: sizes and SHA256s of a directory's files, recorded beside them and
checked before anything is read (bundles' ``checksums.json``, releases' manifests)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import BulkformerError

CHECKSUMS = "checksums.json"
_FORMAT = "bulkformer-checksums"
_BLOCK = 8 << 20


class IntegrityError(BulkformerError, ValueError):
    """A file differs from the size or SHA256 recorded for it (``argument``: the file)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256(path)}


def check_files(directory: Path, expected: Mapping[str, Mapping[str, Any]], *, source: str, fix: str) -> None:
    """Every file named in ``expected`` ({name: {bytes, sha256}}) exists in ``directory``
    with that size and SHA256 (the size first: a truncated file costs no hashing)."""
    for name, record in expected.items():
        path = directory / name
        if not path.is_file():
            raise IntegrityError(f"{path} is missing ({source} lists it)", argument=name, value=str(path),
                                 fix=fix.format(name=name), joiner="; ")
        size = path.stat().st_size
        if size != int(record["bytes"]):
            raise IntegrityError(f"{path} has {size:,} bytes, {source} says {int(record['bytes']):,}: the file is "
                                 "incomplete or damaged", argument=name, value=str(path), fix=fix.format(name=name),
                                 joiner="; ")
        if sha256(path) != str(record["sha256"]).lower():
            raise IntegrityError(f"{path} does not match its SHA256 in {source}: the file is damaged or was changed",
                                 argument=name, value=str(path), fix=fix.format(name=name), joiner="; ")


def write_checksums(directory: Path, names: Iterable[str]) -> Path:
    """Record the named files' sizes and SHA256s in ``directory/checksums.json``."""
    files = {name: file_record(directory / name) for name in sorted(names)}
    path = directory / CHECKSUMS
    path.write_text(json.dumps({"format": _FORMAT, "algorithm": "sha256", "files": files}, indent=2) + "\n")
    return path


def read_checksums(directory: Path) -> dict[str, dict[str, Any]] | None:
    """The recorded files, or None where the directory has no checksums.json."""
    path = directory / CHECKSUMS
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError(f"{path} is not valid JSON", argument=CHECKSUMS, value=str(path),
                             fix="the bundle is damaged: save or import it again", joiner="; ") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT or not isinstance(document.get("files"), dict):
        raise IntegrityError(f"{path} is not a bulkformer checksum list", argument=CHECKSUMS, value=str(path),
                             fix="the bundle is damaged: save or import it again", joiner="; ")
    return document["files"]


def verify_directory(directory: Path, *, fix: str = "the bundle was damaged or edited after it was saved: save it "
                                                   "again from its source, or import the release again") -> int:
    """Check every file ``checksums.json`` lists; the number checked (0: no list)."""
    files = read_checksums(directory)
    if files is None:
        return 0
    check_files(directory, files, source=str(directory / CHECKSUMS), fix=fix)
    return len(files)
