"""`PanoramaPipeline`: wide or 360-degree panoramas from Stable Diffusion 2, SDXL and SD 3.5 with SaFa or MD."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .core.layout import ViewLayout
from .errors import SwapForwardError
from .files import IMAGE_FORMATS, check_output_path, write_atomic
from .joint import (
    JointOptions,
    JointPipeline,
    check_joint_options,
    run_joint,
    seeded,
    whole,
)
from .models import IMAGE_ADAPTERS

#: The paper's panorama overlaps (Table 3): SaFa's reference guidance lets it use 0.2; MD needs 0.8.
DEFAULT_OVERLAP = {"safa": 0.2, "safa-selfloop": 0.2, "md": 0.8, "md-tri": 0.8, "mad": 0.8, "syncd": 0.8}

PANORAMA_FORMATS = {**IMAGE_FORMATS, ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


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

    def save(self, path: str | os.PathLike) -> str:
        """Write the image as PNG, JPEG or WebP (by extension), atomically."""
        path = check_output_path(path, PANORAMA_FORMATS)
        fmt = PANORAMA_FORMATS[path.suffix.lower()]
        return str(write_atomic(path, lambda tmp: self.image.save(tmp, format=fmt)))


@dataclass(frozen=True)
class PanoramaRequest:
    prompt: str
    height: int | None
    width: int
    view_width: int | None
    options: JointOptions


def _multiple(name: str, value: Any, multiple: int) -> int:
    value = whole(name, value, multiple)
    if value % multiple:
        lower, upper = value - value % multiple, value - value % multiple + multiple
        raise SwapForwardError(
            f"{name}={value} is not a multiple of {multiple}; use {lower or upper}"
            + (f" or {upper}." if lower else ".")
        )
    return value


def check_panorama_request(
    prompt: Any,
    height: Any = None,
    width: Any = 3200,
    view_width: Any = None,
    method: Any = "safa",
    overlap: Any = None,
    r_guide: Any = 0.3,
    swap_interval: Any = 1,
    tail_shift: Any = 0,
    num_inference_steps: Any = 50,
    guidance_scale: Any = 7.5,
    view_batch_size: Any = None,
    seed: Any = None,
    multiple: int = 8,
    **baseline: Any,
) -> PanoramaRequest:
    """Check every argument without a model (sizes against `multiple`, the VAE factor by default)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise SwapForwardError("The prompt is empty; describe the panorama to generate.")
    options = check_joint_options(
        method,
        DEFAULT_OVERLAP.get(str(method).lower(), 0.2) if overlap is None else overlap,
        r_guide,
        swap_interval,
        tail_shift,
        num_inference_steps,
        guidance_scale,
        view_batch_size,
        seed,
        **baseline,
    )
    height = None if height is None else _multiple("height", height, multiple)
    width = _multiple("width", width, multiple)
    view_width = None if view_width is None else _multiple("view_width", view_width, multiple)
    if view_width is not None and view_width > width:
        raise SwapForwardError(
            f"view_width={view_width} is wider than the panorama (width={width}); use a view_width <= {width} "
            f"or a wider panorama."
        )
    return PanoramaRequest(prompt=prompt, height=height, width=width, view_width=view_width, options=options)


class PanoramaPipeline(JointPipeline):
    """Panoramas by joint diffusion over views of the model's native size laid out along the width.

    Build it with `from_pretrained(model_id)` (e.g. stabilityai/stable-diffusion-2-base) or `from_pipe(pipeline)`
    with a loaded `StableDiffusionPipeline`, `StableDiffusionXLPipeline` or `StableDiffusion3Pipeline`, then call
    it with a prompt.
    """

    adapters = IMAGE_ADAPTERS
    kind = "image"

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        height: int | None = None,
        width: int = 3200,
        view_width: int | None = None,
        method: str = "safa",
        loop: bool = False,
        overlap: float | None = None,
        r_guide: float = 0.3,
        swap_interval: int = 1,
        tail_shift: int = 0,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
        view_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        progress_bar: bool = True,
        mad_ratio: float = 0.3,
        sync_weight: float = 20.0,
        sync_decay: float = 0.95,
        sync_ratio: float = 1.0,
        lpips: torch.nn.Module | None = None,
    ) -> PanoramaOutput:
        """Generate a `height` x `width` panorama for `prompt`.

        Views are `height` x `view_width` (both default to the model's native size, e.g. 512 for SD 2 base; the
        paper uses 640-wide views). `overlap` defaults to the paper's: 0.2 for SaFa and SaFa*, 0.8 for MD and MD*.
        With `loop` the panorama is 360 degrees: its right edge continues into its left. The Self-Loop Swap
        alternates latent columns in the overlaps; the Reference-Guided Swap takes whole latent rows of each
        view's middle region (the paper's segment-level swap, Fig. 4). MAD merges attention over the canvas during
        the first `mad_ratio` of the steps; SyncDiffusion takes LPIPS gradient steps of weight
        `sync_weight * sync_decay**k` during the first `sync_ratio` of the steps, with `lpips` (default: VGG LPIPS).
        """
        adapter = self.adapter
        req = check_panorama_request(
            prompt, height, width, view_width, method, overlap, r_guide, swap_interval, tail_shift,
            num_inference_steps, guidance_scale, view_batch_size, seed, multiple=adapter.size_multiple,
            mad_ratio=mad_ratio, sync_weight=sync_weight, sync_decay=sync_decay, sync_ratio=sync_ratio,
        )
        generator = seeded(generator, req.options.seed)
        height = req.height or adapter.native_size
        view_width = req.view_width or min(adapter.native_size, req.width)
        if view_width > req.width:
            raise SwapForwardError(
                f"The model's views are {view_width} pixels wide, more than width={req.width}; ask for a wider "
                f"panorama or a smaller view_width."
            )
        factor = adapter.vae_factor
        window = view_width // factor
        if req.options.tail_shift >= window:
            raise SwapForwardError(
                f"tail_shift must be smaller than the view ({window} latent columns), got {req.options.tail_shift}."
            )
        layout = ViewLayout.build(req.width // factor, window, overlap=req.options.overlap, loop=loop)
        result = run_joint(
            adapter,
            req.options,
            layout,
            adapter.latent_shape(height, req.width),
            prompt=req.prompt,
            negative_prompt=negative_prompt,
            generator=generator,
            latents=latents,
            eta=eta,
            callback=callback,
            progress_bar=progress_bar,
            lpips=lpips,
        )
        array = adapter.decode(result.latents, tile=window, loop=loop)
        image = adapter.pipe.image_processor.numpy_to_pil(array[None])[0]
        return PanoramaOutput(
            image=image,
            array=array,
            latents=result.latents,
            layout=layout,
            method=req.options.method.name,
            model_calls=result.model_calls,
            info={**result.info(), "height": height, "width": req.width, "view_width": view_width,
                  "overlap": req.options.overlap},
        )
