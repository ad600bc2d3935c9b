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
from ..core.sampler import Joint, LoopState, StepNoise, repaint_order, start
from ..core.timeline import frame_segments, view_mix, view_reference
from ..errors import SwapForwardError
from ..models.base import LatentAdapter
from ..options import MAX_SEED, RANDOM_SEED, Request
from ..prompts import Segment
from ..runtime import distributed
from ..runtime.denoiser import CallCount, batched, counted_model
from ..runtime.memory import HOST_VIEW_BATCH, DeviceMemory, segment_views
from ..runtime.resume import RunState, StateSaver, restore_generators, row_stateless
from ..runtime.stochastic import draws_noise, with_given_noise
from .conditioning import Conditioning
from .driver import Run, drive
from .kept import Kept, noised, renoiser

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
    interrupt: Callable[[], None] | None = None,
) -> JointResult:
    """Denoise canvases of `canvas_shape` (batch first), laid out as `layout` along `adapter.long_axis`.

    `latents` replace the canvases' initial noise and `reference_latents` the reference views'; given `latents` and
    no generator, the remaining noise comes from a generator seeded by the latents' bytes (`generator_from`).
    `timeline` holds the request's segments with their start frames on the canvas (`request.prompt` is a plain
    prompt without it). `kept` holds canvas frames to the user's input; `observed_reference` (the latent of a clip
    or picture, one view long) replaces the generated reference view: it is noised to each guided step's level and
    swapped in, not denoised. `save` = (path, every, settings) writes the run's state every `every` steps; `resume`
    (a loaded state) continues a run from it, after the same set-up (so the same noise) as the first run.
    `interrupt()` runs before every model call; what it raises stops the run.
    """
    axis = adapter.long_axis % len(canvas_shape)
    view_shape = (1, *canvas_shape[1:axis], layout.window, *canvas_shape[axis + 1:])
    if latents is not None and tuple(latents.shape) != tuple(canvas_shape):
        raise SwapForwardError(f"latents must have shape {tuple(canvas_shape)}, got {tuple(latents.shape)}.")

    # 1. The conditioning of every view (and reference view), and the timesteps, as the base pipeline sets them.
    conditioning, reference_index = condition(adapter, request, layout, view_shape, timeline)
    if observed_reference is not None:
        reference_index = None  # the user's reference guides every view
    references = 1 if reference_index is None else len(conditioning.reference_prompt)
    scheduler = timesteps_for(adapter, request, view_shape)
    steps = len(scheduler.timesteps)

    # 2. The plan of Algorithm 1: merge weights, guide steps, the reference mask.
    plan = plan_joint(get_method(request.method), layout, steps, view_shape=view_shape, axis=axis,
                      swap_axis=adapter.reference_axis, r_guide=request.r_guide, swap_interval=request.swap_interval,
                      tail_shift=request.tail_shift, reference_phase=request.reference_phase,
                      envelope_share=request.envelope_share)

    # 3. The noise: every canvas, then (with guide steps) every canvas's reference view(s), from the same generator(s).
    if latents is not None and generator is None:
        generator = generator_from(latents)
    noise, canvas = initial_noise(adapter, scheduler, canvas_shape, generator, latents, kept)
    reference, observed_at = reference_start(adapter, scheduler, plan.guide_steps, (canvas_shape[0] * references,
                                             *view_shape[1:]), references, generator, reference_latents,
                                             observed_reference)

    # 4. The baseline's plug-in (MAD's merged attention, SyncDiffusion's gradient step), if the method has one.
    baseline = baseline_for(request, steps, layout, lpips)
    if baseline is not None:
        baseline.check(adapter, scheduler)

    # 5. The denoiser the loop calls: the model with its conditioning, counted, in batches that fit the device.
    count = CallCount()
    one_call = baseline.one_call if baseline is not None else None
    batch = views_per_call(adapter, request, one_call)
    denoiser = batched(counted_model(adapter, conditioning, request.guidance_scale, count, interrupt),
                       adapter.device, batch, one_call)

    # 6. The loop: the core's step in the driver's order, with the run's pieces around it (drive).
    exchange = distributed.current()
    order, renoise = repaint(request, scheduler, generator, steps, plan.guide_steps, kept)
    step_noise = canvas_noise(adapter, scheduler, request.eta, generator)
    if exchange is not None:  # several processes: at least a batch of views each
        saving = (save is not None or resume is not None) and not row_stateless(scheduler)
        distributed.check_shareable(request.method, request.eta if step_noise is None else 0.0,
                                    type(scheduler).__name__ if saving else None, layout.num_views, exchange.world,
                                    batch or 1)
    joint = Joint(layout, axis, plan.weights, plan.guide_steps, plan.reference_mask, reference_index,
                  view_batch_size=batch, segment=views_per_segment(layout, view_shape, canvas, one_call),
                  prepare=baseline.prepare if baseline is not None else None, exchange=exchange, swap=plan.guidance)
    state = start(canvas, scheduler, joint, reference)
    if resume is not None:
        state = resumed(state, resume, generator, count, baseline, order, first=exchange is None or exchange.rank == 0)
    bar = tqdm(total=len(order), initial=state.position, desc=f"{request.method}, {layout.num_views} views",
               unit="step", disable=not progress_bar or not distributed.is_first())
    progress = StepProgress(bar, layout.num_views * canvas_shape[0])
    denoiser = progress.denoiser(denoiser)
    running = nullcontext() if baseline is None else baseline.running(
        LoopContext(adapter, scheduler, denoiser, layout, view_shape, axis, canvas_shape[0]))
    run = Run(order, renoise, observed_at, adapter.step_kwargs(first_generator(generator), request.eta), step_noise,
              after_step(baseline, progress, kept, noise, scheduler, callback),
              None if save is None else StateSaver(save[0], save[1], save[2], generator, count, joint))
    with bar, running:
        canvas = drive(state, denoiser, joint, run)
    if exchange is not None:
        count.calls, count.evaluations = exchange.total(count.calls, count.evaluations)
    return JointResult(latents=canvas, model_calls=count.calls, view_evaluations=count.evaluations,
                       guide_steps=plan.guide_steps, steps=steps, views_per_call=count.largest, references=references)


