"""BulkFormer networks (pure torch, no I/O): one module per published layout in
``layouts/``, the pieces they share beside it."""
from .blocks import BulkFormerBlock
from .config import LayoutConfig, ModelConfig, config_from_dict
from .embedding import MASK_VALUE, ExpressionEmbedding
from .layouts import LAYOUTS, PARAMETER_COUNTS, PRESETS, Layout, get_layout, layout_of, layout_of_state, preset
from .network import BulkFormer, ModelOutput

__all__ = [
    "BulkFormer", "BulkFormerBlock", "ExpressionEmbedding", "LAYOUTS", "Layout", "LayoutConfig", "MASK_VALUE",
    "ModelConfig", "ModelOutput", "PARAMETER_COUNTS", "PRESETS", "config_from_dict", "get_layout", "layout_of",
    "layout_of_state", "preset",
]
