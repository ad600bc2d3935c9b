"""The kinds of output, in one place: each kind's pipeline class, default model, option spec and output files.

Plain data, importable without torch; the pipeline class is imported when it is first needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..io.files import AUDIO_FORMATS, PANORAMA_FORMATS
from ..options import AUDIO, DEFAULT_MODELS, PANORAMA, Spec


@dataclass(frozen=True)
class Kind:
    name: str
    pipeline: str
    """module:class of the pipeline."""
    default_model: str
    spec: Spec
    formats: dict[str, str]
    """Output file extensions -> format names."""
    default_out: str

    def pipeline_class(self) -> Any:
        module, name = self.pipeline.split(":")
        return getattr(importlib.import_module(module), name)


KINDS = {
    "audio": Kind("audio", "swapforward.pipelines.audio:LongAudioPipeline", DEFAULT_MODELS["audio"], AUDIO,
                  AUDIO_FORMATS, "swapforward.wav"),
    "panorama": Kind("panorama", "swapforward.pipelines.panorama:PanoramaPipeline", DEFAULT_MODELS["panorama"],
                     PANORAMA, PANORAMA_FORMATS, "panorama.png"),
}
