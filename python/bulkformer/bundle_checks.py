"""A bundle's files checked against each other before, and its weights after, loading.

Before anything is allocated: ``config.json`` parses and its model values have the
types they need; the number of genes it declares matches ``genes.tsv``; the weight
files' safetensors headers are intact and agree with the config (a model of 400
million genes is refused here, not after allocating 25 GB). After loading: no weight
is NaN or infinite (such a bundle gives NaN for every sample, which R reads as "not
measured"). Every error is an :class:`~bulkformer.errors.InputError` naming the file.
"""
from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

__all__ = ["check_config_sizes", "check_finite", "check_graph", "check_weight_shapes", "model_config", "read_config",
           "safetensors_header"]

# what to do about a bundle whose files disagree or are damaged
_RESTORE = ("the bundle is damaged or its files come from different models: restore it from its source "
            "(`bulkformer import-checkpoint`, or Bundle.save)")
# bytes per element of the safetensors dtypes
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_HEADER = 100 << 20  # safetensors' own limit on a header's size


def read_config(bundle: Path) -> dict[str, Any]:
    """``config.json`` as a dict; invalid JSON names the file, the line and the fix."""
    file = bundle / "config.json"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{file} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})",
                         value=str(file), fix=_RESTORE, joiner="; ") from None
    except UnicodeDecodeError:
        raise InputError(f"{file} is not UTF-8 text", value=str(file), fix=_RESTORE, joiner="; ") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise InputError(f"{file} has no model section (a JSON object under \"model\")", value=str(file),
                         fix=_RESTORE, joiner="; ")
    return doc


def model_config(bundle: Path, doc: Mapping[str, Any]) -> Any:
    """The layout's config from ``doc["model"]``; a value of the wrong type (a number
    written as a string) or values that do not fit together are errors naming the file
    and the key as ``model.<key>`` (never a command-line option of the same name)."""
    from .model import config_from_dict

    file = bundle / "config.json"
    section = doc["model"]
    def not_a_number(key: str, value: Any) -> InputError:
        return InputError(f"{file}: model.{key} is {json.dumps(value)}, not a number", value=value, joiner="; ",
                          fix=f"write it as a number without quotes (e.g. \"{key}\": 16), or restore the "
                              "bundle's original config.json")

    for key, value in section.items():
        if key != "version" and isinstance(value, str):
            raise not_a_number(key, value)
    try:
        config = config_from_dict(dict(section))
    except (TypeError, ValueError, KeyError) as err:
        raise InputError(f"{file}: its model values cannot be used ({_as_config_keys(str(err), section)})",
                         value=str(file), fix=_RESTORE, joiner="; ") from None
    # true/false only where the layout has a switch (bulkformer-latest's mask_ratio_scaling_enabled):
    # elsewhere Python would take true as the number 1
    for key, value in section.items():
        if isinstance(value, bool) and not isinstance(getattr(config, key, None), bool):
            raise not_a_number(key, value)
    return config


def _as_config_keys(text: str, section: Mapping[str, Any]) -> str:
    # "dim=16" and "full_head" are config.json keys here, not options of the command run
    for key in sorted(section, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(key)}=", f"model.{key} = ", text)
        text = re.sub(rf"(?<![\w.-]){re.escape(key)}\b(?!\s*=)", f"model.{key}", text)
        text = text.replace("--" + key.replace("_", "-"), f"model.{key}")
    return text


