"""The paper's other baselines as plug-ins of the joint loop: MAD (merged attention) and SyncDiffusion (LPIPS
gradient). Each is a `Baseline`: the joint runner asks it to check the model, wraps the loop in its `running`
context, lets it `prepare` the views before each step and tells it when a step is done, without branching on which
baseline it is."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from ..core.layout import ViewLayout
from ..core.sampler import Denoiser


@dataclass(frozen=True)
class LoopContext:
    """What a baseline may use while the loop runs."""

    adapter: Any
    scheduler: Any
    denoiser: Denoiser
    layout: ViewLayout
    view_shape: tuple[int, ...]
    axis: int
    canvases: int


class Baseline:
    """What a baseline adds to the joint loop; this base adds nothing."""

    one_call: str | None = None
    """Why every view must be in one denoiser call (the sentence shown when that runs out of memory), or None."""

    def check(self, adapter: Any, scheduler: Any) -> None:
        """Refuse, in one sentence, a model or scheduler the baseline cannot work with."""

    def running(self, loop: LoopContext) -> AbstractContextManager:
        """A context around the whole loop (MAD's attention processors)."""
        return nullcontext()

    def after_step(self, k: int) -> None:
        """Step `k` (from 0) is done."""

    def prepare(self, k: int, t: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The views (B * n, canvas by canvas) to denoise at step `k`."""
        return views


def baseline_for(request: Any, steps: int, layout: ViewLayout, lpips: torch.nn.Module | None) -> Baseline | None:
    """The baseline plug-in of `request.method` for a run of `steps` steps; None for the merge-only methods, and for
    SyncDiffusion when it would act on no step (then it is plain MultiDiffusion)."""
    from ..core.methods import get_method

    return get_method(request.method).plugin_for(request, steps, layout, lpips)
