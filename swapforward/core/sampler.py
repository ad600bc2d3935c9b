"""The joint denoising loop (Algorithm 1), written over any denoiser callable and any diffusers scheduler.

Per timestep: crop every view from the canvas; evaluate the denoiser on the views (and, during the first
`guide_steps` steps, on the reference view) in batches of `view_batch_size`; step each trajectory with the
scheduler; swap the reference into each view's middle region (Eq. 10); merge the views back (Eq. 4 / 7).
Swaps act on x_{t-1} of each view, after the scheduler step, as in Algorithm 1; the last step is merged too.

Scheduler state: the views are stepped together, as one batch, by one copy of the scheduler, and the reference
by another. Every diffusers scheduler's `step` is elementwise over the batch, so the history that multistep
schedulers keep (DPM-Solver++'s model outputs, UniPC's last sample, Euler's step index) holds each view's own
history in its batch row: the same as one scheduler per view, at the cost of one. The reference gets its own
copy because it stops being stepped after the guidance steps and must not change the views' batch shape.
The caller's scheduler is not modified.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .layout import ViewLayout
from .merge import merge_views, reference_swap

#: (latent views batch, timestep) -> model output for those views, classifier-free guidance already applied.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _scale_model_input(scheduler: Any, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The scheduler's input scaling; flow-matching schedulers have none."""
    scale = getattr(scheduler, "scale_model_input", None)
    return sample if scale is None else scale(sample, t)


def repaint_order(steps: int, start: int = 0, jump: int = 1, resample: int = 0) -> list[int]:
    """The step indices to run, with RePaint's resampling (Lugmayr et al., 2022): from step `start` on, after every
    `jump` steps go back `jump` steps and run them again, `resample` times. Without resampling: 0 .. steps - 1."""
    order = list(range(min(start, steps)))
    k = len(order)
    while k < steps:
        stretch = list(range(k, min(k + jump, steps)))
        order += stretch
        if stretch[-1] + 1 < steps:  # never after the last step: it ends at x_0
            order += stretch * resample
        k += jump
    return order


Reference = torch.Tensor | Callable[[int], torch.Tensor]


@dataclass
class LoopState:
    """Where a joint run stands between two steps: enough to continue it to the same bytes (with the same
    denoiser and callbacks). `position` indexes the step order (RePaint runs some steps more than once)."""

    position: int
    done: int
    """The last step index run (-1 before the first)."""
    canvas: torch.Tensor
    reference: torch.Tensor | None
    """The generated reference view(s) (None for an observed reference, which is recomputed)."""
    view_scheduler: Any
    ref_scheduler: Any


def joint_denoise(
    latents: torch.Tensor,
    denoiser: Denoiser,
    scheduler: Any,
    layout: ViewLayout,
    *,
    axis: int,
    weights: torch.Tensor,
    reference: Reference | None = None,
    reference_mask: torch.Tensor | None = None,
    reference_index: torch.Tensor | None = None,
    guide_steps: int = 0,
    view_batch_size: int | None = None,
    step_kwargs: dict | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
    prepare: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    order: list[int] | None = None,
    renoise: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
    resume: LoopState | None = None,
    on_state: Callable[[LoopState], None] | None = None,
) -> torch.Tensor:
    """Denoise a batch of B canvases `latents` (x_T, already scaled by the scheduler's init sigma) to x_0.

    `scheduler` must have had `set_timesteps` called. `reference` holds each canvas's reference view x_T (B,
    window-sized), followed and swapped in (where `reference_mask` is true) for the first `guide_steps` timesteps;
    with `reference_index` (n,) it holds R references per canvas (B * R) and view i follows reference index[i]. A
    callable `reference(step)` is an observed reference instead (a user's clip noised to the level after that step):
    it is swapped in as it is, not denoised.
    The denoiser's batch is laid out canvas by canvas, each canvas's views followed by its references, so that a
    canvas's rows are the same as in a run of that canvas alone.
    `callback(step_index, t, canvas)` is called after every step; a tensor it returns replaces the canvas.
    `prepare(step_index, t, views)` may adjust the cropped views (B * n, canvas by canvas) before they are denoised
    (SyncDiffusion's gradient step). `order` (see `repaint_order`) runs steps again after going back in time with
    `renoise(canvas, from_step, to_step)`, which noises the canvas from the level before `from_step` to the level
    before `to_step`; it needs a scheduler without step history (DDIM).
    `on_state(state)` receives the loop's state after every step (the live objects: copy or save them at once);
    `resume` continues from such a state instead of from `latents`.
    """
    step_kwargs = step_kwargs or {}
    view_scheduler = copy.deepcopy(scheduler)
    observed = callable(reference)
    ref_scheduler = copy.deepcopy(scheduler) if reference is not None and guide_steps > 0 and not observed else None
    canvases, n = latents.shape[0], layout.num_views
    canvas, ref = latents, reference
    timesteps = view_scheduler.timesteps
    order = order or list(range(len(timesteps)))
    done, start = -1, 0
    if resume is not None:
        start, done, canvas = resume.position, resume.done, resume.canvas
        view_scheduler = copy.deepcopy(resume.view_scheduler)
        if ref_scheduler is not None:
            ref, ref_scheduler = resume.reference, copy.deepcopy(resume.ref_scheduler)
    for position in range(start, len(order)):
        k = order[position]
        if k <= done:  # RePaint: back in time to the level before step k
            canvas = renoise(canvas, done + 1, k)
        done, t = k, timesteps[k]
        views = layout.crop(canvas, axis)
        if prepare is not None:
            views = prepare(k, t, views)
        guided = ref_scheduler is not None and k < guide_steps
        batch = _scale_model_input(view_scheduler, views, t)
        if guided:  # canvas by canvas: its views, then its reference view(s)
            refs = _scale_model_input(ref_scheduler, ref, t)
            batch = torch.cat([batch.unflatten(0, (canvases, -1)), refs.unflatten(0, (canvases, -1))], 1).flatten(0, 1)
        chunk = view_batch_size or batch.shape[0]
        out = torch.cat([denoiser(part, t) for part in batch.split(chunk)])
        if guided:
            out = out.unflatten(0, (canvases, -1))
            out, out_refs = out[:, :n].flatten(0, 1), out[:, n:].flatten(0, 1)
        views = view_scheduler.step(out, t, views, **step_kwargs).prev_sample
        if guided:
            ref = ref_scheduler.step(out_refs, t, ref, **step_kwargs).prev_sample
            views = reference_swap(views, ref, reference_mask, reference_index)
        elif observed and k < guide_steps:
            views = reference_swap(views, reference(k), reference_mask, reference_index)
        canvas = merge_views(views, layout, weights, axis)
        if callback is not None:
            replaced = callback(k, t, canvas)
            canvas = canvas if replaced is None else replaced
        if on_state is not None:
            on_state(LoopState(position + 1, done, canvas, None if observed else ref, view_scheduler, ref_scheduler))
    return canvas
