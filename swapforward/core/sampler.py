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

Several processes (one long piece across GPUs): with an `Exchange`, each process steps a contiguous share of whole
batches of views (core.shares), the reference's new x_{t-1} goes from the first process to the others before their
swaps, and each process receives only the views of other processes that cover its own frames (two overlaps' worth,
whatever the length), merging its frames as one process would (the same views added in the same order). The canvas
is gathered once, at the end (`assembled`). Model calls take views in batches fixed in view-index space, so the
canvas is the single process's bit for bit for any number of processes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import torch

from .layout import ViewLayout
from .merge import merge_sums, merge_sums_at, merged, reference_swap
from .shares import batch_ranges, border_plan, frame_shares, process_shares, segments_in

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


Reference = Callable[[int], torch.Tensor]
"""An observed reference: the user's clip or picture at the noise level of the canvas after step k."""
StepNoise = Callable[[tuple[int, ...]], torch.Tensor]


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
    """What the processes of one distributed run share (runtime/distributed.py implements it over
    torch.distributed)."""

    rank: int
    world: int

    def gather(self, rows: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        """Every process's `rows` (process p holds `counts[p]` rows), in process order."""

    def broadcast(self, tensor: torch.Tensor, source: int) -> torch.Tensor:
        """`source`'s `tensor`, on every process."""

    def trade(self, sends: dict[int, torch.Tensor], shapes: dict[int, tuple[int, ...]],
              like: torch.Tensor) -> dict[int, torch.Tensor]:
        """Send `sends[q]` to process q and receive from each process q of `shapes` a tensor of that shape (of
        `like`'s dtype and device)."""


@dataclass(frozen=True)
class Joint:
    """What every step of one joint run shares: the views and their merge weights (Eq. 4 / 7), Eq. 10's schedule and
    mask, how the denoiser is called (batches, segments, a baseline's `prepare`) and which processes share it."""

    layout: ViewLayout
    axis: int
    weights: torch.Tensor
    guide_steps: int = 0
    reference_mask: torch.Tensor | None = None
    reference_index: torch.Tensor | None = None
    """(n,): view i follows reference index[i] of its canvas's R references (None: one reference)."""
    view_batch_size: int | None = None
    """Views of a canvas per model call, the calls starting at multiples of it in view index (None: a segment's
    views in one call)."""
    segment: int | None = None
    """Views per segment (None: all at once); ignored with `prepare`, which needs every view."""
    prepare: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    exchange: Exchange | None = None
    swap: Callable[..., torch.Tensor] = reference_swap
    """The reference guidance (views, reference, mask, index) -> views: Eq. 10's swap, or a variant the lab tries."""

    @cached_property
    def shares(self) -> list[tuple[int, int]]:
        """Each process's (first view, end): whole batches, balanced (one process: every view)."""
        if self.exchange is None or self.prepare is not None:
            return [(0, self.layout.num_views)]
        return process_shares(self.layout.num_views, self.exchange.world, self.view_batch_size or 1)

    @cached_property
    def parts(self) -> list[tuple[int, int]]:
        """(first view, count) of each segment, process by process; computed once, as every step reads it."""
        segment = None if self.prepare is not None else self.segment
        return [part for share in self.shares for part in segments_in(share, segment, self.view_batch_size or 1)]

    @cached_property
    def owned(self) -> list[list[int]]:
        """Each process's segments (one process: all of them)."""
        return [[i for i, (first, _) in enumerate(self.parts) if lo <= first < hi] for lo, hi in self.shares]

    @cached_property
    def borders(self) -> list[list[list[int]]]:
        """borders[p][q]: the views of process q that process p merges with its own (core.shares.border_plan)."""
        return border_plan(self.layout, self.shares)


def start(latents: torch.Tensor, scheduler: Any, joint: Joint, reference: torch.Tensor | None = None) -> LoopState:
    """The state before the first step: the canvases x_T (already scaled by the scheduler's init sigma), the
    reference views' x_T (or None), and copies of the scheduler, one per segment and one for the reference. The
    caller's scheduler, whose `set_timesteps` must have been called, is not modified."""
    parts = joint.parts
    if joint.exchange is not None and any(first == end for first, end in joint.shares):
        raise ValueError(f"{joint.exchange.world} processes need at least as many batches of views, got "
                         f"{joint.shares}")
    ref_scheduler = copy.deepcopy(scheduler) if reference is not None and joint.guide_steps > 0 else None
    return LoopState(0, -1, latents, reference if ref_scheduler is not None else None,
                     [copy.deepcopy(scheduler) for _ in parts], ref_scheduler)


def joint_step(state: LoopState, k: int, denoiser: Denoiser, joint: Joint, *, observed: Reference | None = None,
               step_kwargs: dict | None = None, step_noise: StepNoise | None = None) -> LoopState:
    """Step k of Algorithm 1 on every canvas: crop the views, denoise and step them (with the reference view(s)
    during the first `guide_steps` steps), swap the reference into their middles (Eq. 10), merge them (Eq. 4 / 7).

    `observed(k)` is an observed reference (a user's clip at the level after step k) instead of a generated one.
    `step_noise(shape)` draws a stochastic step's noise once per canvas frame, cropped for the views (the reference
    draws its own after the canvas), so overlapping views share it."""
    canvas, kwargs = state.canvas, step_kwargs or {}
    guided = k < joint.guide_steps and (state.ref_scheduler is not None or observed is not None)
    noise = step_noise(tuple(canvas.shape)) if step_noise is not None else None
    ref_noise = step_noise(tuple(state.reference.shape)) if noise is not None and guided and observed is None else None
    mine = joint.owned[joint.exchange.rank] if joint.exchange is not None else joint.owned[0]
    stepped, reference, sums = {}, state.reference, (None, None)
    for i in mine:
        views, reference = _step_segment(state, reference, k, i, denoiser, joint, kwargs, noise, ref_noise)
        if joint.exchange is None:  # merged as it goes: a step holds one segment's views at a time
            views = _swapped(views, joint.parts[i], joint, observed(k) if observed else reference, guided)
            sums = merge_sums(views, joint.layout, joint.weights, joint.axis, *joint.parts[i], *sums)
        else:
            stepped[i] = views
    if joint.exchange is not None:
        reference, canvas = _bordered(stepped, reference, k, joint, observed, guided, canvas)
    else:
        canvas = merged(*sums, joint.axis)
    return LoopState(state.position, k, canvas, reference, state.view_schedulers, state.ref_scheduler)


def _bordered(stepped: dict[int, torch.Tensor], reference: torch.Tensor | None, k: int, joint: Joint,
              observed: Reference | None, guided: bool,
              canvas: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Several processes: the reference's x_{t-1} from the first process, then this process's frames merged from its
    own swapped views and the other processes' views that cover them (border-only exchange), in view order; the
    frames it does not cover keep their old values (no process reads them)."""
    exchange, canvases = joint.exchange, canvas.shape[0]
    rank = exchange.rank
    if guided and observed is None:  # the first process stepped it with segment 0
        reference = exchange.broadcast(reference, 0)
    value = observed(k) if observed else reference
    own = torch.cat([_swapped(stepped[i], joint.parts[i], joint, value, guided).unflatten(0, (canvases, -1))
                     for i in joint.owned[rank]], 1)
    first, end = joint.shares[rank]
    sends = {q: own[:, [v - first for v in needs[rank]]].contiguous()
             for q, needs in enumerate(joint.borders) if needs[rank]}
    shapes = {q: (canvases, len(views), *own.shape[2:]) for q, views in enumerate(joint.borders[rank]) if views}
    received = exchange.trade(sends, shapes, own)
    index = list(range(first, end)) + [v for q in shapes for v in joint.borders[rank][q]]
    order = sorted(range(len(index)), key=index.__getitem__)
    rows = torch.cat([own, *(received[q] for q in shapes)], 1)[:, order].flatten(0, 1)
    numerator, denominator = merge_sums_at(rows, joint.layout, joint.weights, joint.axis,
                                           torch.tensor([index[i] for i in order]))
    shape = [1] * canvas.ndim
    shape[joint.axis % canvas.ndim] = -1
    return reference, torch.where((denominator > 0).view(shape), merged(numerator, denominator, joint.axis), canvas)


def assembled(canvas: torch.Tensor, joint: Joint) -> torch.Tensor:
    """The whole canvas on every process after a distributed run: each process's frames (core.shares.frame_shares)
    gathered once; the canvas itself with one process."""
    if joint.exchange is None:
        return canvas
    axis = joint.axis % canvas.ndim
    spans = frame_shares(joint.layout, joint.shares)
    lo, hi = spans[joint.exchange.rank]
    mine = canvas.movedim(axis, 0)[lo:hi].contiguous()
    pieces = joint.exchange.gather(mine, [b - a for a, b in spans])
    return torch.cat(pieces, 0).movedim(0, axis).contiguous()


def joint_denoise(latents: torch.Tensor, denoiser: Denoiser, scheduler: Any, joint: Joint, *,
                  reference: torch.Tensor | None = None, step_kwargs: dict | None = None,
                  step_noise: StepNoise | None = None,
                  callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None
                  ) -> torch.Tensor:
    """Denoise a batch of B canvases `latents` (x_T, scaled by the scheduler's init sigma) to x_0 through every
    timestep of `scheduler`, each one `joint_step`; `reference` holds each canvas's reference view(s) x_T.
    `callback(k, t, canvas)` runs after every step and may return a canvas to continue from."""
    state = start(latents, scheduler, joint, reference)
    for k, t in enumerate(scheduler.timesteps):
        state = joint_step(state, k, denoiser, joint, step_kwargs=step_kwargs, step_noise=step_noise)
        replaced = callback(k, t, state.canvas) if callback is not None else None
        if replaced is not None:
            state.canvas = replaced
    return assembled(state.canvas, joint)


def _step_segment(state: LoopState, reference: torch.Tensor | None, k: int, i: int, denoiser: Denoiser, joint: Joint,
                  kwargs: dict, noise: torch.Tensor | None,
                  ref_noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x_{t-1} of segment i's views, and of the reference view(s) when segment i carries them at step k."""
    (first, count), scheduler = joint.parts[i], state.view_schedulers[i]
    t, canvases = scheduler.timesteps[k], state.canvas.shape[0]
    views = joint.layout.crop_views(state.canvas, joint.axis, first, count)
    if joint.prepare is not None:
        views = joint.prepare(k, t, views)
    if noise is not None:
        kwargs = _with_noise(kwargs, joint.layout.crop_views(noise, joint.axis, first, count))
    if state.ref_scheduler is None or k >= joint.guide_steps or first != 0 or reference is None:
        return _step(denoiser, scheduler, views, t, first, canvases, joint, kwargs), reference
    ref_kwargs = kwargs if ref_noise is None else _with_noise(kwargs, ref_noise)
    return _step_with_reference(denoiser, scheduler, state.ref_scheduler, views, reference, t, first, canvases,
                                joint, kwargs, ref_kwargs)


def _swapped(views: torch.Tensor, part: tuple[int, int], joint: Joint, reference: torch.Tensor | None,
             guided: bool) -> torch.Tensor:
    """Eq. 10 on a segment's stepped views during the guided steps."""
    if not guided or reference is None:
        return views
    first, count = part
    index = None if joint.reference_index is None else joint.reference_index[first:first + count]
    return joint.swap(views, reference, joint.reference_mask[first:first + count], index)


def _denoise(denoiser: Denoiser, views: torch.Tensor, refs: torch.Tensor | None, t: torch.Tensor, first: int,
             canvases: int, joint: Joint) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's output for a segment's views (canvas by canvas, from view `first` on) and for the reference views
    `refs`: with a view batch, calls start at multiples of it in view index (core.shares), so a call holds the same
    rows whatever the segments or processes; the references ride in the first call when they fit in the batch with
    its views (which depends on the layout and the batch only), else take a call of their own. A row's id is its
    view's index, references after the views (n, n+1, ...)."""
    grouped = views.unflatten(0, (canvases, -1))
    carried = None if refs is None else refs.unflatten(0, (canvases, -1))
    outs, ref_out = [], None
    size = joint.view_batch_size
    batches = batch_ranges(first, grouped.shape[1], size)
    if carried is not None and size and batches[0][1] + carried.shape[1] > size:
        ids = joint.layout.num_views + torch.arange(carried.shape[1])
        ref_out, carried = denoiser(refs, t, ids.repeat(canvases)), None
    for offset, length in batches:
        rows, ids = grouped[:, offset:offset + length], torch.arange(first + offset, first + offset + length)
        if carried is not None and offset == 0:
            rows = torch.cat([rows, carried], 1)
            ids = torch.cat([ids, joint.layout.num_views + torch.arange(carried.shape[1])])
        out = denoiser(rows.flatten(0, 1), t, ids.repeat(canvases)).unflatten(0, (canvases, -1))
        if carried is not None and offset == 0:
            out, ref_out = out[:, :length], out[:, length:].flatten(0, 1)
        outs.append(out)
    return torch.cat(outs, 1).flatten(0, 1), ref_out


def _step(denoiser: Denoiser, scheduler: Any, views: torch.Tensor, t: torch.Tensor, first: int, canvases: int,
          joint: Joint, step_kwargs: dict) -> torch.Tensor:
    """x_{t-1} of a segment's views."""
    out, _ = _denoise(denoiser, _scale_model_input(scheduler, views, t), None, t, first, canvases, joint)
    return scheduler.step(out, t, views, **step_kwargs).prev_sample


def _with_noise(step_kwargs: dict, noise: torch.Tensor) -> dict:
    """`scheduler.step`'s arguments with this noise for its stochastic term (and no generator to draw another)."""
    return {**{k: v for k, v in step_kwargs.items() if k != "generator"}, "variance_noise": noise}


def _step_with_reference(denoiser: Denoiser, scheduler: Any, ref_scheduler: Any, views: torch.Tensor,
                         ref: torch.Tensor, t: torch.Tensor, first: int, canvases: int, joint: Joint,
                         step_kwargs: dict, ref_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_{t-1} of a segment's views and of the reference view(s), the references in the segment's first call."""
    out, out_refs = _denoise(denoiser, _scale_model_input(scheduler, views, t),
                             _scale_model_input(ref_scheduler, ref, t), t, first, canvases, joint)
    views = scheduler.step(out, t, views, **step_kwargs).prev_sample
    ref_kwargs = step_kwargs if ref_kwargs is None else ref_kwargs
    return views, ref_scheduler.step(out_refs, t, ref, **ref_kwargs).prev_sample
