"""Candidate reference guidances the lab compares with Eq. 10's swap (issue 27).

Each acts where Eq. 10 acts, on the views' x_{t-1} after a guided step, and is judged against four targets
(docs/lab.md): SaFa's consistency, no copying between views, no lost dimension, and MD*'s KL. A guidance is linear in
the noises (the lab then measures it exactly) or not (the lab samples its output's covariance).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.envelope import envelope_guidance
from ..core.merge import reference_swap
from ..runtime.stochastic import SchedulerWrapper

Swap = Callable[..., torch.Tensor]
"""(views, reference, mask, index) -> views, as `core.sampler.Joint.swap`."""


@dataclass(frozen=True)
class Guidance:
    """A reference guidance: its swap, whether it is linear in the noises, and whether it needs each step's x0
    estimates (then `bind` wraps the scheduler to record them)."""

    swap: Swap | Callable[[deque], Swap]
    linear: bool = True
    needs_x0: bool = False

    def bind(self, scheduler: Any) -> tuple[Any, Swap]:
        """The scheduler to run and the swap to use with it."""
        if not self.needs_x0:
            return scheduler, self.swap
        records: deque = deque(maxlen=2)
        return X0Recorder(scheduler, records.append), self.swap(records)


class X0Recorder(SchedulerWrapper):
    """A deterministic DDIM scheduler whose every step hands `record` its x0 estimate and the coefficient of x0 in
    x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps (the record is a plain function: copies share it)."""

    def __init__(self, scheduler: Any, record: Callable[[tuple[torch.Tensor, float]], None]):
        super().__init__(scheduler)
        self.record = record

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, **kwargs: Any) -> Any:
        scheduler = self.scheduler
        if kwargs.get("eta", 0.0) or not hasattr(scheduler, "final_alpha_cumprod"):
            raise ValueError("The x0 swap is measured with deterministic DDIM only.")
        out = scheduler.step(model_output, timestep, sample, **kwargs)
        prev = int(timestep) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
        abar = scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod
        self.record((out.pred_original_sample, math.sqrt(float(abar))))
        return out


def soft_swap(share: float) -> Swap:
    """Move the swapped frames `share` of the way to the reference, keeping the rest of each frame's own."""

    def swap(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: Any = None) -> torch.Tensor:
        return views + share * (reference_swap(views, reference, mask, index) - views)

    return swap


