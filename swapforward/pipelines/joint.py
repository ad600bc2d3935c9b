"""Running a checked request on a model adapter: the part the audio and panorama pipelines share.

`run_joint` is Algorithm 1 around a real model, in six steps: the conditioning and timesteps of one view, the plan
(core.plan), the noise, the baseline's plug-in (MAD, SyncDiffusion), the denoiser the loop calls (counted, batched to
fit the device), and the loop itself (core.sampler) with a progress bar and the caller's callback.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ..baselines import LoopContext, baseline_for
from ..core.layout import ViewLayout
from ..core.methods import get_method
from ..core.plan import plan_joint
from ..core.sampler import joint_denoise, repaint_order
from ..core.stochastic import draws_noise, with_given_noise
from ..core.timeline import frame_segments, view_mix, view_reference
from ..errors import SwapForwardError
from ..models.base import LatentAdapter
from ..options import MAX_SEED, RANDOM_SEED, Request
from ..prompts import Segment
from . import distributed
from .conditioning import Conditioning
from .denoiser import CallCount, batched, counted_model
from .kept import Kept, noised, renoiser
from .memory import segment_views
from .resume import RunState, StateSaver, restore_generators

logger = logging.getLogger("swapforward")

Generators = torch.Generator | list[torch.Generator] | None


def generators(generator: Generators, seed: int | None, count: int = 1) -> tuple[Generators, int | None]:
    """The generator(s) to draw noise from, and the seed used: `count` CPU generators seeded seed, seed+1, ... (one
    per canvas), or the caller's own. A seed of -1 draws a random one."""
    if seed is None:
        if isinstance(generator, list) and len(generator) != count:
            raise SwapForwardError(f"Give one generator per take: {count} takes, {len(generator)} generators.")
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
    references: int = 1
    """Reference views per canvas (one per timeline segment that some view follows)."""

    def info(self) -> dict[str, int]:
        """The counts that the pipelines' outputs report in their `info`."""
        return {"guide_steps": self.guide_steps, "steps": self.steps, "view_evaluations": self.view_evaluations,
                "views_per_call": self.views_per_call, "references": self.references if self.guide_steps else 0}


