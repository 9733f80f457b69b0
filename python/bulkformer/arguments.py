"""Checks of count-like arguments (folds, epochs, components, ...), shared by training
and the tasks so that every entry point words them alike: ``name=value: ...``, which
the CLI turns into the flag."""
from __future__ import annotations

from typing import Any

import numpy as np


def check_at_least(value: Any, minimum: int, name: str) -> int:
    """An integer setting (folds, components, trees, repeats) of at least ``minimum``;
    the message names the argument as ``name=value`` (the CLI turns that into its flag)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        shown = repr(value) if isinstance(value, str) else value  # batch_size='4' is a string, not 4
        raise ValueError(f"{name}={shown}: must be a whole number >= {minimum}")
    return int(value)
