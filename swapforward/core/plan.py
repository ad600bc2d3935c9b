"""The plan of Algorithm 1 for one run: how many steps follow the reference, where it is swapped in, and the merge
weights. A pure function of the layout, the method and the step count, computed once before the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from .envelope import ENVELOPE_SHARE, envelope_guidance, envelope_smoothing
from .layout import ViewLayout
from .merge import reference_swap, reference_swap_mask
from .methods import Method


@dataclass(frozen=True)
class JointPlan:
    """What `joint_denoise` needs besides the model: Eq. 4's weights and Eq. 10's schedule and mask."""

    weights: torch.Tensor
    """(num_views, window) merge weights W_i (binary for the Self-Loop Swap)."""
    guide_steps: int
    """The first steps that denoise and swap in the reference view; 0 for methods without one."""
    reference_mask: torch.Tensor | None
    """Where the guidance acts inside each view: Eq. 10's mask, or whole views for the envelope (None without guide
    steps)."""
    guidance: Callable[..., torch.Tensor] = reference_swap
    """(views, reference, mask, index) -> views: Eq. 10's swap, or the method's own guidance."""


def plan_joint(
    method: Method,
    layout: ViewLayout,
    steps: int,
    *,
    view_shape: tuple[int, ...],
    axis: int,
    swap_axis: int,
    r_guide: float,
    reference_phase: str,
    swap_interval: int = 1,
    tail_shift: int = 0,
    envelope_share: float = ENVELOPE_SHARE,
) -> JointPlan:
    """The plan for `steps` denoising steps of views of `view_shape` laid out along `axis`.

    The reference guidance runs in the *first* round(r_guide * steps) steps (the paper's text: "the initial 60 steps"
    of 200 for r_guide = 0.3; its Algorithm 1's `t >= r_guide T` contradicts this) and only when there is more than one
    view: a single view is the plain model. A method with the envelope guidance acts on whole views along `axis`.
    """
    weights = method.weights(layout, swap_interval, tail_shift)
    guide_steps = round(r_guide * steps) if method.reference and layout.num_views > 1 else 0
    mask, guidance, ndim = None, reference_swap, len(view_shape)
    if guide_steps > 0 and method.guidance == "envelope":
        shape = [layout.num_views] + [1] * (ndim - 1)
        mask = torch.ones(shape, dtype=torch.bool)
        guidance = partial(envelope_guidance, share=envelope_share, smooth=envelope_smoothing(layout.window),
                           axis=axis % ndim)
    elif guide_steps > 0:
        mask = reference_swap_mask(layout, ndim, axis, swap_axis, view_shape[swap_axis % ndim], swap_interval,
                                   phase=reference_phase)
    return JointPlan(weights=weights, guide_steps=guide_steps, reference_mask=mask, guidance=guidance)
