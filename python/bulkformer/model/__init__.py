"""BulkFormer network modules (pure torch, no I/O)."""
from .blocks import BulkFormerBlock
from .bulkformer import BulkFormer, ModelOutput
from .config import ModelConfig
from .embedding import MASK_VALUE, ExpressionEmbedding
from .presets import PARAMETER_COUNTS, PRESETS, preset

__all__ = [
    "BulkFormer", "BulkFormerBlock", "ExpressionEmbedding", "MASK_VALUE", "ModelConfig",
    "ModelOutput", "PARAMETER_COUNTS", "PRESETS", "preset",
]