def run_joint(
    adapter: LatentAdapter,
    request: Request,
    layout: ViewLayout,
    canvas_shape: tuple[int, ...],
    *,
    generator: Generators,
    latents: torch.Tensor | None = None,
    reference_latents: torch.Tensor | None = None,
    timeline: list[tuple[int, Segment]] | None = None,
    kept: Kept | None = None,
    observed_reference: torch.Tensor | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
    progress_bar: bool = True,
    lpips: torch.nn.Module | None = None,
    save: tuple[Any, int, dict[str, Any]] | None = None,
    resume: RunState | None = None,
) -> JointResult:
    """Denoise canvases of `canvas_shape` (batch first), laid out as `layout` along `adapter.long_axis`.

    `latents` replace the canvases' initial noise and `reference_latents` the reference views'; given `latents` and
    no generator, the remaining noise comes from a generator seeded by the latents' bytes (`generator_from`).
    `timeline` holds the request's segments with their start frames on the canvas (`request.prompt` is a plain
    prompt without it). `kept` holds canvas frames to the user's input; `observed_reference` (the latent of a clip
    or picture, one view long) replaces the generated reference view: it is noised to each guided step's level and
    swapped in, not denoised. `save` = (path, every, settings) writes the run's state every `every` steps; `resume`
    (a loaded state) continues a run from it, after the same set-up (so the same noise) as the first run.
    """
    axis = adapter.long_axis % len(canvas_shape)
    canvases = canvas_shape[0]
    view_shape = (1, *canvas_shape[1:axis], layout.window, *canvas_shape[axis + 1:])
    if latents is not None and tuple(latents.shape) != tuple(canvas_shape):
        raise SwapForwardError(f"latents must have shape {tuple(canvas_shape)}, got {tuple(latents.shape)}.")
    device, dtype = adapter.device, adapter.dtype

    # 1. The conditioning of every view (and reference view), and the timesteps, as the base pipeline sets them.
    conditioning, reference_index = condition(adapter, request, layout, view_shape, timeline)
    if observed_reference is not None:
        reference_index = None  # the user's reference guides every view
    references = 1 if reference_index is None else len(conditioning.reference_prompt)
    scheduler = with_given_noise(copy.deepcopy(adapter.scheduler))
    limit = scheduler.config.get("num_train_timesteps") or 0
    try:
        adapter.set_timesteps(scheduler, request.num_inference_steps, view_shape)
        alphas = getattr(scheduler, "alphas_cumprod", None)
        too_many = alphas is not None and int(scheduler.timesteps.max()) >= len(alphas)
    except ValueError:  # DDIM refuses more steps than its training timesteps
        too_many = True
    if too_many:  # (and with steps_offset 1, as AudioLDM's, its last timestep would fall off the end)
        most = limit - int(scheduler.config.get("steps_offset") or 0)
        raise SwapForwardError(f"num_inference_steps={request.num_inference_steps} is more than "
                               f"{type(scheduler).__name__} allows with this model; use at most {most}.")
    steps = len(scheduler.timesteps)

    # 2. The plan of Algorithm 1: merge weights, guide steps, the reference mask.
    plan = plan_joint(get_method(request.method), layout, steps, view_shape=view_shape, axis=axis,
                      swap_axis=adapter.reference_axis, r_guide=request.r_guide, swap_interval=request.swap_interval,
                      tail_shift=request.tail_shift, reference_phase=request.reference_phase)

    # 3. The noise: every canvas, then (with guide steps) every canvas's reference view(s), from the same generator(s).
    init_sigma = getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers start from plain noise
    if latents is None:
        latents = randn_tensor(tuple(canvas_shape), generator=generator, device=device, dtype=dtype)
    elif generator is None:
        generator = generator_from(latents)
    noise = latents.to(device=device, dtype=dtype)
    canvas = noise * init_sigma
    if kept is not None:
        canvas = kept.start(canvas, noise, scheduler)
    reference_shape = (canvases * references, *view_shape[1:])
    if reference_latents is not None and tuple(reference_latents.shape) != reference_shape:
        raise SwapForwardError(
            f"reference_latents must have shape {reference_shape}, got {tuple(reference_latents.shape)}."
        )
    reference = None
    if plan.guide_steps:
        if reference_latents is None:
            reference_latents = reference_noise(reference_shape, references, generator, device, dtype)
        reference = reference_latents.to(device=device, dtype=dtype) * init_sigma
        if observed_reference is not None:
            reference = observed(observed_reference.to(device, dtype), reference_latents.to(device, dtype), scheduler)

    # 4. The baseline's plug-in (MAD's merged attention, SyncDiffusion's gradient step), if the method has one.
    baseline = baseline_for(request, steps, layout, lpips)
    if baseline is not None:
        baseline.check(adapter, scheduler)
    one_call = baseline.one_call if baseline is not None else None

    # 5. The denoiser the loop calls: the model with its conditioning, counted, in batches that fit the device.
    count = CallCount()
    denoiser = batched(counted_model(adapter, conditioning, request.guidance_scale, count), device,
                       request.view_batch_size, one_call)

    # 6. The loop (with RePaint's resampling of the steps after the guidance, when asked for and something is kept).
    order = renoise = None
    if request.repaint_resample and kept is not None:
        renoise = renoiser(scheduler, generator)
        order = repaint_order(steps, plan.guide_steps, request.repaint_jump, request.repaint_resample)
    sequence = order or list(range(steps))
    loop_state = None
    if resume is not None:  # the saved loop, generators and counts in place of the fresh ones
        loop_state = resume.loop
        if tuple(loop_state.canvas.shape) != tuple(canvas.shape):
            raise SwapForwardError("The saved state's canvas does not fit this run; resume with the same settings.")
        loop_state.canvas = loop_state.canvas.to(device=device, dtype=dtype)
        if loop_state.reference is not None:
            loop_state.reference = loop_state.reference.to(device=device, dtype=dtype)
        restore_generators(generator, resume.generators)
        count.calls, count.evaluations, count.largest = resume.counts
        if baseline is not None:
            for k in sequence[: loop_state.position]:
                baseline.after_step(k)
    saver = None if save is None else StateSaver(save[0], save[1], save[2], generator, count)
    exchange = distributed.current()
    bar = tqdm(total=len(sequence), initial=loop_state.position if loop_state else 0,
               desc=f"{request.method}, {layout.num_views} views", unit="step",
               disable=not progress_bar or (exchange is not None and exchange.rank > 0))

    def on_step(k: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if baseline is not None:
            baseline.after_step(k)
        bar.update(1)
        if kept is not None:
            x = kept.after_step(k, x, noise, scheduler)
        replaced = callback(k, t, x) if callback is not None else None
        return x if replaced is None else replaced

    running = nullcontext()
    if baseline is not None:
        running = baseline.running(LoopContext(adapter, scheduler, denoiser, layout, view_shape, axis, canvases))
    step_generator = generator[0] if isinstance(generator, list) else generator  # DDIM's eta noise
    segment = None if one_call else segment_views(math.prod(view_shape) * canvas.element_size(), canvases,
                                                  layout.num_views)
    step_noise = None
    if draws_noise(scheduler, request.eta):
        noise_dtype = getattr(scheduler, "noise_dtype", dtype)

        def step_noise(shape: tuple[int, ...]) -> torch.Tensor:  # one draw per canvas frame, shared by its views
            return randn_tensor(shape, generator=step_generator, device=device, dtype=noise_dtype)
    if exchange is not None:  # several processes: at least a segment each
        distributed.check_shareable(request.method, request.eta if step_noise is None else 0.0,
                                    save is not None or resume is not None, layout.num_views, exchange.world)
        segment = min(segment or layout.num_views, math.ceil(layout.num_views / exchange.world))
    with bar, running:
        canvas = joint_denoise(
            canvas,
            denoiser,
            scheduler,
            layout,
            axis=axis,
            weights=plan.weights,
            segment=segment,
            reference=reference,
            reference_mask=plan.reference_mask,
            reference_index=reference_index,
            guide_steps=plan.guide_steps,
            step_kwargs=adapter.step_kwargs(step_generator, request.eta),
            callback=on_step,
            prepare=baseline.prepare if baseline is not None else None,
            order=order,
            renoise=renoise,
            resume=loop_state,
            on_state=saver,
            exchange=exchange,
            step_noise=step_noise,
        )
    if exchange is not None:
        count.calls, count.evaluations = exchange.total(count.calls, count.evaluations)
    return JointResult(latents=canvas, model_calls=count.calls, view_evaluations=count.evaluations,
                       guide_steps=plan.guide_steps, steps=steps, views_per_call=count.largest, references=references)


def condition(
    adapter: LatentAdapter,
    request: Request,
    layout: ViewLayout,
    view_shape: tuple[int, ...],
    timeline: list[tuple[int, Segment]] | None,
) -> tuple[Conditioning, torch.Tensor | None]:
    """Every distinct prompt encoded once, and which one conditions each view and reference view; with a timeline
    also the reference each view follows (one per segment that holds a view's centre)."""
    guidance = adapter.uses_guidance(request.guidance_scale)
    if timeline is None:
        encoded = adapter.encode_prompt(request.prompt, request.negative_prompt, guidance, view_shape)
        return Conditioning.single(encoded, layout.num_views), None
    pairs = [(s.prompt, s.negative_prompt or request.negative_prompt) for _, s in timeline]
    distinct = list(dict.fromkeys(pairs))
    encoded = [adapter.encode_prompt(prompt, negative, guidance, view_shape) for prompt, negative in distinct]
    segment_prompt = torch.tensor([distinct.index(pair) for pair in pairs])
    segments = frame_segments([frame for frame, _ in timeline], layout.length, layout.loop)
    mix = view_mix(layout, segments, len(timeline), request.transition)
    for index in (mix.sum(0) == 0).nonzero().flatten().tolist():
        logger.warning(f"the segment {timeline[index][1].prompt!r} conditions no view (no view's centre lies in it); "
                       f"use transition blend or a longer segment.")
    to_prompt = torch.nn.functional.one_hot(segment_prompt, len(distinct)).float()
    followed = view_reference(layout, segments)
    used = sorted(set(followed.tolist()))
    reference_index = torch.tensor([used.index(segment) for segment in followed.tolist()])
    return Conditioning(encoded, mix @ to_prompt, segment_prompt[used]), reference_index


def observed(x0: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> Callable[[int], torch.Tensor]:
    """An observed reference view: `x0` (a clip's or picture's latent) at the level of the canvas after step k."""
    return lambda k: noised(scheduler, x0, noise, k + 1)


def reference_noise(shape: tuple[int, ...], references: int, generator: Generators, device: torch.device,
                    dtype: torch.dtype) -> torch.Tensor:
    """The reference views' noise, canvas by canvas (each canvas's R references from its own generator)."""
    if not isinstance(generator, list):
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    one = (references, *shape[1:])
    return torch.cat([randn_tensor(one, generator=g, device=device, dtype=dtype) for g in generator])
