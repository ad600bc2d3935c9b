"""Running a checked request on a model adapter: the part the audio and panorama pipelines share.

`run_joint` is Algorithm 1 around a real model, in six steps: the conditioning and timesteps of one view, the plan
(core.plan), the noise, the baseline's plug-in (MAD, SyncDiffusion), the denoiser the loop calls (counted, batched to
fit the device), and the loop itself (core.sampler) with a progress bar and the caller's callback.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ..baselines import LoopContext, baseline_for
from ..core.layout import ViewLayout
from ..core.methods import get_method
from ..core.plan import plan_joint
from ..core.sampler import joint_denoise
from ..errors import SwapForwardError
from ..models.base import LatentAdapter
from ..options import MAX_SEED, RANDOM_SEED, Request
from .denoiser import CallCount, batched, counted_model

Generators = torch.Generator | list[torch.Generator] | None


def generators(generator: Generators, seed: int | None, count: int = 1) -> tuple[Generators, int | None]:
    """The generator(s) to draw noise from, and the seed used: `count` CPU generators seeded seed, seed+1, ... (one
    per canvas), or the caller's own. A seed of -1 draws a random one."""
    if seed is None:
        return generator, None
    if generator is not None:
        raise SwapForwardError("Give either seed or generator, not both.")
    if seed == RANDOM_SEED:
        seed = random.randint(0, 2**31 - 1)
    if seed + count - 1 > MAX_SEED:
        raise SwapForwardError(f"seed + takes - 1 must be at most 2^64-1, got seed {seed} for {count} takes.")
    made = [torch.Generator("cpu").manual_seed(seed + i) for i in range(count)]
    return (made[0] if count == 1 else made), seed


def generator_from(latents: torch.Tensor) -> torch.Generator:
    """A generator seeded from the bytes of `latents`: given latents and no seed, the reference view's noise (and
    DDIM's eta noise) are still reproducible, the same latents giving the same output."""
    data = latents.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy().tobytes()
    return torch.Generator("cpu").manual_seed(int.from_bytes(hashlib.sha256(data).digest()[:8], "little"))


@dataclass
class JointResult:
    latents: torch.Tensor
    model_calls: int
    """Denoiser forward calls (each holds a batch of views, doubled for guidance)."""
    view_evaluations: int
    """Views (and reference views) evaluated, over all calls: the work, whatever the batching."""
    guide_steps: int
    steps: int
    views_per_call: int
    """The most views (and reference views) that one call held: what bounds the denoiser's memory."""

    def info(self) -> dict[str, int]:
        """The counts that the pipelines' outputs report in their `info`."""
        return {"guide_steps": self.guide_steps, "steps": self.steps, "view_evaluations": self.view_evaluations,
                "views_per_call": self.views_per_call}


def run_joint(
    adapter: LatentAdapter,
    request: Request,
    layout: ViewLayout,
    canvas_shape: tuple[int, ...],
    *,
    generator: Generators,
    latents: torch.Tensor | None = None,
    reference_latents: torch.Tensor | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
    progress_bar: bool = True,
    lpips: torch.nn.Module | None = None,
) -> JointResult:
    """Denoise canvases of `canvas_shape` (batch first), laid out as `layout` along `adapter.long_axis`.

    `latents` replace the canvases' initial noise and `reference_latents` the reference views'; given `latents` and
    no generator, the remaining noise comes from a generator seeded by the latents' bytes (`generator_from`).
    """
    axis = adapter.long_axis % len(canvas_shape)
    canvases = canvas_shape[0]
    view_shape = (1, *canvas_shape[1:axis], layout.window, *canvas_shape[axis + 1:])
    reference_shape = (canvases, *view_shape[1:])
    if latents is not None and tuple(latents.shape) != tuple(canvas_shape):
        raise SwapForwardError(f"latents must have shape {tuple(canvas_shape)}, got {tuple(latents.shape)}.")
    if reference_latents is not None and tuple(reference_latents.shape) != reference_shape:
        raise SwapForwardError(
            f"reference_latents must have shape {reference_shape}, got {tuple(reference_latents.shape)}."
        )
    device, dtype = adapter.device, adapter.dtype

    # 1. The conditioning and the timesteps, as the base pipeline sets them for one view.
    cond = adapter.encode_prompt(request.prompt, request.negative_prompt, request.guidance_scale > 1.0, view_shape)
    scheduler = copy.deepcopy(adapter.scheduler)
    adapter.set_timesteps(scheduler, request.num_inference_steps, view_shape)
    steps = len(scheduler.timesteps)

    # 2. The plan of Algorithm 1: merge weights, guide steps, the reference mask.
    plan = plan_joint(get_method(request.method), layout, steps, view_shape=view_shape, axis=axis,
                      swap_axis=adapter.reference_axis, r_guide=request.r_guide, swap_interval=request.swap_interval,
                      tail_shift=request.tail_shift)

    # 3. The noise: every canvas, then (with guide steps) every canvas's reference view, from the same generator(s).
    init_sigma = getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers start from plain noise
    if latents is None:
        latents = randn_tensor(tuple(canvas_shape), generator=generator, device=device, dtype=dtype)
    elif generator is None:
        generator = generator_from(latents)
    canvas = latents.to(device=device, dtype=dtype) * init_sigma
    reference = None
    if plan.guide_steps:
        if reference_latents is None:
            reference_latents = randn_tensor(reference_shape, generator=generator, device=device, dtype=dtype)
        reference = reference_latents.to(device=device, dtype=dtype) * init_sigma

    # 4. The baseline's plug-in (MAD's merged attention, SyncDiffusion's gradient step), if the method has one.
    baseline = baseline_for(request, steps, layout, lpips)
    if baseline is not None:
        baseline.check(adapter, scheduler)
    one_call = baseline.one_call if baseline is not None else None

    # 5. The denoiser the loop calls: the model with its conditioning, counted, in batches that fit the device.
    count = CallCount()
    denoiser = batched(counted_model(adapter, cond, request.guidance_scale, count), device, request.view_batch_size,
                       one_call)

    # 6. The loop.
    bar = tqdm(total=steps, desc=f"{request.method}, {layout.num_views} views", unit="step", disable=not progress_bar)

    def on_step(k: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if baseline is not None:
            baseline.after_step(k)
        bar.update(1)
        return callback(k, t, x) if callback is not None else None

    running = nullcontext()
    if baseline is not None:
        running = baseline.running(LoopContext(adapter, scheduler, denoiser, layout, view_shape, axis, canvases))
    step_generator = generator[0] if isinstance(generator, list) else generator  # DDIM's eta noise
    with bar, running:
        canvas = joint_denoise(
            canvas,
            denoiser,
            scheduler,
            layout,
            axis=axis,
            weights=plan.weights,
            reference=reference,
            reference_mask=plan.reference_mask,
            guide_steps=plan.guide_steps,
            view_batch_size=None if one_call else request.view_batch_size,
            step_kwargs=adapter.step_kwargs(step_generator, request.eta),
            callback=on_step,
            prepare=baseline.prepare if baseline is not None else None,
        )
    return JointResult(latents=canvas, model_calls=count.calls, view_evaluations=count.evaluations,
                       guide_steps=plan.guide_steps, steps=steps, views_per_call=count.largest)
