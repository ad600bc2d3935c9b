"""Merge operators: how the denoised views become one canvas again, and the reference-guided swap.

Every merge is the paper's Eq. 4, J = sum_i F_i^-1(W_i * X_i) / sum_i F_i^-1(W_i), with per-view weights W_i
along the long axis:

- `average_weights`: W_i = 1 (MultiDiffusion, MD);
- `triangular_weights`: W_i a triangular window (MD*, "enhanced MD with triangular windows");
- `swap_weights`: W_i binary, the Self-Loop Latent Swap of Eq. 7 with the swap mask of Eq. 9, so each canvas
  frame is copied, not averaged, from exactly one view.

`reference_swap` is the Reference-Guided Latent Swap of Eq. 10.

Convention (the paper's Eq. 7 and Algorithm 1 disagree on which view the mask selects): we follow Algorithm 1,
Swap(Left(X^{i+1}), Right(X^i)) = W * Left(X^{i+1}) + (1 - W) * Right(X^i) with W from Eq. 9, so in every
overlap the first `interval` frames come from the left view, the next `interval` from the right view, and so on.
"""

from __future__ import annotations

import torch

from .layout import ViewLayout


def swap_mask(length: int, interval: int = 1) -> torch.Tensor:
    """Eq. 9: v^(i) = 1/2 [1 - (-1)^floor((i-1)/w)], i = 1..length; 0 for the first w frames, 1 for the next w."""
    i = torch.arange(1, length + 1)
    return ((i - 1) // interval) % 2


def average_weights(layout: ViewLayout) -> torch.Tensor:
    """MD: every view counts equally wherever it covers the canvas."""
    return torch.ones(layout.num_views, layout.window)


def triangular_weights(layout: ViewLayout) -> torch.Tensor:
    """MD*: a triangular window peaking at the view's centre, never zero, so every frame keeps a weight.

    Where a single view covers a frame its weight cancels out; it is set to 1 there so that such frames are
    copied exactly (a one-view run reproduces the base model bit for bit).
    """
    pos = (torch.arange(layout.window) + 0.5) / layout.window
    tri = (1 - (2 * pos - 1).abs()).expand(layout.num_views, -1)
    return torch.where(layout.middle, torch.ones_like(tri), tri)


def swap_weights(layout: ViewLayout, interval: int = 1, tail_shift: int = 0) -> torch.Tensor:
    """Self-Loop Latent Swap (Eq. 7 with Eq. 9): binary weights giving each canvas frame one owning view.

    In an overlap of two views, with j the frame's position in the overlap, the owner is the left view when
    v^(j+1) of Eq. 9 is 0 and the right view when it is 1. When looping, the last view's overlap with the first
    (across the canvas end) is swapped the same way. Where more than two views cover a frame (overlap > 0.5),
    the owner cycles through them in left-to-right order with the same interval.

    `tail_shift` is SaFa+ (appendix 5.1): a view's last `tail_shift` frames are never used where another view
    covers them, so each overlap's swap region ends `tail_shift` frames early and the rest comes from the right view.

    Memory and time are linear in the canvas: a frame is covered by at most K views (K = the largest coverage),
    consecutive in start order, so each frame looks only at its K candidates.
    """
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    starts = torch.tensor(layout.starts)
    n, length, window = layout.num_views, layout.length, layout.window
    frames = torch.arange(length)
    # The last view starting at or before each frame (cyclically before the first view's start when looping).
    last = torch.searchsorted(starts, frames, right=True) - 1
    candidates = min(int(layout.coverage.max()), n)
    view = last[None, :] - torch.arange(candidates)[:, None]  # (K, length): the K latest-started views
    valid = view >= 0 if not layout.loop else torch.ones_like(view, dtype=torch.bool)
    view = view % n
    offset = frames[None, :] - starts[view]
    if layout.loop:
        offset = offset % length
    covers = valid & (offset >= 0) & (offset < window)
    if tail_shift > 0:
        usable = covers & (offset < window - tail_shift)
        covers = torch.where(usable.any(0, keepdim=True), usable, covers)
    # Rank 0 is the leftmost (earliest started) covering view: the candidates run from the latest started to the
    # earliest, so a covering candidate's rank is the number of covering candidates after it (linear memory).
    rank = covers.flip(0).cumsum(0).flip(0) - covers.long()
    count = covers.sum(0)
    j = torch.where(covers, offset, torch.full_like(offset, length + window)).min(0).values
    owner_rank = (j // interval) % count
    owns = covers & (rank == owner_rank[None, :])
    owner = view.gather(0, owns.float().argmax(0, keepdim=True))[0]  # (length,) the owning view of each frame
    return (owner[layout.indices] == torch.arange(n)[:, None]).float()


def merge_views(views: torch.Tensor, layout: ViewLayout, weights: torch.Tensor, axis: int) -> torch.Tensor:
    """Eq. 4: write the stacked views (B * n, ..., window, ...) of B canvases back as weighted means (B, ..., length,
    ...), in one scatter: every view's weighted frames are added in view order, then divided by the summed weights."""
    return merged(*merge_sums(views, layout, weights, axis), axis)


def merged(numerator: torch.Tensor, denominator: torch.Tensor, axis: int) -> torch.Tensor:
    """Eq. 4's weighted mean from its sums: the numerator divided by the denominator along the long axis."""
    shape = [1] * numerator.ndim
    shape[axis % numerator.ndim] = denominator.shape[0]
    return numerator / denominator.view(shape)


def merge_sums(
    views: torch.Tensor,
    layout: ViewLayout,
    weights: torch.Tensor,
    axis: int,
    first: int = 0,
    count: int | None = None,
    numerator: torch.Tensor | None = None,
    denominator: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4's numerator sum_i F_i^-1(W_i * X_i) over canvases (B, ..., length, ...) and its denominator (length,),
    for the `count` views from `first` on (all by default), stacked in `views` (B * count, ..., window, ...); added
    into `numerator` and `denominator` when given (segments of views merged one after another, in view order)."""
    m = layout.num_views - first if count is None else count
    return merge_sums_at(views, layout, weights, axis, torch.arange(first, first + m), numerator, denominator)


def merge_sums_at(
    views: torch.Tensor,
    layout: ViewLayout,
    weights: torch.Tensor,
    axis: int,
    index: torch.Tensor,
    numerator: torch.Tensor | None = None,
    denominator: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`merge_sums` for the views `index` (m,), in that order, stacked in `views` (B * m, ..., window, ...): each
    frame's sum adds its views in the order given (one process's frames and its neighbours' border views)."""
    axis = axis % views.ndim
    m = index.numel()
    grouped = views.view(-1, m, *views.shape[1:])
    w = weights[index].to(device=views.device, dtype=views.dtype)
    w_shape = [1, m] + [1] * (views.ndim - 1)
    w_shape[axis + 1] = layout.window
    source = (grouped * w.view(w_shape)).movedim(1, axis).flatten(axis, axis + 1)
    idx = layout.indices[index].flatten().to(views.device)
    shape = list(source.shape)
    shape[axis] = layout.length
    numerator = views.new_zeros(shape) if numerator is None else numerator
    denominator = views.new_zeros(layout.length) if denominator is None else denominator
    return numerator.index_add_(axis, idx, source), denominator.index_add_(0, idx, w.flatten())


def reference_swap_mask(
    layout: ViewLayout, ndim: int, axis: int, swap_axis: int, swap_axis_size: int, interval: int = 1, *,
    phase: str,
) -> torch.Tensor:
    """Where Eq. 10 takes the reference: W_refer of Eq. 9 inside each view's middle (non-overlap) region.

    Along the long axis (`swap_axis == axis`, audio frames) the mask alternates over the middle frames by `phase`:
    "local" counts the view's own frame index, so every view takes the same frames of the reference; "middle" counts
    from the view's first middle frame (Eq. 9's index read literally: the phase then depends on the parity of the
    view's left overlap); "alternate" is "local" shifted by `interval` per view, so neighbours take complementary
    frames. Along another axis (image rows) it alternates over that axis, for whole rows of the middle region.
    Returns a bool tensor broadcastable to the stacked views (n, ...).
    """
    axis, swap_axis = axis % ndim, swap_axis % ndim
    middle = layout.middle
    shape = [layout.num_views] + [1] * (ndim - 1)
    shape[axis] = layout.window
    if swap_axis == axis:
        if phase not in ("local", "middle", "alternate"):
            raise ValueError(f"Unknown reference phase {phase!r}; use local, middle or alternate.")
        rank = torch.arange(layout.window).expand_as(middle)
        if phase == "middle":
            rank = middle.long().cumsum(1) - 1
        elif phase == "alternate":
            rank = rank + interval * torch.arange(layout.num_views)[:, None]
        return (middle & (((rank // interval) % 2) == 1)).view(shape)
    alt_shape = [1] * ndim
    alt_shape[swap_axis] = swap_axis_size
    alt = swap_mask(swap_axis_size, interval).bool().view(alt_shape)
    return middle.view(shape) & alt


def reference_swap(
    views: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 10: M_i = W_refer * Middle(X^0) + (1 - W_refer) * Middle(X^i), with X^0 the reference view.

    `views` (B * n, ...) are the n views of B canvases and `mask` (n, ...) the per-view W_refer of
    `reference_swap_mask`. `reference` holds each canvas's reference view (B, ...), or with `index` (n,) R of them
    per canvas (B * R, ...), view i taking reference `index[i]` (a timeline's segment references).
    """
    grouped = views.view(-1, mask.shape[0], *views.shape[1:])
    if index is None:
        chosen = reference[:, None]
    else:
        chosen = reference.view(grouped.shape[0], -1, *reference.shape[1:])[:, index.to(reference.device)]
    return torch.where(mask.to(views.device)[None], chosen, grouped).flatten(0, 1)


#: The merge operators by the names methods give them: (layout, swap_interval, tail_shift) -> (views, window) weights.
MERGE_WEIGHTS = {
    "average": lambda layout, interval=1, tail_shift=0: average_weights(layout),
    "triangular": lambda layout, interval=1, tail_shift=0: triangular_weights(layout),
    "swap": swap_weights,
}
