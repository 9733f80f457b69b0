"""A run directory's log files, each written whole under a temporary name."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_file
from ..json_safe import json_safe


def write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """(Re)write log.jsonl from the history: after a resume it drops the steps the
    interrupted run logged past its last checkpoint."""
    with atomic_file(run_dir / "log.jsonl") as staging:
        staging.write_text("".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in history))


def atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as staging:
        frame.to_csv(staging, index=False)
