"""The joint denoising loop (Algorithm 1), written over any denoiser callable and any diffusers scheduler.

Per timestep: crop every view from the canvas; evaluate the denoiser on the views (and, during the first
`guide_steps` steps, on the reference view) in batches of `view_batch_size`; step each trajectory with the
scheduler; swap the reference into each view's middle region (Eq. 10); merge the views back (Eq. 4 / 7).
Swaps act on x_{t-1} of each view, after the scheduler step, as in Algorithm 1; the last step is merged too.

Segments: a long canvas's views are taken in contiguous runs of `segment` views (all of them by default), each
cropped, denoised, stepped and added into the merge's sums before the next is cropped, so that a step's memory is
the canvas, the merge's sums and one segment, whatever the length. The first segment carries the reference view(s).

Scheduler state: the views of a segment are stepped together, as one batch, by one copy of the scheduler (a copy
per segment), and the reference by another. Every diffusers scheduler's `step` is elementwise over the batch, so
the history that multistep schedulers keep (DPM-Solver++'s model outputs, UniPC's last sample, Euler's step
index) holds each view's own history in its batch row: the same as one scheduler per view, at the cost of one per
segment. The reference gets its own copy because it stops being stepped after the guidance steps and must not
change the views' batch shape.
The caller's scheduler is not modified.

Several processes (one long piece across GPUs): with an `Exchange`, each process steps a contiguous run of the
segments; the reference's new x_{t-1} goes from the first process to the others before their swaps, and every
process gathers every view and merges them all in view order, so each holds the same canvas, and the canvas is the
single process's bit for bit (the same batches, the same sums in the same order). The model calls, the bulk of a
step, are shared; the merge is repeated on each process (it is a small part of a step).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .layout import ViewLayout
from .merge import merge_sums, merged, reference_swap

#: (latent views batch, timestep, row ids) -> model output for those views, classifier-free guidance already applied.
#: A row's id is its place in its canvas's block: views 0 .. n-1, then references n, n+1, ... (for conditioning).
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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
    view_schedulers: list[Any]
    """One scheduler copy per segment of views."""
    ref_scheduler: Any


class Exchange(Protocol):
    """What the processes of one distributed run share (pipelines/distributed.py implements it over
    torch.distributed)."""

    rank: int
    world: int

    def gather(self, views: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        """Every process's `views` (process p holds `counts[p]` rows), in process order."""

    def broadcast(self, tensor: torch.Tensor, source: int) -> torch.Tensor:
        """`source`'s `tensor`, on every process."""


