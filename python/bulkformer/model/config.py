"""Hyper-parameters of a BulkFormer model, in both published layouts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Version = Literal["v1", "v2"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a BulkFormer network.

    Names follow the published constructor where one exists (``dim``, ``bins``,
    ``gb_repeat``, ``p_repeat``, ``full_head``, ``bin_head``) so that configs of the
    official release read the same; ``n_genes`` is the published ``gene_length``.
    """

    version: Version
    n_genes: int
    dim: int
    gb_repeat: int
    p_repeat: int
    full_head: int = 8
    bin_head: int = 12
    bins: int = 0
    gene_table_dim: int | None = None  # v1 only: width of the per-gene input table (ESM2: 1280)
    attn_dropout: float | None = None  # None: the published value for the version
    ff_dropout: float | None = None

    def __post_init__(self) -> None:
        if self.version not in ("v1", "v2"):
            raise ValueError(f"version must be 'v1' or 'v2', got {self.version!r}")
        if self.dim % 2:
            raise ValueError(f"dim must be even (sin/cos expression embedding), got {self.dim}")
        if self.dim % self.full_head:
            raise ValueError(f"dim={self.dim} is not divisible by full_head={self.full_head}")
        if self.bins and self.dim % self.bin_head:
            raise ValueError(f"dim={self.dim} is not divisible by bin_head={self.bin_head}")
        if self.version == "v1" and not self.gene_table_dim:
            raise ValueError("a v1 model needs gene_table_dim (the width of its per-gene table, 1280 for ESM2)")
        if self.version == "v2" and self.gene_table_dim is not None:
            raise ValueError("gene_table_dim applies to v1 models only")
        for name in ("n_genes", "gb_repeat", "p_repeat", "full_head", "bin_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def dropouts(self) -> tuple[float, float]:
        """(attention, feed-forward) dropout; the published defaults differ per version."""
        attn_default, ff_default = (0.2, 0.2) if self.version == "v1" else (0.05, 0.1)
        return (
            attn_default if self.attn_dropout is None else self.attn_dropout,
            ff_default if self.ff_dropout is None else self.ff_dropout,
        )

    @property
    def feature_dim(self) -> int:
        """Width of the gene-level embedding the release extracts (d+3 for v2, d for v1)."""
        return self.dim + 3 if self.version == "v2" else self.dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**data)
