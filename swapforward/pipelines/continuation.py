"""How a block of a stream continues the block before it: its first `frames` canvas frames (the context) are the
previous block's last ones, and the question is how the new block's views are conditioned on them.

- `trajectory` (the default): at every step the context frames hold the previous block's own state at that step
  (its x_T, then its canvas after each step), recorded while it ran. The new block's first views see, at every noise
  level, what the previous block's last views saw: the continuation is one more view of the same joint diffusion,
  merged in one direction, and the context ends as the previous latent exactly. Nothing is re-noised with fresh
  noise, so no evidence about the style is thrown away at the high noise levels where the style is decided.
- `replace`: blended diffusion / RePaint's replacement, as for a user's kept clip (`pipelines.kept`): the previous
  final latent re-noised with the new block's noise to each level. The lab (docs/lab.md, "Streams") shows that it
  forgets the style after a block and leaves a seam.

A `Continuation` is used where the joint loop takes kept frames: `start` on x_T, `after_step` after every step. It
also records the block's own last `frames` frames at every level, which the next block continues from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .kept import edge_ramp, noised

#: How a block is conditioned on the previous block's frames.
CONTINUATIONS = ("trajectory", "replace")


@dataclass
class Continuation:
    """The context of one block (none for the first) and the record of its own tail for the next."""

    axis: int
    frames: int
    """Context frames: the previous block's last `frames` frames are this block's first."""
    steps: int
    previous: torch.Tensor | None = None
    """(steps + 1, batch, ...) the previous block's last `frames` frames at x_T and after each step (trajectory), or
    (1, batch, ...) its final latent there (replace); None for the first block."""
    mode: str = "trajectory"
    fade: int = 0
    """replace: frames over which the replacement weight ramps down into the new frames (as a kept clip's edge)."""
    record: list[torch.Tensor | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in CONTINUATIONS:
            raise ValueError(f"continuation must be one of {CONTINUATIONS}, got {self.mode!r}")
        self.record = [None] * (self.steps + 1)

    def start(self, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> torch.Tensor:
        """x_T with the context in place, its own tail recorded."""
        return self._recorded(0, self._continued(0, canvas, noise, scheduler))

    def after_step(self, k: int, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> torch.Tensor:
        """The canvas after step k with the context at the previous block's level after step k."""
        return self._recorded(k + 1, self._continued(k + 1, canvas, noise, scheduler))

    def tail(self) -> torch.Tensor:
        """What the next block continues from: this block's recorded tail (trajectory), or its final tail (replace)."""
        if any(frame is None for frame in self.record):
            raise RuntimeError("the block has not run every step")
        return torch.stack(self.record) if self.mode == "trajectory" else self.record[-1][None]

    def _continued(self, index: int, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> torch.Tensor:
        if self.previous is None:
            return canvas
        head = canvas.narrow(self.axis, 0, self.frames)
        if self.mode == "trajectory":
            value = self.previous[index].to(canvas)
        else:
            value = noised(scheduler, self.previous[0].to(canvas), noise.narrow(self.axis, 0, self.frames).to(canvas),
                           index)
        if self.fade and (self.mode == "trajectory" or index < self.steps):  # ramped into the new frames
            mask = torch.arange(self.frames + 1) < self.frames
            shape = [1] * canvas.ndim
            shape[self.axis] = self.frames
            weight = edge_ramp(mask, self.fade, False)[: self.frames].to(canvas).view(shape)
            value = head + weight * (value - head)
        out = canvas.clone()
        out.narrow(self.axis, 0, self.frames).copy_(value)
        return out

    def _recorded(self, index: int, canvas: torch.Tensor) -> torch.Tensor:
        length = canvas.shape[self.axis]
        self.record[index] = canvas.narrow(self.axis, length - self.frames, self.frames).detach().clone()
        return canvas
