"""Loads the optional native kernel; ``None`` means the NumPy path is used."""
from __future__ import annotations

import os
from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def native_module() -> ModuleType | None:
    """The compiled ``bulkformer.preprocess._native`` or None (not built, or disabled
    with BULKFORMER_NO_NATIVE=1)."""
    if os.environ.get("BULKFORMER_NO_NATIVE", "") not in ("", "0"):
        return None
    try:
        import bulkformer.preprocess._native as _native  # the compiled module itself (python/src/native.cpp)
    except ImportError:
        return None
    return _native


def native_available() -> bool:
    return native_module() is not None
