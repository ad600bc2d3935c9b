"""swapforward: arbitrarily long audio and panoramas from pretrained latent diffusion models, by latent swap.

The public names are loaded on first use, so that the command line starts without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LongAudioOutput": "swapforward.pipelines.audio",
    "LongAudioPipeline": "swapforward.pipelines.audio",
    "PanoramaOutput": "swapforward.pipelines.panorama",
    "PanoramaPipeline": "swapforward.pipelines.panorama",
    "METHODS": "swapforward.core.methods",
    "ViewLayout": "swapforward.core.layout",
    "SwapForwardError": "swapforward.errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
