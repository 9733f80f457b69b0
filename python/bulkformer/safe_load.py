"""Reading PyTorch pickles without ever executing code from them."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(RuntimeError):
    """A pickle holds Python objects beyond tensors, so loading it could run code."""


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors a person can act on.

    A file that needs arbitrary unpickling is refused: nothing from it executes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not _refused_as_unsafe(err, path):
            raise _unreadable(path, err) from None
        raise UnsafeCheckpointError(
            f"refused to load {path}: it contains Python objects beyond tensors, and unpickling them "
            "could execute code. If you trust its origin, convert it once to a plain state dict in an "
            "isolated environment, e.g.\n"
            f"    python -c \"import torch; obj = torch.load('{path}', weights_only=False); "
            f"torch.save(obj.state_dict() if hasattr(obj, 'state_dict') else {_as_tensor_hint(err)}, "
            f"'{path.with_suffix('.safe.pt')}')\"\n"
            "then pass the converted file (a dict of tensors) instead.\n"
            f"Details: {err}"
        ) from None
    except (PermissionError, MemoryError):
        raise
    except Exception as err:  # torch's own errors for truncated, empty or non-torch files are cryptic
        raise _unreadable(path, err) from None


def _refused_as_unsafe(err: pickle.UnpicklingError, path: Path) -> bool:
    """torch's weights-only unpickler names what it refused: a GLOBAL (a class or function
    outside its allow-list). Its other errors ("Unsupported operand") mean damaged bytes in
    a torch.save zip file, or, in any other file, a plain pickle it cannot vet: unsafe."""
    return "GLOBAL" in str(err) or not zipfile.is_zipfile(path)


def _as_tensor_hint(err: pickle.UnpicklingError) -> str:
    # a numpy array (a graph or gene table saved from numpy) must become a tensor, or the
    # re-saved file is refused again
    return "torch.as_tensor(obj)" if "numpy" in str(err) else "obj"


def _unreadable(path: Path, err: Exception) -> ValueError:
    return ValueError(
        f"cannot read {path} as a PyTorch .pt file: it is empty, truncated or corrupt (download or copy it "
        "again and compare its size with the original), or not a file written by torch.save (a CSV or "
        f"a .safetensors file given in the wrong place?). Details: {type(err).__name__}: {err}"
    )


def unwrap_state_dict(obj: Any, source: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """Accept a bare state dict or the common wrappers ({'state_dict': ...},
    {'model': ...}) and strip the ``module.`` prefix that DataParallel/DDP adds."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        held = f"a dict with keys {list(obj)[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ValueError(f"{source} is not a state dict (a mapping of parameter names to tensors): it holds {held}. "
                         "Pass the model's state dict, or a dict holding it under 'state_dict', "
                         "'model_state_dict' or 'model'")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    # wrappers can nest (DDP around torch.compile, DataParallel around DDP): strip a prefix
    # that every key carries until none is left
    while (prefix := next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


# prefixes that DataParallel/DDP ("module.") and torch.compile ("_orig_mod.") put before every key
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
