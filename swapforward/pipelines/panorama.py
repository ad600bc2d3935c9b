"""`PanoramaPipeline`: wide or 360-degree panoramas from Stable Diffusion 1.x/2.x, SDXL and SD 3/3.5."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.layout import ViewLayout
from ..delivery import settings_json
from ..errors import SwapForwardError
from ..files import PANORAMA_FORMATS, check_output_path, write_atomic
from ..models import IMAGE_ADAPTERS
from ..options import PANORAMA, Request, check_multiple
from .base import JointPipeline, spec_signature
from .joint import JointResult


@dataclass
class PanoramaOutput:
    """A generated panorama and what produced it."""

    image: Any
    """PIL image."""
    array: np.ndarray
    """(height, width, 3) float32 in [0, 1]."""
    latents: torch.Tensor
    """Final wide latent x_0, batch 1."""
    layout: ViewLayout
    method: str
    model_calls: int
    info: dict[str, Any] = field(default_factory=dict)
    takes: list[PanoramaOutput] = field(default_factory=list, repr=False)
    """Every take of the call (this one first; best first when ranked); each has its own seed in info["seed"]."""

    @property
    def images(self) -> list[Any]:
        """Every take's image, as diffusers' image pipelines return them."""
        return [take.image for take in self.takes or [self]]

    def save(self, path: str | os.PathLike, sidecar: bool = False) -> str:
        """Write the image as PNG, JPEG or WebP (by extension), atomically; a PNG keeps the settings that made it in
        a text chunk, and `sidecar` writes them to a JSON file beside it."""
        from PIL.PngImagePlugin import PngInfo

        path = check_output_path(path, PANORAMA_FORMATS)
        fmt = PANORAMA_FORMATS[path.suffix.lower()]
        text = settings_json(self.info.get("settings", {}))
        extra = {}
        if fmt == "PNG":
            extra["pnginfo"] = PngInfo()
            extra["pnginfo"].add_text("swapforward", text)
        written = write_atomic(path, lambda tmp: self.image.save(tmp, format=fmt, **extra))
        if sidecar:
            write_atomic(f"{written}.json", lambda tmp: tmp.write_text(text))
        return str(written)


class PanoramaPipeline(JointPipeline):
    """Panoramas by joint diffusion over views of the model's native size laid out along the width.

    Build it with `from_pretrained(model_id)` (e.g. stabilityai/stable-diffusion-2-base) or `from_pipe(pipeline)`
    with a loaded `StableDiffusionPipeline`, `StableDiffusionXLPipeline` or `StableDiffusion3Pipeline`, then call
    it with a prompt.
    """

    adapters = IMAGE_ADAPTERS
    kind = "image"
    spec = PANORAMA

    @spec_signature(PANORAMA)
    def __call__(self, prompt: str | None = None, **arguments: Any) -> PanoramaOutput:
        """Generate a `height` x `width` panorama for `prompt`.

        Views are `height` x `view_width` (both default to the model's native size, e.g. 512 for SD 2 base; the
        paper uses 640-wide views). `overlap` defaults to the paper's: 0.2 for SaFa and SaFa*, 0.8 for the others.
        With `loop` the panorama is 360 degrees: its right edge continues into its left. The Self-Loop Swap
        alternates latent columns in the overlaps; the Reference-Guided Swap takes whole latent rows of each
        view's middle region (the paper's segment-level swap, Fig. 4).
        """
        return self.call(prompt, **arguments)

    def layout(self, request: Request) -> tuple[ViewLayout, tuple[int, ...]]:
        adapter = self.adapter
        for name in ("height", "width", "view_width"):
            if request[name] is not None:
                check_multiple(name, request[name], adapter.size_multiple)
        window = self.view_width(request) // adapter.vae_factor
        if request.tail_shift >= window:
            raise SwapForwardError(
                f"tail_shift must be smaller than the view ({window} latent columns), got {request.tail_shift}."
            )
        layout = ViewLayout.build(request.width // adapter.vae_factor, window, overlap=request.overlap,
                                  loop=request.loop)
        return layout, adapter.latent_shape(request.height or adapter.native_size, request.width)

    def start_frame(self, start: float) -> int:
        return round(start / self.adapter.vae_factor)

    def view_width(self, request: Request) -> int:
        """The views' width in pixels: `view_width`, or the model's native size (at most the panorama's width)."""
        return request.view_width or min(self.adapter.native_size, request.width)

    def output(self, request: Request, layout: ViewLayout, latents: torch.Tensor, result: JointResult,
               seed: int | None) -> PanoramaOutput:
        adapter = self.adapter
        array = adapter.decode(latents, tile=layout.window, loop=request.loop)
        image = adapter.pipe.image_processor.numpy_to_pil(array[None])[0]
        return PanoramaOutput(
            image=image,
            array=array,
            latents=latents,
            layout=layout,
            method=request.method,
            model_calls=result.model_calls,
            info={**result.info(), "height": request.height or adapter.native_size, "width": request.width,
                  "view_width": self.view_width(request), "overlap": request.overlap, "seed": seed,
                  "segments": [] if isinstance(request.prompt, str) else [(s.start, s.prompt) for s in request.prompt],
                  "settings": self.settings(request, seed)},
        )
