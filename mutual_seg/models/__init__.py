"""The segmentation network: blocks, fusions, SegNet, its size/cost summary and equal-parameter budgets.

Knows nothing of files: nothing here imports ``data/`` (a ``make lint`` contract). ``budget`` matches widths to a
parameter budget; its width-table command is ``experiments/budget.py``.
"""

from mutual_seg.models.blocks import ConvMod, DecMod, EncMod, Map, probabilities
from mutual_seg.models.fusion import (
    FUSIONS,
    ConcatFusion,
    MeanFusion,
    MutualAttentionFusion,
    build_fusion,
)
from mutual_seg.models.network import SegNet, drop_modalities, select_present
from mutual_seg.models.summary import format_summary, model_summary

__all__ = [
    "FUSIONS",
    "ConcatFusion",
    "ConvMod",
    "DecMod",
    "EncMod",
    "Map",
    "MeanFusion",
    "MutualAttentionFusion",
    "SegNet",
    "build_fusion",
    "drop_modalities",
    "format_summary",
    "model_summary",
    "probabilities",
    "select_present",
]
