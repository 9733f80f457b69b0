"""A pretraining run directory and resuming it: what ``out`` may hold, and the checks that
a resumed run repeats the run it continues (settings, model, checkpoint model)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..bundle import Bundle
from ..model import ModelConfig
from .checkpoint import checkpoint_root, latest_checkpoint

# What pretraining writes into its run directory, and nothing else (corpus: the raw
# shards prepared once, when the data are shard files).
RUN_ENTRIES = ("checkpoints", "log.jsonl", "model", "history.csv", "validation.csv", "corpus")


def is_run_dir(path: str | Path) -> bool:
    """A directory that holds only what pretraining writes (at least one of it)."""
    path = Path(path)
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")} if path.is_dir() else set()
    return bool(names) and names <= set(RUN_ENTRIES)


def check_run_dir(run_dir: Path | None, resume: bool | str | Path) -> None:
    """Refuse, before any data is read, an ``out`` the run would mix with or silently
    replace: a file; a directory holding anything but an earlier run's files (user data;
    a shard folder would even read history.csv as a shard next time); an earlier run's
    checkpoints without ``resume`` (the old ones would outlive the new ones when pruning,
    and a later resume would continue the old run); with ``resume=True``, a finished run
    without checkpoints (nothing to resume: it would start over and replace the model)."""
    if run_dir is None:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out={str(run_dir)!r} is a file; a run is written as a directory: give a new directory path")
    if not run_dir.is_dir():
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".") and p.name not in RUN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"{run_dir} already holds files of its own ({shown}): a run writes "
                         f"{', '.join(RUN_ENTRIES)} into out and would mix them with these. Give a new or empty "
                         f"directory, e.g. out='{run_dir.with_name(run_dir.name + '-pretrain')}'")
    latest = latest_checkpoint(run_dir)
    if not resume and latest is not None:
        raise ValueError(f"{run_dir} holds checkpoints of an earlier run (latest: {latest.name}): continue it with "
                         f"resume=True, or delete {checkpoint_root(run_dir)} (or give a new directory) to start over")
    if resume is True and latest is None and (run_dir / "model").is_dir():
        raise ValueError(f"{run_dir} holds a finished run (model/) and no checkpoint: there is nothing to resume. To "
                         f"train its model further, give model='{run_dir / 'model'}' and a new out directory")


def checkpoint_bundle(checkpoint: Path, config: ModelConfig, genes: pd.DataFrame) -> Bundle:
    """The checkpoint's bundle, refused if it is not the model these settings describe
    (a size mismatch would otherwise surface as a state-dict traceback)."""
    from ..bundle import load

    bundle = load(checkpoint / "bundle")
    saved, now = bundle.config.to_dict(), config.to_dict()
    changed = [f"{key}={saved.get(key)} (now {value})" for key, value in now.items() if saved.get(key) != value]
    if not changed and bundle.genes["ensembl_id"].astype(str).tolist() != genes["ensembl_id"].astype(str).tolist():
        changed = [f"its {len(bundle.genes)} vocabulary genes (now other genes)"]
    if changed:
        raise ValueError(f"the checkpoint {checkpoint} holds another model than these settings describe: "
                         f"{', '.join(changed)}. Resume with the run's model settings, or start a new run directory")
    return bundle


def check_resumed_settings(saved: dict[str, Any] | None, now: dict[str, Any], checkpoint: Path) -> None:
    """A resumed run continues one schedule and one data order; a changed setting would
    make it another run without saying so (a new lr is even overwritten by the
    optimizer's saved state). Checkpoints written before settings were saved: unchecked."""
    if saved is None:
        return
    changed = []
    for key, value in now.items():
        if key not in saved:  # a setting checkpoints of older versions did not record
            continue
        before = saved[key]
        if key == "training_shards":
            if [list(s) for s in before or []] != [list(s) for s in value]:
                changed.append(f"the training data ({_shard_summary(before or [])}; now {_shard_summary(value)})")
        elif before != value:
            changed.append(f"{key}={before!r} (now {value!r})")
    if changed:
        raise ValueError(
            f"the checkpoint {checkpoint} was written with other settings: {', '.join(changed)}. A resumed run repeats "
            "the settings it was started with (same learning-rate schedule and data order): restore them, or start a "
            f"new run directory (to train the checkpoint's model on with new settings: model='{checkpoint / 'bundle'}')")


def _shard_summary(shards: list) -> str:
    shown = ", ".join(f"{name} ({n})" for name, n in shards[:3])
    return f"{len(shards)} shards, {sum(n for _, n in shards)} samples: {shown}{' ...' if len(shards) > 3 else ''}"


def model_source(model: Any) -> str:
    """Where a run's starting model came from, as a resumed run must repeat it: a preset
    name, a bundle directory, or a description of an in-memory model."""
    if isinstance(model, (str, Path)):
        return str(Path(model).resolve()) if Path(model).is_dir() else str(model)
    if isinstance(model, Bundle):
        return f"an in-memory bundle ({model.config.version}, d={model.config.dim}, {model.config.n_genes} genes)"
    return f"a model config ({getattr(model, 'version', '?')}, d={getattr(model, 'dim', '?')})"
