"""Pretraining's callbacks (:mod:`.loop`): a wall-clock budget, checkpoints every N steps or
M minutes, and SIGTERM / SIGINT turned into "checkpoint, then stop" (cluster schedulers
send SIGTERM before they kill a job)."""
from __future__ import annotations

import signal
import time
from typing import Any, Callable

from .loop import Callback, LoopState


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGTERM or SIGINT after writing its checkpoint (``checkpoint``: its
    path, None without a run directory); ``signum``: the signal."""

    def __init__(self, signum: int, checkpoint: Any) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at a checkpoint: {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class StopOnSignal(Callback):
    """While installed (a context manager, in the main thread), SIGTERM and SIGINT ask the
    loop to stop after the current step; a second SIGINT interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "StopOnSignal":
        import threading

        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_step(self, state: LoopState) -> None:
        if self.received is not None:
            state.stop_reason = signal.Signals(self.received).name


class TimeBudget(Callback):
    """Stop (after a checkpoint) once ``max_time`` seconds have passed since the run began."""

    def __init__(self, max_time: float | None) -> None:
        self.max_time = max_time

    def on_step(self, state: LoopState) -> None:
        if self.max_time is not None and state.elapsed >= self.max_time and not state.finished:
            state.stop_reason = "max_time"


class Checkpoints(Callback):
    """A checkpoint every ``every`` steps, at least every ``minutes`` minutes, and before a
    stop; ``save(state)`` writes one (and returns its path)."""

    def __init__(self, save: Callable[[LoopState], Any], every: int | None, minutes: float | None) -> None:
        self.save, self.every, self.minutes = save, every, minutes
        self.last_time = time.monotonic()
        self.last_path: Any = None

    def on_step(self, state: LoopState) -> None:
        if self.minutes is not None and time.monotonic() - self.last_time >= 60 * self.minutes:
            state.checkpoint_due = True

    def after_step(self, state: LoopState) -> None:
        by_step = bool(self.every) and state.step % self.every == 0
        if state.finished:  # the final model is written instead
            return
        if by_step or state.checkpoint_due or state.stop_reason is not None:
            self.last_path = self.save(state)
            self.last_time = time.monotonic()
