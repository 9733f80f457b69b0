"""Results as plain JSON: metrics and histories hold NumPy and pandas values and NaN
(a Pearson r of a constant prediction), which JSON cannot carry."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def json_safe(value: Any) -> Any:
    """Plain JSON types; NaN/inf become null so the file stays valid JSON."""
    if isinstance(value, pd.DataFrame):
        return [json_safe(row) for row in value.reset_index().to_dict(orient="records")] if not isinstance(
            value.index, pd.RangeIndex
        ) else [json_safe(row) for row in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not math.isfinite(value) else value
    if value is None or isinstance(value, (str, int)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)
