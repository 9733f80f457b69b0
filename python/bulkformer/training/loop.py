"""The training loop pretraining and fine-tuning share: epochs of steps, with callbacks.

``run_loop`` calls ``step(batch, state)`` for each batch ``epoch_batches(epoch, start)``
yields, appends its record to ``state.history`` and tells the callbacks: after each step
(``on_step``), once every rank agrees on whether to checkpoint or stop (``after_step``:
``state.checkpoint_due``, ``state.stop_reason``), and at the end of each epoch
(``on_epoch``). A callback stops the run by setting ``state.stop_reason``; logging,
validation, checkpoints, time budgets, signals and the tests' kill switch are callbacks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence


@dataclass
class LoopState:
    """Where a run stands. ``position``: samples of the current epoch consumed;
    ``total_steps``: None for "all ``epochs``"; ``started``: ``time.monotonic()`` at start."""

    epochs: int
    total_steps: int | None = None
    step: int = 0
    epoch: int = 0
    position: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    checkpoint_due: bool = False
    stop_reason: str | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        return self.total_steps is not None and self.step >= self.total_steps


class Callback:
    """Hooks of :func:`run_loop`; each does nothing unless overridden."""

    def on_step(self, state: LoopState) -> None:
        """Right after a step (its record is ``state.history[-1]``); may request a
        checkpoint (``state.checkpoint_due = True``) or a stop (``state.stop_reason``)."""

    def after_step(self, state: LoopState) -> None:
        """Once the ranks agree on ``checkpoint_due`` and ``stop_reason``."""

    def on_epoch(self, state: LoopState) -> None:
        """At the end of an epoch (``state.epoch`` is the epoch that ended)."""


def run_loop(state: LoopState, epoch_batches: Callable[[int, int], Iterable[tuple[int, Any]]],
             step: Callable[[Any, LoopState], dict[str, Any]], callbacks: Sequence[Callback],
             agree: Callable[[LoopState], None] = lambda state: None) -> LoopState:
    """Run until ``total_steps`` (or ``epochs``) or a callback's stop; returns ``state``."""
    while not state.finished and state.epoch < state.epochs and state.stop_reason is None:
        for position, batch in epoch_batches(state.epoch, state.position):
            record = step(batch, state)
            state.step += 1
            state.position = position
            state.history.append(record)
            for callback in callbacks:
                callback.on_step(state)
            agree(state)
            for callback in callbacks:
                callback.after_step(state)
            state.checkpoint_due = False
            if state.stop_reason is not None or state.finished:
                break
        else:  # the epoch's data ran out
            for callback in callbacks:
                callback.on_epoch(state)
            state.epoch, state.position = state.epoch + 1, 0
    return state
