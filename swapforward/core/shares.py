"""How a joint run's views are divided into model calls, segments and processes, and what crosses a process's borders.

Model calls take views in batches whose boundaries are fixed in view-index space (views 0..b-1, b..2b-1, ...), so a
call holds the same views whatever the segments or the number of processes: batch composition changes rounding,
and fixed batches make 1, 2, 3 or more processes write the same bytes. A process owns a contiguous run of whole
batches, balanced so that the largest share is at most one batch more than the smallest; its segments (the views
held at once, for memory) are runs of whole batches inside it.

Border-only exchange: a process merges the canvas frames its own views cover. A frame near its borders is also
covered by a neighbour's views (with a loop, the last process's neighbour is the first), so at each step it receives
exactly the stepped views of other processes that cover any of its frames, and sends them theirs. What crosses a
border depends on the window and the overlap, not on the length.
"""

from __future__ import annotations

import math

import torch

from .layout import ViewLayout


def batch_ranges(first: int, count: int, size: int | None) -> list[tuple[int, int]]:
    """(offset, length) within the views [first, first + count) of model calls that start at multiples of `size` in
    view index (one call for all without a size)."""
    if not size:
        return [(0, count)]
    cuts = [0, *(k * size - first for k in range(first // size + 1, math.ceil((first + count) / size))), count]
    return [(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]


def process_shares(views: int, world: int, batch: int) -> list[tuple[int, int]]:
    """Each process's (first view, end) of `views` in batches of `batch`: contiguous, whole batches, the largest
    share at most one batch more than the smallest."""
    batches = math.ceil(views / batch)
    edges = [min(views, (p * batches // world) * batch) for p in range(world + 1)]
    return list(zip(edges, edges[1:], strict=False))


def segments_in(share: tuple[int, int], segment: int | None, batch: int) -> list[tuple[int, int]]:
    """(first view, count) of the segments of a share: runs of `segment` views rounded down to whole batches (at
    least one), the whole share without a segment size."""
    first, end = share
    size = end - first if not segment else max(batch, segment // batch * batch)
    return [(start, min(size, end - start)) for start in range(first, end, max(1, size))]


def covering(layout: ViewLayout, share: tuple[int, int]) -> torch.Tensor:
    """(views,) whether each view covers a frame that the views of `share` cover."""
    frames = torch.zeros(layout.length, dtype=torch.bool)
    frames[layout.indices[share[0]:share[1]].flatten()] = True
    return frames[layout.indices].any(1)


def border_plan(layout: ViewLayout, shares: list[tuple[int, int]]) -> list[list[list[int]]]:
    """plan[p][q]: the views of process q that process p needs to merge its frames (empty for p == q), in order."""
    owner = torch.empty(layout.num_views, dtype=torch.long)
    for q, (first, end) in enumerate(shares):
        owner[first:end] = q
    plan = []
    for p, share in enumerate(shares):
        needed = covering(layout, share).nonzero().flatten()
        plan.append([[int(v) for v in needed if owner[v] == q] if q != p else [] for q in range(len(shares))])
    return plan


def frame_shares(layout: ViewLayout, shares: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The canvas frames each process hands in at the end, [start of its first view, start of the next process's),
    a partition of the canvas that its own views and the views it receives cover."""
    starts = [layout.starts[first] if first < layout.num_views else layout.length for first, _ in shares]
    ends = starts[1:] + [layout.length]
    return [(0 if p == 0 else lo, hi) for p, (lo, hi) in enumerate(zip(starts, ends, strict=True))]
