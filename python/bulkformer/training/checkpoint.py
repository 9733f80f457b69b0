"""Training checkpoints: bundle + optimizer + scheduler + RNG + data position, written
atomically (a staging directory renamed into place) so a crash never leaves a half
checkpoint; ``latest`` names the newest complete one.

    <run>/checkpoints/step-00000500/bundle/       the model (a normal bundle)
    <run>/checkpoints/step-00000500/trainer.pt    optimizer, scheduler, RNG, position, history
    <run>/checkpoints/latest                      text: step-00000500
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_directory, atomic_file
from ..bundle import Bundle
from ..safe_load import safe_torch_load

TRAINER_FILE = "trainer.pt"


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, step: int, bundle: Bundle, trainer_state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoints/step-<step>`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    with atomic_directory(final, marker=TRAINER_FILE, what="a training checkpoint") as staging:
        bundle.save(staging / "bundle")
        torch.save(trainer_state, staging / TRAINER_FILE)
    with atomic_file(root / "latest") as pointer:
        pointer.write_text(name + "\n")
    if keep > 0:
        complete = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    root = checkpoint_root(run_dir)
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / TRAINER_FILE).is_file():
            return candidate
    complete = sorted(p for p in root.glob("step-*") if (p / TRAINER_FILE).is_file()) if root.is_dir() else []
    return complete[-1] if complete else None


def resolve_checkpoint(resume: bool | str | Path, run_dir: str | Path | None) -> Path | None:
    """``resume=True``: the run's latest checkpoint (None if there is none yet);
    a path: that checkpoint directory (or a run directory's latest)."""
    if resume is False or resume is None:
        return None
    if resume is True:
        if run_dir is None:
            raise ValueError("resume=True needs the run directory (out=...) to look for checkpoints in")
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if (path / TRAINER_FILE).is_file():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {path}: expected a checkpoints/step-* directory or a run directory")
    return found


def load_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    return safe_torch_load(Path(checkpoint) / TRAINER_FILE)
