"""A timeline on the canvas: which segment (prompt) each frame belongs to, how each view is conditioned from the
segments it covers, and which segment's reference view it follows. Pure torch, like the rest of the core."""

from __future__ import annotations

import torch

from .layout import ViewLayout


def frame_segments(starts: list[int], length: int, loop: bool) -> torch.Tensor:
    """(length,) segment of every canvas frame: segment s runs from starts[s] to the next start. Frames before the
    first start belong to the first segment, or, when looping, to the last one (it wraps round the end)."""
    frames = torch.arange(length)
    segment = torch.bucketize(frames, torch.tensor(starts), right=True) - 1
    return torch.where(segment < 0, torch.tensor(len(starts) - 1 if loop else 0), segment)


def view_mix(layout: ViewLayout, segment: torch.Tensor, segments: int, transition: str) -> torch.Tensor:
    """(num_views, segments) weights of each segment's conditioning in each view.

    "cut": one-hot, the segment holding the view's centre frame. "blend": each segment's share of the view's frames,
    so a view inside one segment is that segment's alone and a view across a boundary mixes the two by their shares.
    """
    covered = segment[layout.indices]  # (num_views, window)
    if transition == "cut":
        return torch.nn.functional.one_hot(view_reference(layout, segment), segments).float()
    counts = torch.nn.functional.one_hot(covered, segments).sum(1).float()
    return counts / counts.sum(1, keepdim=True)


def view_reference(layout: ViewLayout, segment: torch.Tensor) -> torch.Tensor:
    """(num_views,) the segment at each view's centre frame: whose reference view the view follows."""
    return segment[layout.indices[:, layout.window // 2]]