def shares(parts: list[tuple[int, int]], world: int) -> list[list[int]]:
    """Each process's segments: contiguous runs of segment indices, balanced by their view counts."""
    total = sum(count for _, count in parts)
    owners = [min(world - 1, first * world // max(1, total)) for first, _ in parts]
    return [[i for i, owner in enumerate(owners) if owner == rank] for rank in range(world)]


def segments(views: int, size: int | None) -> list[tuple[int, int]]:
    """(first view, count) of contiguous runs of at most `size` views (one run of all without a size)."""
    size = views if not size else max(1, size)
    return [(first, min(size, views - first)) for first in range(0, views, size)]


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
    segment: int | None = None,
    step_kwargs: dict | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
    prepare: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    order: list[int] | None = None,
    renoise: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
    resume: LoopState | None = None,
    on_state: Callable[[LoopState], None] | None = None,
    exchange: Exchange | None = None,
    step_noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Denoise a batch of B canvases `latents` (x_T, already scaled by the scheduler's init sigma) to x_0.

    `scheduler` must have had `set_timesteps` called. `reference` holds each canvas's reference view x_T (B,
    window-sized), followed and swapped in (where `reference_mask` is true) for the first `guide_steps` timesteps;
    with `reference_index` (n,) it holds R references per canvas (B * R) and view i follows reference index[i]. A
    callable `reference(step)` is an observed reference instead (a user's clip noised to the level after that step):
    it is swapped in as it is, not denoised.
    The denoiser's batch is laid out canvas by canvas, each canvas's views followed by its references, so that a
    canvas's rows are the same as in a run of that canvas alone. `segment` bounds the views held at once (see above);
    `prepare` needs every view at once, so it takes one segment.
    `callback(step_index, t, canvas)` is called after every step; a tensor it returns replaces the canvas.
    `prepare(step_index, t, views)` may adjust the cropped views (B * n, canvas by canvas) before they are denoised
    (SyncDiffusion's gradient step). `order` (see `repaint_order`) runs steps again after going back in time with
    `renoise(canvas, from_step, to_step)`, which noises the canvas from the level before `from_step` to the level
    before `to_step`; it needs a scheduler without step history (DDIM).
    `on_state(state)` receives the loop's state after every step (the live objects: copy or save them at once);
    `resume` continues from such a state instead of from `latents`. `exchange` shares the segments among processes
    (see above): every process calls this with the same arguments and returns the same canvas.
    `step_noise(shape)` draws a stochastic step's noise (DDIM's eta > 0, through `variance_noise`) once per canvas
    frame each step, cropped for the views, so overlapping views share it instead of each drawing its own (averaged
    independent noises would shrink the overlaps' variance); the reference view draws its own after the canvas.
    """
    step_kwargs = step_kwargs or {}
    parts = segments(layout.num_views, None if prepare is not None else segment)
    view_schedulers = [copy.deepcopy(scheduler) for _ in parts]
    observed = callable(reference)
    ref_scheduler = copy.deepcopy(scheduler) if reference is not None and guide_steps > 0 and not observed else None
    canvas, ref = latents, reference
    timesteps = scheduler.timesteps
    if exchange is not None and len(parts) < exchange.world:
        raise ValueError(f"{exchange.world} processes need at least as many segments of views, got {len(parts)}")
    owned = shares(parts, exchange.world) if exchange is not None else [list(range(len(parts)))]
    mine = owned[exchange.rank] if exchange is not None else owned[0]

    def _swapped(views: torch.Tensor, k: int, first: int, count: int) -> torch.Tensor:
        """Eq. 10 on a segment's stepped views during the guided steps."""
        if k < guide_steps and (ref_scheduler is not None or observed):
            value = reference(k) if observed else ref
            index = None if reference_index is None else reference_index[first:first + count]
            return reference_swap(views, value, reference_mask[first:first + count], index)
        return views

    order = order or list(range(len(timesteps)))
    done, start = -1, 0
    if resume is not None:
        start, done, canvas = resume.position, resume.done, resume.canvas
        view_schedulers = copy.deepcopy(resume.view_schedulers)
        if ref_scheduler is not None:
            ref, ref_scheduler = resume.reference, copy.deepcopy(resume.ref_scheduler)
    for position in range(start, len(order)):
        k = order[position]
        if k <= done:  # RePaint: back in time to the level before step k
            canvas = renoise(canvas, done + 1, k)
        done, t = k, timesteps[k]
        numerator = denominator = None
        stepped = {}
        noise = ref_noise = None
        if step_noise is not None:  # the same generator order on every process
            noise = step_noise(tuple(canvas.shape))
            if ref_scheduler is not None and k < guide_steps:
                ref_noise = step_noise(tuple(ref.shape))
        for i in mine:
            (first, count), view_scheduler = parts[i], view_schedulers[i]
            views = layout.crop_views(canvas, axis, first, count)
            if prepare is not None:
                views = prepare(k, t, views)
            guided = ref_scheduler is not None and k < guide_steps and first == 0
            kwargs = step_kwargs if noise is None else _with_noise(step_kwargs, layout.crop_views(noise, axis, first,
                                                                                                 count))
            if guided:
                views, ref = _step_with_reference(denoiser, view_scheduler, ref_scheduler, views, ref, t, layout,
                                                  first, canvas.shape[0], view_batch_size, kwargs,
                                                  step_kwargs if ref_noise is None else _with_noise(step_kwargs,
                                                                                                    ref_noise))
            else:
                views = _step(denoiser, view_scheduler, views, t, _ids(layout, first, count, 0, canvas.shape[0]),
                              view_batch_size, kwargs)
            if exchange is None:
                numerator, denominator = merge_sums(_swapped(views, k, first, count), layout, weights, axis, first,
                                                    count, numerator, denominator)
            else:
                stepped[i] = views
        if exchange is not None:
            if ref_scheduler is not None and k < guide_steps:  # the first process stepped it with segment 0
                ref = exchange.broadcast(ref, 0)
            stepped = _gathered(exchange, {i: _swapped(v, k, *parts[i]) for i, v in stepped.items()}, parts,
                                owned, canvas.shape[0])
            for i, (first, count) in enumerate(parts):
                numerator, denominator = merge_sums(stepped[i], layout, weights, axis, first, count, numerator,
                                                    denominator)
        canvas = merged(numerator, denominator, axis)
        if callback is not None:
            replaced = callback(k, t, canvas)
            canvas = canvas if replaced is None else replaced
        if on_state is not None:
            on_state(LoopState(position + 1, done, canvas, None if observed else ref, view_schedulers, ref_scheduler))
    return canvas


def _gathered(exchange: Exchange, mine: dict[int, torch.Tensor], parts: list[tuple[int, int]],
              owned: list[list[int]], canvases: int) -> dict[int, torch.Tensor]:
    """Every segment's views, from whichever process stepped them (each segment's rows stay canvas by canvas)."""
    counts = [sum(parts[i][1] for i in indices) * canvases for indices in owned]
    everything = exchange.gather(torch.cat([mine[i] for i in owned[exchange.rank]]), counts)
    out = {}
    for indices, rows in zip(owned, everything, strict=True):
        for i, piece in zip(indices, rows.split([parts[i][1] * canvases for i in indices]), strict=True):
            out[i] = piece
    return out


def _ids(layout: ViewLayout, first: int, count: int, references: int, canvases: int) -> torch.Tensor:
    """Row ids of a segment's batch, canvas by canvas: its views' indices, then the references' (n, n+1, ...)."""
    block = torch.cat([torch.arange(first, first + count), layout.num_views + torch.arange(references)])
    return block.repeat(canvases)


def _denoise(denoiser: Denoiser, batch: torch.Tensor, t: torch.Tensor, ids: torch.Tensor,
             view_batch_size: int | None) -> torch.Tensor:
    chunk = view_batch_size or batch.shape[0]
    return torch.cat([denoiser(part, t, rows) for part, rows in zip(batch.split(chunk), ids.split(chunk),
                                                                   strict=True)])


def _step(denoiser: Denoiser, scheduler: Any, views: torch.Tensor, t: torch.Tensor, ids: torch.Tensor,
          view_batch_size: int | None, step_kwargs: dict) -> torch.Tensor:
    """x_{t-1} of a segment's views."""
    out = _denoise(denoiser, _scale_model_input(scheduler, views, t), t, ids, view_batch_size)
    return scheduler.step(out, t, views, **step_kwargs).prev_sample


def _with_noise(step_kwargs: dict, noise: torch.Tensor) -> dict:
    """`scheduler.step`'s arguments with this noise for its stochastic term (and no generator to draw another)."""
    return {**{k: v for k, v in step_kwargs.items() if k != "generator"}, "variance_noise": noise}


def _step_with_reference(denoiser: Denoiser, scheduler: Any, ref_scheduler: Any, views: torch.Tensor,
                         ref: torch.Tensor, t: torch.Tensor, layout: ViewLayout, first: int, canvases: int,
                         view_batch_size: int | None, step_kwargs: dict,
                         ref_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_{t-1} of a segment's views and of the reference view(s), denoised in the same batch, canvas by canvas."""
    count = views.shape[0] // canvases
    refs_per = ref.shape[0] // canvases
    batch = torch.cat([_scale_model_input(scheduler, views, t).unflatten(0, (canvases, -1)),
                       _scale_model_input(ref_scheduler, ref, t).unflatten(0, (canvases, -1))], 1).flatten(0, 1)
    out = _denoise(denoiser, batch, t, _ids(layout, first, count, refs_per, canvases), view_batch_size)
    out = out.unflatten(0, (canvases, -1))
    out, out_refs = out[:, :count].flatten(0, 1), out[:, count:].flatten(0, 1)
    views = scheduler.step(out, t, views, **step_kwargs).prev_sample
    ref_kwargs = step_kwargs if ref_kwargs is None else ref_kwargs
    return views, ref_scheduler.step(out_refs, t, ref, **ref_kwargs).prev_sample
