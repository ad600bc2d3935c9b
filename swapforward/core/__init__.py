"""The method, independent of any model library (pure torch): view layout, merge operators, the plan of Algorithm 1,
the joint loop, tiled decoding.

Names are loaded on first use, so that `swapforward.core.methods` (plain data) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ViewLayout": "layout",
    "average_weights": "merge",
    "merge_views": "merge",
    "reference_swap": "merge",
    "reference_swap_mask": "merge",
    "swap_mask": "merge",
    "swap_weights": "merge",
    "triangular_weights": "merge",
    "METHODS": "methods",
    "Method": "methods",
    "get_method": "methods",
    "JointPlan": "plan",
    "plan_joint": "plan",
    "Joint": "sampler",
    "joint_denoise": "sampler",
    "joint_step": "sampler",
    "LoopState": "sampler",
    "decode_tiled": "tiling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
