"""Model configurations: the registry every layout's config joins, and the config of
the original layouts (v1 and v2), which share one set of fields."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


class LayoutConfig:
    """Base of every layout's config. ``version`` names the layout (the key bundles
    store); ``n_genes``, ``dim`` and ``feature_dim`` mean the same in every layout."""

    _configs: ClassVar[dict[str, type]] = {}
    version: str
    n_genes: int
    dim: int

    def __init_subclass__(cls, layout: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if layout is not None:
            LayoutConfig._configs[layout] = cls

    @property
    def feature_dim(self) -> int:
        """Width of the gene-level embedding the layout's release extracts."""
        raise NotImplementedError

    def describe(self) -> str:
        """The shape in words, for messages."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**data)


def config_from_dict(data: dict[str, Any]) -> Any:
    """A saved config (``to_dict``) back as its layout's config class."""
    name = data.get("version")
    if name not in LayoutConfig._configs:
        raise ValueError(f"the model config names layout {name!r}; this bulkformer knows "
                         f"{', '.join(LayoutConfig._configs)} (a newer layout needs a newer bulkformer)")
    return LayoutConfig._configs[name].from_dict(data)


@dataclass(frozen=True)
class ModelConfig(LayoutConfig):
    """Shape of an original-layout network (v1 or v2; ``ModelConfig(version=...)``
    gives that layout's subclass).

    Names follow the published constructor where one exists (``dim``, ``bins``,
    ``gb_repeat``, ``p_repeat``, ``full_head``, ``bin_head``) so that configs of the
    official release read the same; ``n_genes`` is the published ``gene_length``.
    """

    version: str
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

    # set by each layout's subclass
    default_dropouts: ClassVar[tuple[float, float]] = (0.0, 0.0)
    summary_width: ClassVar[int] = 0  # per-sample statistics appended to each gene state

    def __new__(cls, *args: Any, **kwargs: Any) -> ModelConfig:
        if cls is ModelConfig:
            version = kwargs.get("version", args[0] if args else None)
            variant = LayoutConfig._configs.get(version)
            if variant is None or not issubclass(variant, ModelConfig):
                originals = [n for n, c in LayoutConfig._configs.items() if issubclass(c, ModelConfig)]
                raise ValueError(f"version must be one of {', '.join(repr(n) for n in originals)}, got {version!r}")
            cls = variant
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.dim % 2:
            raise ValueError(f"dim must be even (sin/cos expression embedding), got {self.dim}")
        if self.dim % self.full_head:
            raise ValueError(f"dim={self.dim} is not divisible by full_head={self.full_head}")
        if self.bins and self.dim % self.bin_head:
            raise ValueError(f"dim={self.dim} is not divisible by bin_head={self.bin_head}")
        for name in ("n_genes", "gb_repeat", "p_repeat", "full_head", "bin_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def dropouts(self) -> tuple[float, float]:
        """(attention, feed-forward) dropout; the published defaults differ per layout."""
        attn_default, ff_default = self.default_dropouts
        return (
            attn_default if self.attn_dropout is None else self.attn_dropout,
            ff_default if self.ff_dropout is None else self.ff_dropout,
        )

    @property
    def feature_dim(self) -> int:
        """Width of the gene-level embedding the release extracts (d+3 for v2, d for v1)."""
        return self.dim + self.summary_width

    @property
    def n_layers(self) -> int:
        return self.gb_repeat * self.p_repeat

    def describe(self) -> str:
        """The shape in words (a dataclass repr reads like options a command does not have)."""
        table = f", gene table {self.gene_table_dim} wide" if self.gene_table_dim else ""
        return (f"{self.version}, {self.n_genes:,} genes, width {self.dim}, {self.gb_repeat} block(s) of "
                f"{self.p_repeat} Performer layer(s), {self.full_head} heads{table}")

    @property
    def heads(self) -> int:
        return self.full_head
