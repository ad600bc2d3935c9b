"""swapforward: arbitrarily long audio and panoramas from pretrained latent diffusion models, by latent swap."""

from .audio import LongAudioOutput, LongAudioPipeline
from .core import METHODS, ViewLayout
from .errors import SwapForwardError
from .panorama import PanoramaOutput, PanoramaPipeline

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "LongAudioOutput",
    "LongAudioPipeline",
    "PanoramaOutput",
    "PanoramaPipeline",
    "SwapForwardError",
    "ViewLayout",
    "__version__",
]