def timesteps_for(adapter: LatentAdapter, request: Request, view_shape: tuple[int, ...]) -> Any:
    """A copy of the model's scheduler with the timesteps the base pipeline sets for one view (a stochastic
    flow-matching scheduler wrapped so that its noise can be given), or one sentence for too many steps."""
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
    return scheduler


def initial_noise(adapter: LatentAdapter, scheduler: Any, canvas_shape: tuple[int, ...], generator: Generators,
                  latents: torch.Tensor | None, kept: Kept | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the canvases' noise, x_T: the noise scaled by the scheduler's init sigma, kept regions noised in)."""
    device, dtype = adapter.device, adapter.dtype
    if latents is None:
        latents = randn_tensor(tuple(canvas_shape), generator=generator, device=device, dtype=dtype)
    noise = latents.to(device=device, dtype=dtype)
    canvas = noise * getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers start from plain noise
    return noise, canvas if kept is None else kept.start(canvas, noise, scheduler)


def reference_start(adapter: LatentAdapter, scheduler: Any, guide_steps: int, shape: tuple[int, ...],
                    references: int, generator: Generators, reference_latents: torch.Tensor | None,
                    observed_reference: torch.Tensor | None) -> tuple[torch.Tensor | None, Callable | None]:
    """(the generated reference views' x_T, or the observed reference at each step's level), after the canvases'
    noise from the same generator(s); (None, None) without guide steps."""
    if reference_latents is not None and tuple(reference_latents.shape) != shape:
        raise SwapForwardError(f"reference_latents must have shape {shape}, got {tuple(reference_latents.shape)}.")
    if not guide_steps:
        return None, None
    device, dtype = adapter.device, adapter.dtype
    if reference_latents is None:
        reference_latents = reference_noise(shape, references, generator, device, dtype)
    if observed_reference is not None:
        return None, observed(observed_reference.to(device, dtype), reference_latents.to(device, dtype), scheduler)
    return reference_latents.to(device=device, dtype=dtype) * getattr(scheduler, "init_noise_sigma", 1.0), None


def first_generator(generator: Generators) -> torch.Generator | None:
    """The generator of step noise (DDIM's eta, the ping-pong sampler, RePaint): the first canvas's."""
    return generator[0] if isinstance(generator, list) else generator


def canvas_noise(adapter: LatentAdapter, scheduler: Any, eta: float, generator: Generators) -> StepNoise | None:
    """A stochastic step's noise, one draw per canvas frame shared by its views, or None for deterministic steps."""
    if not draws_noise(scheduler, eta):
        return None
    step_generator, dtype = first_generator(generator), getattr(scheduler, "noise_dtype", adapter.dtype)
    return lambda shape: randn_tensor(shape, generator=step_generator, device=adapter.device, dtype=dtype)


def repaint(request: Request, scheduler: Any, generator: Generators, steps: int, guide_steps: int,
            kept: Kept | None) -> tuple[list[int], Callable | None]:
    """The step order (RePaint's resampling after the guidance, when asked for and something is kept) and the
    step back in time it needs."""
    if not (request.repaint_resample and kept is not None):
        return list(range(steps)), None
    order = repaint_order(steps, guide_steps, request.repaint_jump, request.repaint_resample)
    return order, renoiser(scheduler, generator)


def views_per_call(adapter: LatentAdapter, request: Request, one_call: str | None) -> int | None:
    """Views of each canvas per model call, the calls fixed in view index (core.shares): the user's view batch or
    the host's, so that any number of processes makes the same calls (the denoiser then splits a call of several
    takes into whole takes, each as its run alone); None on a GPU whose free memory sizes the calls
    (runtime.memory.fit_in_memory), and for baselines needing one call."""
    if one_call:
        return None
    return request.view_batch_size or (HOST_VIEW_BATCH if DeviceMemory.of(adapter.device) is None else None)


def views_per_segment(layout: ViewLayout, view_shape: tuple[int, ...], canvas: torch.Tensor,
                      one_call: str | None) -> int | None:
    """Views per segment: as many as memory allows (all for baselines needing one call)."""
    if one_call:
        return None
    return segment_views(math.prod(view_shape) * canvas.element_size(), canvas.shape[0], layout.num_views)


def resumed(state: LoopState, saved: RunState, generator: Generators, count: CallCount, baseline: Any,
            order: list[int], first: bool = True) -> LoopState:
    """The saved loop, generators and counts in place of the fresh ones (the baseline replays its finished steps).
    A state saved with other segments or processes gives its one scheduler to every segment when the scheduler
    keeps no history per view; with several processes the first carries the saved counts."""
    loop = saved.loop
    if tuple(loop.canvas.shape) != tuple(state.canvas.shape):
        raise SwapForwardError("The saved state's canvas does not fit this run; resume with the same settings.")
    schedulers = loop.view_schedulers
    if len(schedulers) != len(state.view_schedulers):
        if not row_stateless(schedulers[0]):
            raise SwapForwardError(f"The saved state holds {len(schedulers)} segments' {type(schedulers[0]).__name__}"
                                   f", which keeps a history per view, and this run has {len(state.view_schedulers)}"
                                   f"; resume with the same number of processes.")
        schedulers = [schedulers[0]] * len(state.view_schedulers)
    restore_generators(generator, saved.generators)
    count.calls, count.evaluations, count.largest = saved.counts if first else (0, 0, saved.counts[2])
    if baseline is not None:
        for k in order[: loop.position]:
            baseline.after_step(k)
    reference = None
    if state.ref_scheduler is not None:
        reference = loop.reference.to(device=state.canvas.device, dtype=state.canvas.dtype)
    return LoopState(loop.position, loop.done, loop.canvas.to(device=state.canvas.device, dtype=state.canvas.dtype),
                     reference, [copy.deepcopy(scheduler) for scheduler in schedulers],
                     copy.deepcopy(loop.ref_scheduler) if state.ref_scheduler is not None else None)


class StepProgress:
    """The run's progress bar, moved by whole steps and, within a step, by each model call's share of the step's
    `rows` views: a long step (an hour of audio on a CPU) shows progress and an ETA as it goes."""

    def __init__(self, bar: Any, rows: int):
        self.bar, self.rows, self.steps = bar, rows, bar.n

    def denoiser(self, denoiser: Callable) -> Callable:
        if self.bar.disable:
            return denoiser

        def call(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            out = denoiser(x, t, ids)
            self.bar.update(max(0.0, min(x.shape[0] / self.rows, self.steps + 0.99 - self.bar.n)))
            return out

        return call

    def step(self) -> None:
        self.steps += 1
        self.bar.update(self.steps - self.bar.n)
        self.bar.n = self.steps  # whole steps show as whole numbers (6/6, not 6.0/6)


def after_step(baseline: Any, progress: StepProgress, kept: Kept | None, noise: torch.Tensor, scheduler: Any,
               callback: Callable | None) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None]:
    """What runs after every step: the baseline's count, the progress bar, kept regions, the caller's callback."""

    def on_step(k: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if baseline is not None:
            baseline.after_step(k)
        progress.step()
        if kept is not None:
            x = kept.after_step(k, x, noise, scheduler)
        replaced = callback(k, t, x) if callback is not None else None
        return x if replaced is None else replaced

    return on_step


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