def lowpass_swap(width: int) -> Swap:
    """In each view's middle, the reference's low frequencies (a `width`-frame moving average along the frames) with
    the view's own high ones."""

    def smooth(x: torch.Tensor) -> torch.Tensor:
        flat = x.movedim(2, -1).reshape(-1, 1, x.shape[2])
        out = torch.nn.functional.avg_pool1d(flat, width, 1, width // 2, count_include_pad=False)
        return out.reshape(*x.movedim(2, -1).shape).movedim(-1, 2)

    def swap(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: Any = None) -> torch.Tensor:
        middle = mask | mask.roll(1, dims=2)  # the alternating mask's whole middle region
        full = reference_swap(views, reference, middle, index)
        grouped = middle.to(views.device)[None].expand(views.shape[0] // mask.shape[0], *middle.shape).flatten(0, 1)
        return torch.where(grouped, views - smooth(views) + smooth(full), views)

    return swap


def x0_swap(records: deque) -> Swap:
    """Eq. 10 on the denoised estimates: the swapped frames take the reference's x0 and keep the view's own noise
    estimate, x_{t-1} + sqrt(abar_prev) (x0_ref - x0_view), so no frame's noise is overwritten (this is also the
    swapped frame re-noised with the view's own noise at its level)."""

    def swap(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: Any = None) -> torch.Tensor:
        (x0_views, coefficient), (x0_reference, _) = records  # the views are stepped first, then the reference
        return views + coefficient * (reference_swap(x0_views, x0_reference, mask, index) - x0_views)

    return swap


def envelope_swap(share: float) -> Swap:
    """The core's envelope guidance (`core.envelope`) on a swapping method's views, the whole view guided."""

    def swap(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: Any = None) -> torch.Tensor:
        return envelope_guidance(views, reference, mask, index, share=share, smooth=8, axis=2)

    return swap


def _matrix_function(matrix: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`function` of a symmetric positive definite matrix (batch of), applied to its eigenvalues."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * function(values.clamp_min(torch.finfo(values.dtype).tiny))[..., None, :]) @ vectors.mT


def channel_covariance_move(views: torch.Tensor, target: torch.Tensor, share: float) -> torch.Tensor:
    """Each view (batch, channels, frames, bins) mixed across its channels so that its channel covariance (over frames
    and bins) moves `share` of the way, in the log-Euclidean sense, to `target`'s: x -> T^1/2 C^-1/2 x, with
    T = exp((1 - share) log C + share log C_target). The second-order statistic md-envelope's spectral envelope
    cannot see (issue 39's channel world)."""
    flat, goal = views.flatten(2), target.flatten(2)
    eye = 1e-6 * torch.eye(views.shape[1], dtype=views.dtype)
    own = flat @ flat.mT / flat.shape[-1] + eye
    theirs = goal @ goal.mT / goal.shape[-1] + eye
    wanted = torch.linalg.matrix_exp((1 - share) * _matrix_function(own, torch.log)
                                     + share * _matrix_function(theirs, torch.log))
    mixing = _matrix_function(wanted, torch.sqrt) @ _matrix_function(own, torch.rsqrt)
    return (mixing @ flat).view_as(views)


def modulation_move(views: torch.Tensor, target: torch.Tensor, share: float, axis: int = 2) -> torch.Tensor:
    """Each view's loudness over time (its log power along `axis`, averaged over the other axes) given a modulation
    spectrum `share` of the way, in log, to `target`'s, keeping the view's own modulation phases: a gain over time,
    x -> x g(t). The mirrored spectrum avoids wrap-around, as `core.envelope` does (issue 39's modulated world)."""
    dims = [d for d in range(1, views.ndim) if d != axis]
    tiny = torch.finfo(views.dtype).tiny
    own = views.pow(2).mean(dims).clamp_min(tiny).log()
    theirs = target.pow(2).mean(dims).clamp_min(tiny).log()
    size = own.shape[-1]

    def spectrum(loudness: torch.Tensor) -> torch.Tensor:
        centred = loudness - loudness.mean(-1, keepdim=True)
        return torch.fft.rfft(torch.cat([centred, centred.flip(-1)], -1), dim=-1)

    mine, goal = spectrum(own), spectrum(theirs)
    smooth = torch.nn.functional.avg_pool1d
    level = [smooth(s.abs()[:, None], 3, 1, 1, count_include_pad=False)[:, 0] + tiny for s in (mine, goal)]
    moved = torch.fft.irfft(mine * (level[1] / level[0]).pow(share), n=2 * size, dim=-1)[..., :size]
    centred = own - own.mean(-1, keepdim=True)
    shape = [views.shape[0]] + [1] * (views.ndim - 1)
    shape[axis] = size
    return views * ((moved - centred) / 2).exp().view(shape)


def envelope_and(kind: str, share: float) -> Swap:
    """md-envelope's guidance followed by a move of the channel covariance or of the modulation spectrum toward the
    reference's, the same share."""

    def swap(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: Any = None) -> torch.Tensor:
        guided = envelope_guidance(views, reference, mask, index, share=share, smooth=8, axis=2)
        target = reference_swap(guided, reference, torch.ones_like(mask, dtype=torch.bool), index)
        if kind == "channels":
            return channel_covariance_move(guided, target, share)
        return modulation_move(guided, target, share)

    return swap


#: Every candidate guidance the lab compares, by the name a `Setting` gives it (besides each method's own).
GUIDANCES = {
    "soft 0.5": Guidance(soft_swap(0.5)),
    "soft 0.25": Guidance(soft_swap(0.25)),
    "low-pass 5": Guidance(lowpass_swap(5)),
    "low-pass 9": Guidance(lowpass_swap(9)),
    "x0": Guidance(x0_swap, needs_x0=True),
    "envelope 1": Guidance(envelope_swap(1.0), linear=False),
    "envelope 0.5": Guidance(envelope_swap(0.5), linear=False),
    "envelope+channels 0.25": Guidance(envelope_and("channels", 0.25), linear=False),
    "envelope+modulation 0.25": Guidance(envelope_and("modulation", 0.25), linear=False),
}


def _guided_toward(model: Callable, scheduler: Any, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor,
                   out: torch.Tensor, rows: Any, residual: Callable[[torch.Tensor], torch.Tensor],
                   weight: float) -> torch.Tensor:
    """The model's output `out` with the noise prediction of `rows` moved along the score of a Gaussian likelihood,
    variance 1 - abar (Pi-GDM's for unit-variance data), of what `residual(x0)` compares with the rows' x0 estimate:
    eps - weight sqrt(1 - abar) grad_x log p. DDIM's epsilon only."""
    abar = scheduler.alphas_cumprod[int(t)].double()
    with torch.enable_grad():
        picked = x[rows].detach().requires_grad_(True)
        x0 = (picked - (1 - abar).sqrt() * model(picked, t, ids[rows])) / abar.sqrt()
        loss = 0.5 * residual(x0).pow(2).sum() / (1 - abar)
        score, = torch.autograd.grad(-loss, picked)
    out = out.clone()
    out[rows] = out[rows] - weight * (1 - abar).sqrt() * score.to(out)
    return out


def reconstruction_guided(model: Callable, scheduler: Any, layout: Any, kept: Any, weight: float) -> Callable:
    """Reconstruction guidance toward kept frames (Ho et al., 2022, for video extension): each view that holds kept
    frames has its noise prediction moved along the conditional score of a Gaussian likelihood of the kept frames
    around the denoiser's x0 estimate (`_guided_toward`). A continuation candidate; DDIM's epsilon only."""
    windows = layout.indices  # (views, W) canvas frames of each view
    held = kept.exact[windows]

    def guided(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = model(x, t, ids)
        rows = [r for r, v in enumerate(ids.tolist()) if v < layout.num_views and bool(held[v].any())]
        if not rows:
            return out
        views = ids[rows]
        target = kept.content.movedim(kept.axis, 0)[windows[views]].movedim(1, kept.axis + 1)[:, 0]
        mask = held[views].view(len(rows), *[1] * (kept.axis - 1), layout.window, *[1] * (x.ndim - kept.axis - 1))
        return _guided_toward(model, scheduler, x, t, ids, out, rows,
                              lambda x0: mask * (target.to(x0) - x0), weight)

    return guided


def context_guided(model: Callable, scheduler: Any, clean: torch.Tensor, weight: float,
                   until: float = 1.0) -> Callable:
    """Reconstruction guidance toward a block's context (issue 39): the rows of view 0, which holds the block's first
    `clean.shape[2]` frames, have their noise prediction moved along the score of a Gaussian likelihood of the
    previous block's finished frames `clean` (canvases, ...) around the denoiser's x0 estimate of those frames, as
    `reconstruction_guided` does for a kept clip; DDIM's epsilon only. What it buys: the new frames learn, at high
    noise, what the context has already decided (a phase, a style), which replacement and trajectory cannot tell
    them. Only the first `until` of the steps are guided."""
    frames, canvases = clean.shape[2], clean.shape[0]
    guided_steps = round(until * len(scheduler.timesteps))

    def guided(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = model(x, t, ids)
        rows = (ids == 0).nonzero().flatten()
        step = int((scheduler.timesteps == t).nonzero()[0, 0])
        if not len(rows) or step >= guided_steps:
            return out
        target = clean[rows // (x.shape[0] // canvases)].to(torch.float64)
        return _guided_toward(model, scheduler, x, t, ids, out, rows, lambda x0: target - x0[:, :, :frames], weight)

    return guided
