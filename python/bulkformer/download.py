"""Download an official release, verified: every file is fetched from where its authors
publish it (or a mirror), resumed where a partial file was left, checked against its
size and SHA256 from the authors' download manifest, and the folder is then loaded
once (manifest, weights, parameter count) before it is called ready."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path

from tqdm.auto import tqdm

from .checksums import IntegrityError, check_files, file_record
from .errors import ArgumentError, BulkformerError
from .model import LAYOUTS
from .model.layouts.base import Layout, ReleaseFile

_BLOCK = 1 << 20
_PARTIAL = ".part"


class DownloadError(BulkformerError, RuntimeError):
    """A release file could not be fetched (``argument``: the file)."""


def release_layout_named(name: str) -> Layout:
    """The layout whose release ``name`` is ("latest")."""
    downloadable = [n for n, layout in LAYOUTS.items() if layout.downloads]
    if name not in downloadable:
        raise ArgumentError(f"no downloadable release named {name!r}", argument="name", value=name,
                            fix=f"choose one of {', '.join(downloadable)} (v1/v2 releases are imported from their "
                                "files with import-checkpoint)", joiner="; ")
    return LAYOUTS[name]


def files_of(layout: Layout, manifest: str | Path | None = None, base_url: str | None = None) -> list[ReleaseFile]:
    """The files to fetch: the package's record of the authors' download manifest, or
    another download manifest (format 2); ``base_url``: a mirror serving them by name."""
    files = list(layout.downloads)
    if manifest is not None:
        document = json.loads(Path(manifest).read_text())
        if document.get("format_version") != 2 or not isinstance(document.get("files"), dict):
            raise ArgumentError(f"{manifest} is not a download manifest (format_version 2 with files)",
                                argument="manifest", value=str(manifest), joiner="")
        urls = {f.name: f.url for f in files}
        files = [ReleaseFile(name, int(record["bytes"]), str(record["sha256"]), urls.get(name, ""))
                 for name, record in document["files"].items()]
    if base_url is not None:
        files = [ReleaseFile(f.name, f.bytes, f.sha256, base_url.rstrip("/") + "/" + f.name) for f in files]
    return files


def download_release(name: str = "latest", out: str | Path = "bulkformer-latest", *,
                     manifest: str | Path | None = None, base_url: str | None = None, retries: int = 3,
                     timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch release ``name`` into the folder ``out`` and return it, ready to load
    (``bulkformer.load(out)``; a release folder is accepted wherever a model is).

    Files already complete and matching are kept; a partial one (``<file>.part``)
    resumes with an HTTP range request; a dropped connection is retried ``retries``
    times from where it stopped. A file whose size or SHA256 differs is deleted and the
    error names it. Without a network the first request fails at once, saying where to
    put files downloaded by hand. ``manifest`` / ``base_url``: another download
    manifest (format 2) and a mirror serving the files by name.
    """
    layout = release_layout_named(name)
    files = files_of(layout, manifest, base_url)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in files]
    for release_file in files:
        _fetch(release_file, out, names, retries=retries, timeout=timeout, progress=progress)
    # everything verified: load once (manifest, graph, weights, parameter count) so that "ready" means loadable
    layout.read_release(out)
    return out


def _fetch(release_file: ReleaseFile, out: Path, names: Sequence[str], *, retries: int, timeout: float,
           progress: bool) -> None:
    target = out / release_file.name
    expected = {release_file.name: {"bytes": release_file.bytes, "sha256": release_file.sha256}}
    fix = f"delete it and run the download again, or put the published {release_file.name} there by hand"
    if target.is_file() and file_record(target) == expected[release_file.name]:
        return  # already complete
    partial = out / (release_file.name + _PARTIAL)
    if target.is_file():  # a different file under the release's name: start over beside it
        target.replace(partial)
    for attempt in range(retries + 1):
        try:
            _transfer(release_file, partial, timeout=timeout, progress=progress)
            break
        except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as err:
            if attempt == 0 and not partial.exists() and _unreachable(err):
                raise DownloadError(
                    f"cannot reach {release_file.url.split('/')[2] if '://' in release_file.url else release_file.url} "
                    f"({_reason(err)})", argument=release_file.name, value=release_file.url, joiner=": ",
                    fix=f"download the release's files by hand ({', '.join(names)}) into {out}, then run "
                        f"`bulkformer verify {out}`") from None
            if attempt == retries:
                raise DownloadError(f"{release_file.name}: the transfer broke off {retries + 1} times ({_reason(err)})",
                                    argument=release_file.name, value=release_file.url, joiner="; ",
                                    fix=f"run the download again: it resumes from {partial}") from None
    try:
        check_files(out, {partial.name: expected[release_file.name]}, source="the release's download manifest",
                    fix=fix)
    except IntegrityError as err:
        partial.unlink(missing_ok=True)  # a wrong file is never kept to resume from
        raise IntegrityError(str(err).replace(partial.name, release_file.name), argument=release_file.name,
                             value=str(target), fix=None) from None
    partial.replace(target)


def _transfer(release_file: ReleaseFile, partial: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of the file to ``partial`` (a range request when it has bytes)."""
    have = partial.stat().st_size if partial.exists() else 0
    if have > release_file.bytes:  # longer than the file can be: not a prefix of it
        partial.unlink()
        have = 0
    if have == release_file.bytes:
        return
    request = urllib.request.Request(release_file.url, headers={"User-Agent": "bulkformer"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        mode = "ab" if have else "wb"
        with partial.open(mode) as handle, tqdm(total=release_file.bytes, initial=have, unit="B", unit_scale=True,
                                                desc=release_file.name, disable=not progress) as bar:
            for block in iter(lambda: response.read(_BLOCK), b""):
                handle.write(block)
                bar.update(len(block))
    received = partial.stat().st_size
    if received < release_file.bytes:
        raise ConnectionError(f"received {received:,} of {release_file.bytes:,} bytes")


def _unreachable(err: BaseException) -> bool:
    """No network (no DNS, refused, unroutable), as opposed to a transfer that broke off."""
    reason = getattr(err, "reason", err)
    return isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError) and isinstance(
        reason, (OSError, str))


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", None) or err)


__all__ = ["DownloadError", "download_release", "files_of"]
