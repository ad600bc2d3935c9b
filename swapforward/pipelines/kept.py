"""The user's own sound or picture in the joint loop: regions of the canvas held to its latent, and an observed
reference view.

Kept regions follow blended diffusion / RePaint's replacement step: after every step the kept frames of the canvas
are replaced by the input's latent noised to the level the canvas has reached (the scheduler's own `add_noise`, or
`scale_noise` for flow matching), with weights that ramp up over `fade` frames at edges that border generated
frames, so the generation grows into the input; after the last step the kept frames are the input's latent exactly.
RePaint's resampling (going back `jump` steps with fresh noise and running them again) is offered for DDIM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SwapForwardError


def noised(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """`x0` at the noise level of the canvas before step `index` (x0 itself after the last step)."""
    timesteps = scheduler.timesteps
    if index >= len(timesteps):
        return x0.expand_as(noise)
    t = timesteps[index : index + 1]
    if hasattr(scheduler, "scale_noise"):  # flow matching: (1 - sigma) x0 + sigma noise
        return scheduler.scale_noise(x0.expand_as(noise), t, noise)
    return scheduler.add_noise(x0.expand_as(noise), noise, t.expand(noise.shape[0]))


def edge_ramp(kept: torch.Tensor, fade: int, loop: bool) -> torch.Tensor:
    """(length,) weights: 1 on kept frames, rising as d / (fade + 1) on the kept frames d <= `fade` away from a frame
    that is not kept (circularly when looping), 0 elsewhere."""
    weight = kept.float()
    if fade <= 0 or kept.all() or not kept.any():
        return weight
    free, assigned = ~kept, ~kept.clone()
    for d in range(1, fade + 1):
        if loop:
            near = free.roll(d) | free.roll(-d)
        else:
            near = torch.zeros_like(free)
            near[d:] |= free[:-d]
            near[:-d] |= free[d:]
        new = near & ~assigned
        weight[new] = d / (fade + 1)
        assigned |= new
    return weight


@dataclass
class Kept:
    """Canvas frames held to `content` (the input's latent placed on the canvas, zeros elsewhere)."""

    content: torch.Tensor
    """(1, ...) canvas-shaped latent."""
    exact: torch.Tensor
    """(length,) bool: the kept frames, the input's latent exactly after the last step."""
    weight: torch.Tensor
    """(length,) replacement weights while denoising (`edge_ramp`)."""
    axis: int

    def _shaped(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        shape = [1] * like.ndim
        shape[self.axis] = values.shape[0]
        return values.view(shape).to(like.device)

    def start(self, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> torch.Tensor:
        """The canvas x_T with the kept frames at the first level."""
        return self.blend(canvas, noise, scheduler, 0)

    def after_step(self, k: int, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any) -> torch.Tensor:
        """The canvas after step `k` with the kept frames replaced (exactly, after the last step)."""
        if k + 1 >= len(scheduler.timesteps):
            return torch.where(self._shaped(self.exact, canvas), self.content.to(canvas), canvas)
        return self.blend(canvas, noise, scheduler, k + 1)

    def blend(self, canvas: torch.Tensor, noise: torch.Tensor, scheduler: Any, index: int) -> torch.Tensor:
        target = noised(scheduler, self.content.to(canvas), noise.to(canvas), index)
        weight = self._shaped(self.weight, canvas).to(canvas.dtype)
        full = self._shaped(self.weight == 1, canvas)
        return torch.where(full, target, weight * target + (1 - weight) * canvas)


@dataclass
class Media:
    """What a request's own input brings to a run: kept frames, an observed reference, and how the output splices the
    input's samples or pixels back in."""

    kept: Kept | None = None
    reference: torch.Tensor | None = None
    splice: Any = None


def renoiser(scheduler: Any, generator: Any) -> Any:
    """RePaint's step back in time for DDPM-family schedulers without step history: from the level before step
    `a` to the level before step `b` < `a`, x_b = sqrt(abar_b / abar_a) x_a + sqrt(1 - abar_b / abar_a) noise."""
    if not hasattr(scheduler, "alphas_cumprod") or hasattr(scheduler, "_step_index"):
        raise SwapForwardError(f"RePaint's resampling needs a scheduler without step history (ddim), not "
                               f"{type(scheduler).__name__}; use --scheduler ddim or repaint_resample 0.")
    draw = generator[0] if isinstance(generator, list) else generator

    def renoise(canvas: torch.Tensor, a: int, b: int) -> torch.Tensor:
        noise = torch.randn(canvas.shape, generator=draw, dtype=torch.float32).to(canvas.device)
        return step_back(scheduler, canvas, a, b, noise)

    return renoise


def step_back(scheduler: Any, canvas: torch.Tensor, a: int, b: int, noise: torch.Tensor) -> torch.Tensor:
    """x_b = sqrt(abar_b / abar_a) x_a + sqrt(1 - abar_b / abar_a) noise, from the level before step `a` to the
    level before step `b` < `a`, computed in at least float32 (the lab's float64 stays float64)."""
    dtype = torch.promote_types(canvas.dtype, torch.float32)
    alphas, timesteps = scheduler.alphas_cumprod.to(dtype), scheduler.timesteps

    def level(index: int) -> torch.Tensor:
        return alphas[timesteps[index]] if index < len(timesteps) else torch.tensor(1.0, dtype=dtype)

    ratio = (level(b) / level(a)).to(canvas.device)
    return (ratio.sqrt() * canvas.to(dtype) + (1 - ratio).sqrt() * noise.to(canvas.device, dtype)).to(canvas.dtype)
