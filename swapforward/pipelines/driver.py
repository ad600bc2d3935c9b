"""The driver of a joint run: the core's step (core.sampler.joint_step) in the run's order, with the pieces the
pipelines add around it (RePaint's steps back in time, the noise of stochastic steps, the per-step hook that
carries the progress bar, kept regions, baselines and the caller's callback, and the saving of the state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.sampler import Denoiser, Joint, LoopState, Reference, StepNoise, assembled, joint_step


@dataclass(frozen=True)
class Run:
    """The loop's pieces around the core's step."""

    order: list[int]
    """The step indices in the order run (RePaint revisits some)."""
    renoise: Callable[[torch.Tensor, int, int], torch.Tensor] | None
    """Back in time from the level before step a to the level before step b < a (RePaint)."""
    observed: Reference | None
    """An observed reference (the user's clip or picture), swapped in at each guided step's level."""
    step_kwargs: dict[str, Any]
    step_noise: StepNoise | None
    on_step: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None]
    """After each step: (k, t, canvas) -> the canvas to continue from, or None."""
    on_state: Callable[[LoopState], None] | None = None
    """After each step: the state, to save it."""


def drive(state: LoopState, denoiser: Denoiser, joint: Joint, run: Run) -> torch.Tensor:
    """Run `run.order` from `state.position` on, one `joint_step` each, and return the denoised canvases (gathered
    from the processes once, at the end, when several share the run)."""
    for position in range(state.position, len(run.order)):
        k = run.order[position]
        if k <= state.done:  # RePaint: back in time to the level before step k
            state.canvas = run.renoise(state.canvas, state.done + 1, k)
        state = joint_step(state, k, denoiser, joint, observed=run.observed, step_kwargs=run.step_kwargs,
                           step_noise=run.step_noise)
        state.position = position + 1
        replaced = run.on_step(k, state.view_schedulers[0].timesteps[k], state.canvas)
        if replaced is not None:
            state.canvas = replaced
        if run.on_state is not None:
            run.on_state(state)
    return assembled(state.canvas, joint)
