"""Running a joint-diffusion method on a model adapter: the part the audio and panorama pipelines share.

It checks the method's options, draws the noise (canvas first, then the reference view, from one generator),
encodes the prompt, sets the scheduler's timesteps, builds the merge weights and the reference mask, counts model
calls, shows a progress bar and runs `core.joint_denoise`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from .core.layout import ViewLayout
from .core.merge import reference_swap_mask
from .core.methods import Method, get_method
from .core.sampler import joint_denoise
from .errors import SwapForwardError
from .models.base import LatentAdapter


def number(name: str, value: Any) -> float:
    """`value` as a float, or the sentence saying it is not a number (NaN included)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise SwapForwardError(f"{name} must be a number, got {value!r}.") from None
    if isinstance(value, bool) or math.isnan(result):
        raise SwapForwardError(f"{name} must be a number, got {value!r}.")
    return result


def whole(name: str, value: Any, minimum: int) -> int:
    """`value` as an int >= minimum, or the sentence saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SwapForwardError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class JointOptions:
    """The checked options of a joint-diffusion run, common to every modality."""

    method: Method
    overlap: float
    r_guide: float
    swap_interval: int
    tail_shift: int
    steps: int
    guidance_scale: float
    view_batch_size: int | None
    seed: int | None


def check_joint_options(
    method: Any,
    overlap: Any,
    r_guide: Any,
    swap_interval: Any,
    tail_shift: Any,
    num_inference_steps: Any,
    guidance_scale: Any,
    view_batch_size: Any,
    seed: Any,
) -> JointOptions:
    overlap_rate = number("overlap", overlap)
    if not 0 < overlap_rate < 1:
        raise SwapForwardError(f"overlap must be between 0 and 1 (exclusive), got {overlap!r}.")
    guide = number("r_guide", r_guide)
    if not 0 <= guide <= 1:
        raise SwapForwardError(f"r_guide must be between 0 and 1, got {r_guide!r}.")
    guidance = number("guidance_scale", guidance_scale)
    if math.isinf(guidance):
        raise SwapForwardError(f"guidance_scale must be a finite number, got {guidance_scale!r}.")
    return JointOptions(
        method=get_method(method),
        overlap=overlap_rate,
        r_guide=guide,
        swap_interval=whole("swap_interval", swap_interval, 1),
        tail_shift=whole("tail_shift", tail_shift, 0),
        steps=whole("num_inference_steps", num_inference_steps, 1),
        guidance_scale=guidance,
        view_batch_size=None if view_batch_size is None else whole("view_batch_size", view_batch_size, 1),
        seed=None if seed is None else whole("seed", seed, 0),
    )


def seeded(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    """The generator to draw noise from: a CPU generator seeded with `seed`, or the caller's own."""
    if seed is None:
        return generator
    if generator is not None:
        raise SwapForwardError("Give either seed or generator, not both.")
    return torch.Generator("cpu").manual_seed(seed)


@dataclass
class JointResult:
    latents: torch.Tensor
    model_calls: int
    guide_steps: int
    steps: int


def run_joint(
    adapter: LatentAdapter,
    options: JointOptions,
    layout: ViewLayout,
    canvas_shape: tuple[int, ...],
    *,
    prompt: str,
    negative_prompt: str | None,
    generator: torch.Generator | None,
    latents: torch.Tensor | None,
    eta: float = 0.0,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    progress_bar: bool = True,
) -> JointResult:
    """Denoise a canvas of `canvas_shape` laid out as `layout` along `adapter.long_axis` with `options.method`."""
    axis = adapter.long_axis % len(canvas_shape)
    view_shape = list(canvas_shape)
    view_shape[axis] = layout.window
    if latents is not None and tuple(latents.shape) != tuple(canvas_shape):
        raise SwapForwardError(f"latents must have shape {tuple(canvas_shape)}, got {tuple(latents.shape)}.")
    device, dtype = adapter.device, adapter.dtype
    cond = adapter.encode_prompt(prompt, negative_prompt, options.guidance_scale > 1.0, tuple(view_shape))
    scheduler = copy.deepcopy(adapter.scheduler)
    adapter.set_timesteps(scheduler, options.steps, tuple(view_shape))
    init_sigma = getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers start from plain noise
    if latents is None:
        latents = randn_tensor(tuple(canvas_shape), generator=generator, device=device, dtype=dtype)
    canvas = latents.to(device=device, dtype=dtype) * init_sigma

    # Reference guidance makes views consistent with each other: a single view is the plain model.
    guide_steps = 0
    if options.method.reference and layout.num_views > 1:
        guide_steps = round(options.r_guide * len(scheduler.timesteps))
    reference = mask = None
    if guide_steps > 0:
        reference = randn_tensor(tuple(view_shape), generator=generator, device=device, dtype=dtype)
        reference = reference * init_sigma
        swap_axis = adapter.reference_axis % len(canvas_shape)
        mask = reference_swap_mask(
            layout, len(canvas_shape), axis, swap_axis, view_shape[swap_axis], options.swap_interval
        )

    calls = 0

    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return adapter.denoise(x, t, cond, options.guidance_scale)

    bar = tqdm(
        total=len(scheduler.timesteps),
        desc=f"{options.method.name}, {layout.num_views} views",
        unit="step",
        disable=not progress_bar,
    )

    def on_step(k: int, t: torch.Tensor, x: torch.Tensor) -> None:
        bar.update(1)
        if callback is not None:
            callback(k, t, x)

    with bar:
        canvas = joint_denoise(
            canvas,
            denoiser,
            scheduler,
            layout,
            axis=axis,
            weights=options.method.weights(layout, options.swap_interval, options.tail_shift),
            reference=reference,
            reference_mask=mask,
            guide_steps=guide_steps,
            view_batch_size=options.view_batch_size,
            step_kwargs=adapter.step_kwargs(generator, eta),
            callback=on_step,
        )
    return JointResult(latents=canvas, model_calls=calls, guide_steps=guide_steps, steps=len(scheduler.timesteps))
