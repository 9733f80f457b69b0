"""The published model layouts, registered in one place.

A layout module declares its config, presets, network, fast inference path, how to
read its checkpoints and releases, and its input conventions (see ``base.Layout``).
A new layout is one new module here plus its entry in ``LAYOUTS``; nothing else in the
package asks for a layout by name.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import latest, v1, v2
from .base import Layout, PretrainRecipe

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (v1.LAYOUT, v2.LAYOUT, latest.LAYOUT)}

# every preset name -> its config (names are unique across layouts)
PRESETS: dict[str, Any] = {name: config for layout in LAYOUTS.values() for name, config in layout.presets.items()}
PARAMETER_COUNTS: dict[str, int] = {
    name: count for layout in LAYOUTS.values() for name, count in layout.parameter_counts.items()}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown model layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def layout_of(config: Any) -> Layout:
    """The layout a config (or a network) belongs to."""
    return get_layout(getattr(getattr(config, "config", config), "version", None))


def preset(name: str, n_genes: int | None = None) -> Any:
    """A preset config, optionally for another vocabulary size."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return config if n_genes is None else layout_of(config).resize(config, n_genes=n_genes)


def layout_of_state(state: Mapping[str, torch.Tensor]) -> Layout:
    """The layout whose checkpoints have this state dict's keys."""
    for layout in LAYOUTS.values():
        if layout.recognises(state):
            return layout
    raise ValueError("this state dict is not a BulkFormer checkpoint of any known layout "
                     f"({', '.join(LAYOUTS)}); first keys: {list(state)[:5]}")


__all__ = ["LAYOUTS", "PARAMETER_COUNTS", "PRESETS", "Layout", "PretrainRecipe", "get_layout", "layout_of",
           "layout_of_state", "preset"]
