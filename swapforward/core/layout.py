"""View layout: how window-sized views cover a long latent along one axis (the paper's mappings F_i).

A layout is plain data (canvas length, window, view starts, loop flag). Views are read from the canvas with
`crop` and written back by the merge operators in `merge.py`. With `loop`, the canvas is circular: view
indices wrap around its end, so the last view overlaps the first and the output joins end to start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch


@dataclass(frozen=True)
class ViewLayout:
    """Window-sized views over a canvas of `length` frames; `starts[i]` is the first frame of view i."""

    length: int
    window: int
    starts: tuple[int, ...]
    loop: bool = False

    @classmethod
    def build(
        cls,
        length: int,
        window: int,
        overlap: float | None = None,
        stride: int | None = None,
        loop: bool = False,
    ) -> ViewLayout:
        """Cover `length` frames with views of `window` frames, `overlap` (rate) or `stride` (frames) apart.

        The fewest views whose neighbours overlap by at least `window - stride` frames, spread evenly: without loop
        n = ceil((length - window) / stride) + 1 views start at round(i * (length - window) / (n - 1)), the first at
        0 and the last at the end, so every overlap is within one frame of the others and none is a near-duplicate.
        With loop, n = ceil(length / stride) views are spread evenly round the circle (starts round(i * length / n)),
        the wrap-around overlap included. A canvas no longer than the window is one view of the canvas's own length.
        """
        if length < 1 or window < 1:
            raise ValueError(f"length and window must be >= 1 frame, got {length} and {window}")
        if (overlap is None) == (stride is None):
            raise ValueError("give exactly one of overlap and stride")
        if stride is None:
            stride = stride_for(window, overlap)
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be in [1, window={window}], got {stride}")
        if loop:
            window = min(window, length)
            stride = min(stride, max(1, window - 1)) if length > 1 else 1
            n = max(2, math.ceil(length / stride)) if length > 1 else 1
            return cls(length=length, window=window, starts=_spread(length, n, 0), loop=True)
        if length <= window:
            return cls(length=length, window=length, starts=(0,), loop=False)
        n = math.ceil((length - window) / stride) + 1
        return cls(length=length, window=window, starts=_spread(length - window, n - 1, 1), loop=False)

    @property
    def num_views(self) -> int:
        return len(self.starts)

    @cached_property
    def indices(self) -> torch.Tensor:
        """(num_views, window) canvas frame of every view frame (wrapped modulo length when looping)."""
        idx = torch.tensor(self.starts)[:, None] + torch.arange(self.window)[None, :]
        return idx % self.length if self.loop else idx

    @cached_property
    def coverage(self) -> torch.Tensor:
        """(length,) number of views covering each canvas frame; never zero."""
        return torch.bincount(self.indices.flatten(), minlength=self.length)

    @cached_property
    def middle(self) -> torch.Tensor:
        """(num_views, window) bool: view frames no other view covers (the paper's non-overlap region M_i)."""
        return self.coverage[self.indices] == 1

    def crop(self, canvas: torch.Tensor, axis: int) -> torch.Tensor:
        """Stack the views of every canvas along the batch axis, canvas by canvas:
        (B, ..., length, ...) -> (B * num_views, ..., window, ...)."""
        return self.crop_views(canvas, axis, 0, self.num_views)

    def crop_views(self, canvas: torch.Tensor, axis: int, first: int, count: int) -> torch.Tensor:
        """`crop` for the `count` views from `first` on: (B, ..., length, ...) -> (B * count, ..., window, ...)."""
        axis = axis % canvas.ndim
        idx = self.indices[first:first + count].flatten().to(canvas.device)
        views = canvas.index_select(axis, idx).unflatten(axis, (count, self.window))
        return views.movedim(axis, 1).flatten(0, 1)


def stride_for(window: int, overlap: float) -> int:
    """The stride between neighbouring views of `window` frames that overlap by the rate `overlap`."""
    if not 0 < overlap < 1:
        raise ValueError(f"overlap must be in (0, 1), got {overlap}")
    return max(1, min(window - 1, round(window * (1 - overlap)))) if window > 1 else 1


def _spread(span: int, parts: int, closed: int) -> tuple[int, ...]:
    """parts + closed starts at round(i * span / parts) (halves up), i = 0 .. parts - 1 + closed: evenly spread, so
    neighbours differ by floor or ceil of span / parts."""
    return tuple((2 * i * span + parts) // (2 * parts) for i in range(parts + closed))
