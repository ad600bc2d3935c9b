"""Reference envelope guidance: this project's own alternative to Eq. 10's swap (not the paper's; docs/method.md).

Eq. 10 copies half of every view's middle frames from the reference view, which buys a consistent style but makes
neighbouring views copy each other and discards those frames' own noise (docs/lab.md). The envelope guidance takes
only the reference's *style*: during the guided steps every view is filtered along the long axis so that its spectral
envelope (each lane's level and spectral shape, its power smoothed over neighbouring frequencies) moves a share of
the way, in log, to the reference's, keeping the view's own phases and fine structure. No frame is copied, no noise
is discarded.

The spectrum is taken of each lane followed by its mirror image (the DCT-II's spectrum), so the filter has no
wrap-around between a view's two ends, and the power is estimated and filtered on that same spectrum, so a view that
already shares the reference's process keeps its expected power.
"""

from __future__ import annotations

import torch

from .merge import reference_swap

#: The share of the way, in log, each view's envelope moves toward the reference's per guided step (the lab's
#: choice: the largest share that keeps MD*'s KL; docs/lab.md).
ENVELOPE_SHARE = 0.25


def envelope_smoothing(window: int) -> int:
    """Half-width, in frequency bins of the mirrored spectrum (window + 1 of them), over which the envelope is
    averaged: an eighth of the band, so the envelope resolves the same spectral detail at every window size."""
    return max(1, round(window / 8))


def mirrored_spectrum(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The rfft along `axis` of each lane followed by its mirror image."""
    return torch.fft.rfft(torch.cat([x, x.flip(axis)], axis), dim=axis)


def spectral_envelope(spectrum: torch.Tensor, smooth: int, axis: int) -> torch.Tensor:
    """Each lane's power averaged over 2 `smooth` + 1 neighbouring frequencies (fewer at the band's ends)."""
    power = spectrum.abs().pow(2).movedim(axis, -1)
    flat = power.reshape(-1, 1, power.shape[-1])
    out = torch.nn.functional.avg_pool1d(flat, 2 * smooth + 1, 1, smooth, count_include_pad=False)
    return out.reshape(power.shape).movedim(-1, axis)


def envelope_guidance(views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
                      index: torch.Tensor | None = None, *, share: float, smooth: int, axis: int) -> torch.Tensor:
    """The stacked views (B * n, ...) with each lane's envelope along `axis` moved `share` of the way (in log) to that
    of its reference's same lane: a filter of gain (E_ref / E_view)^(share / 2). `reference` and `index` are as in
    `merge.reference_swap`; `mask` (n, ...) has one entry per view (the plan's, all true: the guidance acts on whole
    views). Computed in at least float32."""
    size, dtype = views.shape[axis], views.dtype
    work = torch.promote_types(dtype, torch.float32)
    own_views = views.to(work)
    target = reference_swap(own_views, reference.to(work), torch.ones_like(mask, dtype=torch.bool), index)
    own, theirs = mirrored_spectrum(own_views, axis), mirrored_spectrum(target, axis)
    tiny = torch.finfo(work).tiny
    gain = ((spectral_envelope(theirs, smooth, axis) + tiny) / (spectral_envelope(own, smooth, axis) + tiny))
    guided = torch.fft.irfft(own * gain.pow(share / 2), n=2 * size, dim=axis).narrow(axis, 0, size)
    return guided.to(dtype)