def safetensors_header(file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors file's header, read without its data;
    a damaged header (or one whose entries overrun the file) names the file."""
    size = file.stat().st_size

    def damaged(why: str) -> InputError:
        return InputError(f"{file} is damaged: {why}", value=str(file), fix=_RESTORE, joiner="; ")

    with open(file, "rb") as handle:
        if size < 8:
            raise damaged(f"{size} bytes, shorter than a safetensors header")
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > min(size - 8, _MAX_HEADER):
            raise damaged(f"its header declares {length:,} bytes in a file of {size:,}")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise damaged("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    data_bytes, entries = size - 8 - length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise damaged(f"its header entry {name!r} lacks dtype, shape or data_offsets") from None
        itemsize = _ITEMSIZE.get(dtype)
        if itemsize is None or any(d < 0 for d in shape) or not 0 <= start <= stop <= data_bytes \
                or stop - start != math.prod(shape) * itemsize:
            raise damaged(f"its header entry {name!r} ({dtype}, shape {list(shape)}) does not fit the file's "
                          f"{data_bytes:,} bytes of data")
        entries[name] = (dtype, shape)
    return entries


def _count_genes(file: Path) -> int:
    with open(file, "rb") as handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)  # minus the header line


def check_config_sizes(bundle: Path, config: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Before allocating: ``n_genes`` against ``genes.tsv``, ``dim`` against the weights'
    widths, the graph and gene-feature tables against ``n_genes``. Returns the weights'
    header (name -> (dtype, shape)) for :func:`check_weight_shapes`."""
    file = bundle / "config.json"
    n_genes, rows = int(config.n_genes), _count_genes(bundle / "genes.tsv")
    if n_genes != rows:
        raise InputError(f"{file} declares {n_genes:,} genes (model.n_genes) but {bundle / 'genes.tsv'} lists "
                         f"{rows:,}", value=n_genes, fix=_RESTORE, joiner="; ")
    weights = safetensors_header(bundle / "model.safetensors")
    widths = {d for _, shape in weights.values() for d in shape}
    if weights and int(config.dim) not in widths:
        raise InputError(f"{file} declares model.dim {config.dim}, but no weight in {bundle / 'model.safetensors'} "
                         f"has that width (its widths: {sorted(widths)[:12]})", value=config.dim, fix=_RESTORE,
                         joiner="; ")
    graph = safetensors_header(bundle / "graph.safetensors")
    edges = graph.get("edge_index", (None, ()))[1]
    if len(edges) != 2 or edges[0] != 2:
        raise InputError(f"{bundle / 'graph.safetensors'} has no edge_index of shape (2, edges) (got {list(edges)})",
                         value=str(bundle / "graph.safetensors"), fix=_RESTORE, joiner="; ")
    features = bundle / "gene_features.safetensors"
    if features.is_file():
        shape = safetensors_header(features).get("gene_features", (None, ()))[1]
        if len(shape) != 2 or shape[0] != n_genes:
            raise InputError(f"{features} holds a table of shape {list(shape)}, not one row per each of the "
                             f"{n_genes:,} vocabulary genes", value=str(features), fix=_RESTORE, joiner="; ")
    return weights


def check_graph(bundle: Path, edge_index: torch.Tensor, n_genes: int) -> None:
    """Graph indices within the vocabulary, the offending index named as it is (negative
    ones included)."""
    if not edge_index.numel():
        return
    low, high = int(edge_index.min()), int(edge_index.max())
    bad = low if low < 0 else high if high >= n_genes else None
    if bad is not None:
        raise InputError(f"{bundle / 'graph.safetensors'} has an edge to gene index {bad}, outside the vocabulary's "
                         f"0..{n_genes - 1}", value=bad, fix=_RESTORE, joiner="; ")


def check_weight_shapes(bundle: Path, model: torch.nn.Module, weights: Mapping[str, tuple[str, tuple[int, ...]]],
                        config: Any) -> None:
    """The model built from config.json against the weights' shapes, before they are
    read: a mismatch names a weight and the config, not load_state_dict's dump."""
    file = bundle / "model.safetensors"
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    for name, (_, shape) in weights.items():
        if name in expected and expected[name] != shape:
            raise InputError(f"{file}: weight {name} has shape {list(shape)}, but {bundle / 'config.json'} "
                             f"(model.dim {config.dim}, {config.n_layers} layers) makes it {list(expected[name])}",
                             value=str(file), fix=_RESTORE, joiner="; ")


def check_finite(bundle: Path, tensors: Iterable[tuple[str, torch.Tensor | None]]) -> None:
    """No NaN or infinite value in any floating-point tensor (weights, graph weights, gene
    features): such a bundle returns NaN for every sample."""
    for name, tensor in tensors:
        if tensor is None or not tensor.is_floating_point():
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise InputError(f"{bundle}: {bad:,} value{'s' if bad != 1 else ''} of {name} "
                             f"{'are' if bad != 1 else 'is'} NaN or infinite, so every result would be NaN",
                             value=name, fix=_RESTORE, joiner="; ")
