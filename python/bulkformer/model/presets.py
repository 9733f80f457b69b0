"""The published model sizes."""
from __future__ import annotations

from .config import ModelConfig

RELEASED_N_GENES = 20_010
ESM2_DIM = 1280

# v2 presets: d / Performer layers per block; one block, 8 heads, no bins.
_V2 = {"37M": (128, 1), "50M": (256, 2), "93M": (512, 6), "127M": (640, 8), "147M": (640, 12)}

PRESETS: dict[str, ModelConfig] = {
    name: ModelConfig(version="v2", n_genes=RELEASED_N_GENES, dim=dim, gb_repeat=1, p_repeat=p, full_head=8, bin_head=12, bins=0)
    for name, (dim, p) in _V2.items()
}
PRESETS["v1"] = ModelConfig(
    version="v1", n_genes=RELEASED_N_GENES, dim=640, gb_repeat=3, p_repeat=4,
    full_head=8, bin_head=12, bins=0, gene_table_dim=ESM2_DIM,
)

# Exact sums over model.parameters() at G = 20,010 (REFERENCE.md).
PARAMETER_COUNTS = {
    "37M": 13_368_647, "50M": 28_641_159, "93M": 75_921_159,
    "127M": 112_448_967, "147M": 132_143_047, "v1": 148_642_244,
}


def preset(name: str, n_genes: int | None = None) -> ModelConfig:
    """Return a preset config, optionally for another vocabulary size."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    if n_genes is None:
        return config
    return ModelConfig.from_dict({**config.to_dict(), "n_genes": n_genes})
