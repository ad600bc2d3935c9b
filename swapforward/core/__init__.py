"""The method, independent of any model library (pure torch): view layout, merge operators, the joint loop."""

from .layout import ViewLayout
from .merge import (
    average_weights,
    merge_views,
    reference_swap,
    reference_swap_mask,
    swap_mask,
    swap_weights,
    triangular_weights,
)
from .methods import METHODS, Method, get_method
from .sampler import joint_denoise
from .tiling import decode_tiled

__all__ = [
    "METHODS",
    "Method",
    "ViewLayout",
    "average_weights",
    "decode_tiled",
    "get_method",
    "joint_denoise",
    "merge_views",
    "reference_swap",
    "reference_swap_mask",
    "swap_mask",
    "swap_weights",
    "triangular_weights",
]
