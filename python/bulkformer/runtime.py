"""How a run executes: device, precision, batch size, progress.

:class:`Runtime` is the one public holder of run settings, for inference and training
alike; :func:`choose_device` and :func:`choose_precision` are the one policy both use
(cuda > mps > cpu; bf16 autocast on CUDA where supported, fp16 on MPS, fp32 on CPU).

    rt = bulkformer.Runtime(device="cpu", batch_size=8, progress=False)
    bulkformer.embed(counts, model, runtime=rt)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from .errors import ArgumentError

if TYPE_CHECKING:  # torch is imported when a device is chosen, not with bulkformer
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16": "fp16",
}
# the run settings a public function accepts as loose keywords (deprecated spellings of runtime=)
RUNTIME_FIELDS = ("device", "precision", "batch_size", "progress")


def choose_device(device: Any = None) -> "torch.device":
    """``device`` if given, else cuda > mps > cpu."""
    import torch

    if device is not None:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):  # torch's message lists ~20 device types
            raise ValueError(f"device={device!r} is not a device: use 'cuda' (or 'cuda:1'), 'mps' or 'cpu', or leave "
                             "it unset to pick the best available") from None
        if chosen.type not in ("cuda", "mps", "cpu"):
            raise ValueError(f"device={device!r}: bulkformer runs on 'cuda', 'mps' or 'cpu'")
        if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {device!r} was requested but MPS (Apple GPU) is not available; use device='cpu'")
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available; use device='cpu'")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_precision(precision: str | None, device: "torch.device") -> Precision:
    """None (or "auto", pretrain's spelling): bf16 on CUDA when supported (else fp16), fp16
    on MPS, fp32 on CPU (bf16 on CPU is opt-in: faster where the CPU has bf16 units, ~1e-2
    less exact)."""
    import torch

    if precision is None or str(precision).lower() == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if device.type == "mps" else "fp32"
    key = str(precision).lower()
    if key not in _PRECISION_ALIASES:
        raise ValueError(f"precision must be one of fp32, bf16, fp16 (or auto / None for the device default), got {precision!r}")
    chosen = _PRECISION_ALIASES[key]
    if chosen == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is not useful on CPU; use precision='bf16' or 'fp32'")
    return chosen  # type: ignore[return-value]


@dataclass(frozen=True)
class Runtime:
    """Run settings shared by inference and training.

    device: None = best available (cuda > mps > cpu); precision: None = the device's
    default (see :func:`choose_precision`); batch_size: samples per forward pass;
    progress: tqdm bars on stderr.
    """

    device: str | None = None
    precision: str | None = None
    batch_size: int = 16
    progress: bool = True

    def torch_device(self) -> "torch.device":
        return choose_device(self.device)

    def torch_precision(self) -> Precision:
        return choose_precision(self.precision, self.torch_device())

    @classmethod
    def of(cls, runtime: "Runtime | None" = None, **settings: Any) -> "Runtime":
        """``runtime`` (or the defaults) with the loose settings that are not None laid over it:
        the bridge for callers that still pass ``device=``, ``batch_size=`` ... one by one."""
        if runtime is not None and not isinstance(runtime, Runtime):
            raise ArgumentError(f"runtime must be a bulkformer.Runtime, got {type(runtime).__name__}",
                                argument="runtime", value=runtime, fix="e.g. Runtime(device='cpu', batch_size=8)")
        unknown = sorted(set(settings) - set(RUNTIME_FIELDS))
        if unknown:
            raise ArgumentError(f"unknown run setting {unknown[0]!r}", argument=unknown[0],
                                fix=f"run settings are {', '.join(RUNTIME_FIELDS)}")
        given = {k: v for k, v in settings.items() if v is not None}
        return replace(runtime or cls(), **given)
