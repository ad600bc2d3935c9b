"""The denoiser the joint loop calls: the adapter's model with its conditioning, counted, safe under CUDA graphs, and
fed in batches that fit the device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..core.sampler import Denoiser
from ..errors import SwapForwardError
from .memory import DeviceMemory, Model, fit_in_memory, fixed_batches

if TYPE_CHECKING:
    from ..pipelines.conditioning import Conditioning  # the pipelines hand it in; runtime does not import them


@dataclass
class CallCount:
    """What the denoiser did over a run."""

    calls: int = 0
    """Forward calls (each holds a batch of views, doubled for guidance)."""
    evaluations: int = 0
    """Views (and reference views) evaluated over all calls: the work, whatever the batching."""
    largest: int = 0
    """The most views one call held: what bounds the denoiser's memory."""


def counted_model(adapter: Any, conditioning: Conditioning, guidance_scale: float, count: CallCount,
                  interrupt: Callable[[], None] | None = None) -> Model:
    """`adapter.denoise` with each row's conditioning, counting its calls into `count`; `interrupt()` runs first
    (what it raises stops the run between two model calls).

    A compiled denoiser may replay CUDA graphs, whose outputs live in memory that the next call overwrites: each call
    then marks a new graph step and copies its output out.
    """
    compiled = adapter.compiled

    def model(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if interrupt is not None:
            interrupt()
        count.calls += 1
        count.evaluations += x.shape[0]
        count.largest = max(count.largest, x.shape[0])
        cond = conditioning.rows(ids)
        if not compiled:
            return adapter.denoise(x, t, cond, guidance_scale)
        torch.compiler.cudagraph_mark_step_begin()
        try:
            return adapter.denoise(x, t, cond, guidance_scale).clone()
        except torch._dynamo.exc.BackendCompilerFailed as error:
            raise compile_failed(error) from None

    return model


def batched(model: Model, device: torch.device, view_batch_size: int | None, one_call: str | None) -> Denoiser:
    """The denoiser the loop calls with a segment's batch (blocks of views and references, canvas by canvas): in one
    call when a baseline needs it (`one_call` says why), in batches of `view_batch_size` (the user's, or the host's
    fixed batch: the calls the core lays out in view index), or in batches sized from the device's free memory. Each
    row carries its id: its view's index."""
    if one_call:
        split = fixed_batches(model, one_call)
    elif view_batch_size:
        split = fixed_batches(model, "use a smaller view_batch_size, or none to size batches from free memory.",
                              view_batch_size)
    else:
        split = fit_in_memory(model, DeviceMemory.of(device))
    return split


def compile_failed(error: Exception) -> SwapForwardError:
    """torch.compile's failure (no C++ compiler, an unsupported GPU, ...) as one sentence."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = (lines[1] if len(lines) > 1 else lines[0] if lines else type(error).__name__).rstrip(".")
    return SwapForwardError(f"torch.compile could not compile the denoiser ({reason}); run without compiling.")

