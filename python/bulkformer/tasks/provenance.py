"""What produced a task result: a result JSON read months later must say which data and
model it came from."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dataspec import DataSpec


def provenance(data: DataSpec, model: Any, **extra: Any) -> dict[str, Any]:
    """The record kept in ``TaskResult.params["provenance"]``: the package version, the
    data's description (source and settings), the model's, the working directory, and
    what a front end adds (the command line, say)."""
    from bulkformer import __version__

    describe = getattr(model, "describe", None)
    return {"bulkformer_version": __version__, "data": data.describe(),
            "model": describe() if callable(describe) else str(model),
            "working_directory": str(Path.cwd()), **extra}


def with_provenance(result: Any, data: DataSpec, model: Any) -> Any:
    """``result`` with its provenance recorded in ``params``."""
    result.params = {**result.params, "provenance": provenance(data, model)}
    return result
