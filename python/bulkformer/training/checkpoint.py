"""Training checkpoints: bundle + optimizer + scheduler + RNG + data position, written
atomically (a staging directory renamed into place) so a crash never leaves a half
checkpoint; ``latest`` names the newest complete one.

    <run>/checkpoints/step-00000500/bundle/       the model (a normal bundle)
    <run>/checkpoints/step-00000500/trainer.pt    optimizer, scheduler, RNG, position, history
    <run>/checkpoints/latest                      text: step-00000500
"""
from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_directory, atomic_file, sweep_dead_writers
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
    sweep_leftovers(run_dir)
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


# hidden staging entries: .<name>.<writer pid>. (atomic.py); a SIGKILLed writer leaves them
_STAGING = re.compile(r"^\.[^/]+?\.(\d+)\.")


def sweep_leftovers(run_dir: str | Path) -> list[str]:
    """Remove the hidden staging folders and files that dead writers left in
    ``checkpoints/`` (a run killed while saving one), whatever step they were for: a
    resumed run may never write that step again. Returns the names removed."""
    return sweep_dead_writers(checkpoint_root(run_dir), _STAGING)


def _complete(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints holding a trainer state, newest first (``latest`` first)."""
    root = checkpoint_root(run_dir)
    found = sorted((p for p in root.glob("step-*") if (p / TRAINER_FILE).is_file()), reverse=True) if root.is_dir() else []
    pointer = root / "latest"
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def load_latest_good(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of a run whose trainer state and model both load, with its
    state; a damaged newer one (truncated by a full disk or a killed copy) is passed over
    with a warning naming it. None when the run has no checkpoint; an error when none is
    readable."""
    from ..bundle import load

    candidates = _complete(run_dir)
    damaged: list[str] = []
    for candidate in candidates:
        try:
            state = load_trainer_state(candidate)
            load(candidate / "bundle")  # a damaged model would otherwise fail after the data are read
        except (ValueError, OSError, RuntimeError) as err:
            damaged.append(f"{candidate.name} ({str(err).split(': it is', 1)[0].split('. ', 1)[0]})")
            continue
        if damaged:
            warnings.warn(f"passed over the damaged checkpoint{'s' if len(damaged) > 1 else ''} {'; '.join(damaged)}: "
                          f"resuming from {candidate.name}, the newest one that loads", UserWarning, stacklevel=2)
        return candidate, state
    if candidates:
        raise ValueError(f"no checkpoint of {checkpoint_root(run_dir)} can be read ({'; '.join(damaged)}): resume "
                         "cannot continue this run; start it again in a new run directory")
    return None


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


def resume_point(resume: bool | str | Path, run_dir: str | Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a run resumes from and its trainer state: a run directory's newest
    good one (:func:`load_latest_good`, after sweeping dead writers' leftovers), or the
    checkpoint directory named; (None, None) to start from step 0."""
    if resume is False or resume is None:
        return None, None
    if resume is True and run_dir is None:
        raise ValueError("resume=True needs the run directory (out=...) to look for checkpoints in")
    folder = Path(run_dir if resume is True else resume)
    if resume is not True and (folder / TRAINER_FILE).is_file():  # one checkpoint, named by the user
        return folder, load_trainer_state(folder)
    sweep_leftovers(folder)
    found = load_latest_good(folder)
    if found is None:
        if resume is not True:
            raise FileNotFoundError(f"no checkpoint at {folder}: expected a checkpoints/step-* directory or a run "
                                    "directory")
        return None, None
    return found
