"""Stochastic scheduler steps with their noise given, so that overlapping views share one noise per canvas frame.

A stochastic step (DDIM with eta > 0, the rectified-flow "ping-pong" step of distilled models) draws fresh noise.
Drawn per view, the noises in an overlap are independent and averaging methods shrink their variance (two views:
half of it); drawn once per canvas frame and cropped, every view sees the same noise at a shared frame. DDIM takes
it as `variance_noise`; `PingPong` gives diffusers' `FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)` the
same argument.
"""

from __future__ import annotations

from typing import Any

import torch


class SchedulerWrapper:
    """A scheduler whose every attribute but those a subclass sets or overrides (its `step`) is the wrapped one's."""

    def __init__(self, scheduler: Any):
        self.scheduler = scheduler

    def __getattr__(self, name: str) -> Any:
        if name == "scheduler":  # not yet set (while copying): no recursion
            raise AttributeError(name)
        return getattr(self.scheduler, name)


class PingPong(SchedulerWrapper):
    """A stochastic `FlowMatchEulerDiscreteScheduler` whose `step` also takes `variance_noise`: x0 = x - sigma v, then
    x' = (1 - sigma') x0 + sigma' noise, the scheduler's own step with the caller's noise instead of a fresh draw.

    Every other attribute is the wrapped scheduler's; without `variance_noise` the step is the scheduler's own.
    """

    #: The scheduler draws its noise in float32 (it steps an upcast sample); draws for it must too, to be equal.
    noise_dtype = torch.float32

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             variance_noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
             return_dict: bool = True) -> Any:
        from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
            FlowMatchEulerDiscreteSchedulerOutput,
        )

        scheduler = self.scheduler
        if variance_noise is None:
            return scheduler.step(model_output, timestep, sample, generator=generator, return_dict=return_dict)
        if scheduler.step_index is None:
            scheduler._init_step_index(timestep)
        sample = sample.to(torch.float32)
        sigma, sigma_next = scheduler.sigmas[scheduler.step_index], scheduler.sigmas[scheduler.step_index + 1]
        x0 = sample - sigma * model_output
        prev_sample = ((1.0 - sigma_next) * x0 + sigma_next * variance_noise.to(torch.float32)).to(model_output.dtype)
        scheduler._step_index += 1
        return FlowMatchEulerDiscreteSchedulerOutput(prev_sample=prev_sample) if return_dict else (prev_sample,)


def with_given_noise(scheduler: Any) -> Any:
    """`scheduler`, wrapped in `PingPong` when it is a stochastic flow-matching Euler scheduler."""
    stochastic = scheduler.config.get("stochastic_sampling", False)
    if stochastic and type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler":
        return PingPong(scheduler)
    return scheduler


def draws_noise(scheduler: Any, eta: float) -> bool:
    """Whether `scheduler.step` draws noise that the caller should give it (`variance_noise`): DDIM-like schedulers
    with eta > 0, and the ping-pong step."""
    import inspect

    if isinstance(scheduler, PingPong):
        return True
    return bool(eta) and "variance_noise" in inspect.signature(scheduler.step).parameters
