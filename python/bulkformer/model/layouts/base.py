"""What a layout module declares, in one record the registry holds."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...preprocess.conventions import InputConventions
from ..network import BulkFormer


@dataclass(frozen=True)
class PretrainRecipe:
    """A layout's default masked-expression recipe (what its authors trained with):
    per-sample mask rate drawn from [mask_fraction, mask_fraction_max] of the measured
    genes, MSE on the masked positions (+ ``observed_weight`` x the MSE at the measured,
    unmasked ones), and how a new model's gene table starts ("pca" or "random")."""

    mask_fraction: float = 0.15
    mask_fraction_max: float | None = None
    observed_weight: float = 0.0
    gene_init: str = "pca"


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a published release: its size and SHA256 (from the authors' download
    manifest) and where the authors publish it."""

    name: str
    bytes: int
    sha256: str
    url: str


@dataclass(frozen=True)
class Layout:
    """One published model layout.

    ``name``: the key bundles store (``config.version``); ``network``: its
    :class:`BulkFormer` subclass; ``presets``: named configs at the released vocabulary
    size, ``parameter_counts`` their published sizes; ``conventions``: how its release
    prepares input; ``sample_pooling``: the default gene aggregation of a sample
    embedding; ``recognises`` / ``infer_config``: read a checkpoint's state dict;
    ``resize``: a config for another vocabulary or a smaller model; ``tiny``: the small
    config of demo and test bundles.
    """

    name: str
    description: str
    network: type[BulkFormer]
    presets: Mapping[str, Any]
    parameter_counts: Mapping[str, int]
    conventions: InputConventions
    sample_pooling: str
    recognises: Callable[[Mapping[str, torch.Tensor]], bool]
    infer_config: Callable[[Mapping[str, torch.Tensor]], Any]
    resize: Callable[..., Any]
    tiny: Callable[[int], Any]
    recipe: PretrainRecipe = field(default_factory=PretrainRecipe)
    # a release folder the layout's reader takes directly (None: its releases are converted file by file)
    is_release: Callable[[Path], bool] = lambda path: False
    read_release: Callable[..., Any] | None = None
    verify_release: Callable[..., int] | None = None  # files checked against the release's manifest
    # the release's files as its authors publish them (``bulkformer download``), and its folder name
    downloads: tuple[ReleaseFile, ...] = ()
    release_directory: str | None = None

    def __post_init__(self) -> None:
        type.__setattr__(self.network, "layout", self)

    def preset_name(self, config: Any) -> str | None:
        """The preset this config is, at any vocabulary size, or None."""
        for name, candidate in self.presets.items():
            if self.resize(candidate, n_genes=config.n_genes) == config:
                return name
        return None
