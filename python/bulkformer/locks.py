"""One writer per output: an exclusive lock on a hidden file beside the target.

Outputs written in place over a long run (a gene-level zarr store, filled batch by
batch under one staging name that every torchrun rank opens) cannot each take a unique
temporary name, so a second process writing the same target is refused instead of
interleaving its chunks with the first one's. The lock is an ``flock`` on
``.<name>.lock``: the kernel drops it when its holder dies (SIGKILL included), so a
crashed run never blocks the next one; the file is removed by the holder on release.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import BulkformerError

__all__ = ["OutputBusyError", "OutputLock", "lock_path"]


class OutputBusyError(BulkformerError, FileExistsError):
    """Another process is writing the same output."""


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """Held from :meth:`acquire` until :meth:`release`; ``held`` says whether it is."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`OutputBusyError` at once (never waits)."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise OutputBusyError(
                    f"another process{f' (pid {holder})' if holder else ''} is writing {self.target}",
                    argument="out", value=str(self.target),
                    fix="wait for it to finish, or write to another output path") from None
            # the holder before us may have removed the file between our open and flock:
            # then we hold a lock on a file nobody else can see; start again
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise OutputBusyError(f"could not lock {self.target}: its lock file {self.path} keeps changing",
                              argument="out", value=str(self.target), fix="write to another output path")

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: a waiting writer then sees a new file
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
