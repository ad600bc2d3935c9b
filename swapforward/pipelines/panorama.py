"""`PanoramaPipeline`: wide or 360-degree panoramas from Stable Diffusion 1.x/2.x, SDXL and SD 3/3.5."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.layout import ViewLayout
from ..errors import SwapForwardError
from ..io.delivery import settings_json
from ..io.files import PANORAMA_FORMATS, check_output_path, write_atomic
from ..io.inputs import read_image
from ..models import IMAGE_ADAPTERS
from ..options import PANORAMA, Request, check_multiple
from ..runtime.memory import BYTES_PER_PIXEL, check_host_memory, check_view_memory
from .base import JointPipeline, spec_signature
from .joint import JointResult
from .kept import Kept, Media, edge_ramp


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
    segments: list[tuple[float, str]] = field(default_factory=list)
    """The timeline's (start in pixels, prompt) segments; empty for one prompt (as LongAudioOutput's)."""
    kept: list[tuple[int, int]] = field(default_factory=list)
    """Columns (start, end) that hold the user's picture's own pixels (as LongAudioOutput's seconds)."""
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


logger = logging.getLogger("swapforward")


class PanoramaPipeline(JointPipeline):
    """Panoramas by joint diffusion over views of the model's native size laid out along the width.

    Build it with `from_pretrained(model_id)` (e.g. stabilityai/stable-diffusion-2-base) or `from_pipe(pipeline)`
    with a loaded `StableDiffusionPipeline`, `StableDiffusionXLPipeline` or `StableDiffusion3Pipeline`, then call
    it with a prompt.
    """

    adapters = IMAGE_ADAPTERS
    kind = "panorama"
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
        height = request.height or adapter.native_size
        pixels = height * request.width * request.num_images_per_prompt  # every take is decoded
        check_host_memory("width", request.width, pixels, BYTES_PER_PIXEL, "px", adapter.size_multiple)
        window = self.view_width(request) // adapter.vae_factor
        if request.tail_shift >= window:
            raise SwapForwardError(
                f"tail_shift must be smaller than the view ({window} latent columns), got {request.tail_shift}."
            )
        layout = ViewLayout.build(request.width // adapter.vae_factor, window, overlap=request.overlap,
                                  loop=request.loop)
        check_view_memory(layout.num_views, layout.window, "overlap", request.overlap)
        return layout, adapter.latent_shape(request.height or adapter.native_size, request.width)

    def start_frame(self, start: float) -> int:
        return round(start / self.adapter.vae_factor)

    def view_width(self, request: Request) -> int:
        """The views' width in pixels: `view_width`, or the model's native size (at most the panorama's width)."""
        return request.view_width or min(self.adapter.native_size, request.width)

    def media(self, request: Request, layout: ViewLayout, canvas_shape: tuple[int, ...]) -> Media:
        """The input picture resized to the panorama's height, encoded and placed at `init_at` (rounded to a latent
        column; wrapping round a loop), its kept columns and splice; and the reference picture's latent, one view
        (centre-cropped to the view's shape, then resized)."""
        adapter = self.adapter
        factor, height = adapter.vae_factor, canvas_shape[-2] * adapter.vae_factor
        media = Media()
        if request.init_image is not None:
            picture = fit_height(read_image(request.init_image, "init_image"), height, factor)
            width = picture.shape[1]
            left = {"left": 0, "center": (request.width - width) // 2, "right": request.width - width}.get(
                request.init_at, request.init_at)
            first = round(left / factor)
            latent = adapter.encode_image(picture)
            columns = (first + torch.arange(latent.shape[-1])) % layout.length
            content = torch.zeros((1, *canvas_shape[1:]), dtype=adapter.dtype, device=adapter.device)
            content[..., columns.to(adapter.device)] = latent
            kept = torch.zeros(layout.length, dtype=torch.bool)
            spans = [(first * factor, first * factor + width)] if request.keep is None else [
                (round(a), round(b)) for a, b in request.keep]
            for a, b in spans:
                inside = [(c - first * factor) % request.width for c in range(int(a), int(b), factor)]
                kept[[(first + i // factor) % layout.length for i in inside if i < width]] = True
            fade = round(request.keep_fade / factor)
            media.kept = Kept(content, kept, edge_ramp(kept, fade, request.loop), adapter.long_axis)
            media.splice = (picture, first * factor, spans) if request.splice else None
        if request.reference_image is not None:
            view = read_image(request.reference_image, "reference_image")
            media.reference = adapter.encode_image(fit_view(view, height, layout.window * factor))
        return media

    def output(self, request: Request, layout: ViewLayout, latents: torch.Tensor, result: JointResult,
               seed: int | None, media: Media, progress_bar: bool = False) -> PanoramaOutput:
        adapter = self.adapter
        array = adapter.decode(latents, tile=layout.window, loop=request.loop)
        if media.splice is not None:
            array = splice_pixels(array, *media.splice, round(request.feather), request.loop)
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
                  "settings": self.settings(request, seed)},
            segments=[] if isinstance(request.prompt, str) else [(s.start, s.prompt) for s in request.prompt],
            kept=list(media.splice[2]) if media.splice else [],
        )


def fit_height(picture: np.ndarray, height: int, multiple: int) -> np.ndarray:
    """The picture at `height` pixels (its aspect kept, said in a note when it was resized), its width cut to a
    multiple of the VAE factor."""
    from PIL import Image

    if picture.shape[0] != height:
        width = max(multiple, round(picture.shape[1] * height / picture.shape[0]))
        logger.warning(f"init_image is {picture.shape[0]} px high and the panorama {height} px: it was resized to "
                       f"{width} x {height} (its aspect kept).")
        image = Image.fromarray(np.clip(picture * 255 + 0.5, 0, 255).astype(np.uint8))
        picture = np.asarray(image.resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0
    return np.ascontiguousarray(picture[:, : picture.shape[1] // multiple * multiple])


def fit_view(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """The picture centre-cropped to the view's aspect and resized to `height` x `width`."""
    from PIL import Image

    h, w = picture.shape[:2]
    if w * height > h * width:
        keep = round(h * width / height)
        picture = picture[:, (w - keep) // 2:(w - keep) // 2 + keep]
    else:
        keep = round(w * height / width)
        picture = picture[(h - keep) // 2:(h - keep) // 2 + keep]
    image = Image.fromarray(np.clip(picture * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0


def splice_pixels(array: np.ndarray, picture: np.ndarray, left: int, spans: list[tuple[int, int]], feather: int,
                  loop: bool) -> np.ndarray:
    """The panorama with its kept spans holding the picture's own pixels (placed at `left`, wrapping round a loop),
    blended linearly into the generation over `feather` pixels inside each span edge that borders generated pixels."""
    out = array.copy()
    width = out.shape[1]
    kept_columns = {c % width for a, b in spans for c in range(a, b)}
    for a, b in spans:
        length = b - a
        ramp = np.ones(length, dtype=np.float32)
        n = min(feather, length // 2)
        if n:
            rising = (np.arange(n, dtype=np.float32) + 0.5) / n
            if (a > 0 or loop) and (a - 1) % width not in kept_columns:
                ramp[:n] = rising
            if (b < width or loop) and b % width not in kept_columns:
                ramp[length - n:] = np.minimum(ramp[length - n:], rising[::-1])
        columns = np.arange(a, b) % width
        source = (np.arange(a, b) - left) % width
        valid = source < picture.shape[1]
        columns, source, ramp = columns[valid], source[valid], ramp[valid]
        original = picture[:, source]
        mixed = ramp[None, :, None] * original + (1 - ramp[None, :, None]) * out[:, columns]
        out[:, columns] = np.where(ramp[None, :, None] == 1.0, original, mixed)
    return out
