"""Counts / TPM / log1p TPM -> aligned log1p TPM, by the native kernel or NumPy.

REFERENCE.md: TPM = (count / length_kb) / sum(count / length_kb) * 1e6 over all input
genes of a sample, then natural log1p; vocabulary genes the data lacks are -10.
Both backends compute exactly this (double accumulation, float32 output) and agree
to ~1e-7 relative.
"""
from __future__ import annotations

import os
from typing import Literal

import numpy as np

from bulkformer.preprocess._kernel import native_module

MASK_VALUE = -10.0
DEFAULT_LENGTH_BP = 1000.0
InputKind = Literal["counts", "tpm", "logtpm"]
INPUT_KINDS = ("counts", "tpm", "logtpm")
_NATIVE_DTYPES = {np.dtype(t) for t in ("float64", "float32", "int64", "int32", "uint32", "uint64")}


def transform_aligned(
    data: np.ndarray,
    column_index: np.ndarray,
    n_vocab: int,
    *,
    input: InputKind = "counts",
    lengths_bp: np.ndarray | None = None,
    backend: Literal["auto", "native", "numpy"] = "auto",
    n_threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Aligned float32 (n_samples, n_vocab) log1p TPM from a samples x genes matrix.

    ``column_index[j]`` is the vocabulary position of input column j (-1: not in the
    vocabulary; such genes still count in the TPM denominator). ``lengths_bp`` is (n_genes,)
    or, tximport-style, (n_samples, n_genes); needed for counts only. Columns sharing a
    position are summed (counts, TPM) or averaged (log1p TPM).
    """
    if input not in INPUT_KINDS:
        raise ValueError(f"input={input!r} is not one of {INPUT_KINDS}")
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D samples x genes matrix, got shape {data.shape}")
    column_index = np.ascontiguousarray(column_index, dtype=np.int64)
    if column_index.shape != (data.shape[1],):
        raise ValueError(f"column_index has {column_index.size} entries for {data.shape[1]} genes")
    multiplicity = np.bincount(column_index[column_index >= 0], minlength=n_vocab)[:n_vocab]
    measured = multiplicity > 0
    normalize = input == "counts"
    if normalize and lengths_bp is None:
        raise ValueError("counts need gene lengths to become TPM")
    lengths_bp = None if lengths_bp is None or not normalize else np.asarray(lengths_bp, dtype=np.float64)
    divisor = multiplicity.astype(np.float64).clip(min=1) if input == "logtpm" else None
    if out is None:
        out = np.empty((data.shape[0], n_vocab), dtype=np.float32)
    elif out.shape != (data.shape[0], n_vocab) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 (n_samples, n_vocab) array")

    native = native_module() if backend != "numpy" else None
    if backend == "native" and native is None:
        raise RuntimeError("the native kernel is not built; reinstall with a C++ compiler or use backend='numpy'")
    if native is not None and data.dtype not in _NATIVE_DTYPES:
        if backend == "native":
            raise TypeError(f"native kernel does not take dtype {data.dtype}")
        native = None
    if native is not None:
        one_d = lengths_bp is not None and lengths_bp.ndim == 1
        native.aligned_transform(
            data, column_index,
            1000.0 / lengths_bp if one_d else None,
            lengths_bp if lengths_bp is not None and lengths_bp.ndim == 2 else None,
            measured.astype(np.uint8), divisor, normalize, input != "logtpm", MASK_VALUE, out,
            _threads_for(data.shape, n_threads),
        )
        return out
    out[...] = _numpy_transform(data, column_index, measured, lengths_bp, divisor, normalize, input != "logtpm")
    return out


def _threads_for(shape: tuple[int, int], requested: int | None) -> int:
    """Threads for one call: small inputs run on one (thread start-up and, on a busy
    machine, waiting for a second core cost more than they save)."""
    threads = int(requested or _default_threads())
    work_threads = max(1, (shape[0] * shape[1]) // 2_000_000)
    return max(1, min(threads, shape[0], work_threads))


def _default_threads() -> int:
    for variable in ("BULKFORMER_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _numpy_transform(data, column_index, measured, lengths_bp, divisor, normalize, log1p_values) -> np.ndarray:
    """The reference path: plain vectorised NumPy, float64 throughout."""
    values = data.astype(np.float64)  # copy: the caller's array is never modified
    if normalize:
        values *= 1000.0 / lengths_bp  # (genes,) or per-sample (samples, genes)
        totals = values.sum(axis=1, keepdims=True)
        if not np.all(totals > 0):
            row = int(np.flatnonzero(~(totals[:, 0] > 0))[0])
            raise ValueError(f"row {row} has no positive expression (sum of count/length is 0)")
        values *= 1e6 / totals
    matched = np.flatnonzero(column_index >= 0)
    targets = column_index[matched]
    aligned = np.zeros((data.shape[0], measured.size), dtype=np.float64)
    order = np.argsort(targets, kind="stable")
    sorted_targets = targets[order]
    starts = np.flatnonzero(np.r_[True, sorted_targets[1:] != sorted_targets[:-1]]) if sorted_targets.size else sorted_targets
    if sorted_targets.size:
        aligned[:, sorted_targets[starts]] = np.add.reduceat(values[:, matched[order]], starts, axis=1)
    if divisor is not None:
        aligned /= divisor
    if log1p_values:
        np.log1p(aligned, out=aligned)
    aligned[:, ~measured] = MASK_VALUE
    return aligned.astype(np.float32)
