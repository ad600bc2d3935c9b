"""Running a joint-diffusion method on a model adapter: the part the audio and panorama pipelines share.

It checks the method's options, draws the noise (canvas first, then the reference view, from one generator),
encodes the prompt, sets the scheduler's timesteps, builds the merge weights and the reference mask, counts model
calls, shows a progress bar and runs `core.joint_denoise`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from .baselines.mad import CanvasGeometry, merged_attention
from .baselines.syncdiffusion import default_lpips, sync_views
from .core.layout import ViewLayout
from .core.merge import reference_swap_mask
from .core.methods import Method, get_method
from .core.sampler import joint_denoise
from .errors import SwapForwardError
from .memory import DeviceMemory, fit_in_memory, fixed_batches
from .models import adapter_for, load_pipeline
from .models.base import LatentAdapter
from .runtime import check_scheduler_name, make_scheduler, resolve_device, resolve_dtype


def number(name: str, value: Any) -> float:
    """`value` as a float, or the sentence saying it is not a number (NaN included)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise SwapForwardError(f"{name} must be a number, got {value!r}.") from None
    if isinstance(value, bool) or math.isnan(result):
        raise SwapForwardError(f"{name} must be a number, got {value!r}.")
    return result


def whole(name: str, value: Any, minimum: int) -> int:
    """`value` as an int >= minimum, or the sentence saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SwapForwardError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class JointOptions:
    """The checked options of a joint-diffusion run, common to every modality."""

    method: Method
    overlap: float
    r_guide: float
    swap_interval: int
    tail_shift: int
    steps: int
    guidance_scale: float
    view_batch_size: int | None
    seed: int | None
    mad_ratio: float = 0.3
    sync_weight: float = 20.0
    sync_decay: float = 0.95
    sync_ratio: float = 1.0


def check_joint_options(
    method: Any,
    overlap: Any,
    r_guide: Any,
    swap_interval: Any,
    tail_shift: Any,
    num_inference_steps: Any,
    guidance_scale: Any,
    view_batch_size: Any,
    seed: Any,
    mad_ratio: Any = 0.3,
    sync_weight: Any = 20.0,
    sync_decay: Any = 0.95,
    sync_ratio: Any = 1.0,
) -> JointOptions:
    overlap_rate = number("overlap", overlap)
    if not 0 < overlap_rate < 1:
        raise SwapForwardError(f"overlap must be between 0 and 1 (exclusive), got {overlap!r}.")
    guide = number("r_guide", r_guide)
    if not 0 <= guide <= 1:
        raise SwapForwardError(f"r_guide must be between 0 and 1, got {r_guide!r}.")
    guidance = number("guidance_scale", guidance_scale)
    if math.isinf(guidance):
        raise SwapForwardError(f"guidance_scale must be a finite number, got {guidance_scale!r}.")
    fractions = {"mad_ratio": number("mad_ratio", mad_ratio), "sync_ratio": number("sync_ratio", sync_ratio),
                 "sync_decay": number("sync_decay", sync_decay)}
    for name, value in fractions.items():
        if not 0 <= value <= 1:
            raise SwapForwardError(f"{name} must be between 0 and 1, got {value!r}.")
    weight = number("sync_weight", sync_weight)
    if not 0 <= weight < math.inf:
        raise SwapForwardError(f"sync_weight must be a finite number >= 0, got {sync_weight!r}.")
    return JointOptions(
        sync_weight=weight,
        **fractions,
        method=get_method(method),
        overlap=overlap_rate,
        r_guide=guide,
        swap_interval=whole("swap_interval", swap_interval, 1),
        tail_shift=whole("tail_shift", tail_shift, 0),
        steps=whole("num_inference_steps", num_inference_steps, 1),
        guidance_scale=guidance,
        view_batch_size=None if view_batch_size is None else whole("view_batch_size", view_batch_size, 1),
        seed=None if seed is None else whole("seed", seed, 0),
    )


def seeded(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    """The generator to draw noise from: a CPU generator seeded with `seed`, or the caller's own."""
    if seed is None:
        return generator
    if generator is not None:
        raise SwapForwardError("Give either seed or generator, not both.")
    return torch.Generator("cpu").manual_seed(seed)


@dataclass
class JointResult:
    latents: torch.Tensor
    model_calls: int
    """Denoiser forward calls (each holds a batch of views, doubled for guidance)."""
    view_evaluations: int
    """Views (and reference views) evaluated, over all calls: the work, whatever the batching."""
    guide_steps: int
    steps: int
    views_per_call: int
    """The most views (and reference views) that one call held: what bounds the denoiser's memory."""

    def info(self) -> dict[str, int]:
        """The counts that the pipelines' outputs report in their `info`."""
        return {"guide_steps": self.guide_steps, "steps": self.steps, "view_evaluations": self.view_evaluations,
                "views_per_call": self.views_per_call}


def run_joint(
    adapter: LatentAdapter,
    options: JointOptions,
    layout: ViewLayout,
    canvas_shape: tuple[int, ...],
    *,
    prompt: str,
    negative_prompt: str | None,
    generator: torch.Generator | None,
    latents: torch.Tensor | None,
    eta: float = 0.0,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    progress_bar: bool = True,
    lpips: torch.nn.Module | None = None,
) -> JointResult:
    """Denoise a canvas of `canvas_shape` laid out as `layout` along `adapter.long_axis` with `options.method`."""
    axis = adapter.long_axis % len(canvas_shape)
    view_shape = list(canvas_shape)
    view_shape[axis] = layout.window
    if latents is not None and tuple(latents.shape) != tuple(canvas_shape):
        raise SwapForwardError(f"latents must have shape {tuple(canvas_shape)}, got {tuple(latents.shape)}.")
    device, dtype = adapter.device, adapter.dtype
    cond = adapter.encode_prompt(prompt, negative_prompt, options.guidance_scale > 1.0, tuple(view_shape))
    scheduler = copy.deepcopy(adapter.scheduler)
    adapter.set_timesteps(scheduler, options.steps, tuple(view_shape))
    init_sigma = getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers start from plain noise
    if latents is None:
        latents = randn_tensor(tuple(canvas_shape), generator=generator, device=device, dtype=dtype)
    canvas = latents.to(device=device, dtype=dtype) * init_sigma

    # Reference guidance makes views consistent with each other: a single view is the plain model.
    guide_steps = 0
    if options.method.reference and layout.num_views > 1:
        guide_steps = round(options.r_guide * len(scheduler.timesteps))
    reference = mask = None
    if guide_steps > 0:
        reference = randn_tensor(tuple(view_shape), generator=generator, device=device, dtype=dtype)
        reference = reference * init_sigma
        swap_axis = adapter.reference_axis % len(canvas_shape)
        mask = reference_swap_mask(
            layout, len(canvas_shape), axis, swap_axis, view_shape[swap_axis], options.swap_interval
        )

    calls = evaluations = largest = 0
    compiled = adapter.compiled

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls, evaluations, largest
        calls += 1
        evaluations += x.shape[0]
        largest = max(largest, x.shape[0])
        if not compiled:
            return adapter.denoise(x, t, cond, options.guidance_scale)
        torch.compiler.cudagraph_mark_step_begin()  # a new CUDA-graph iteration
        try:
            return adapter.denoise(x, t, cond, options.guidance_scale).clone()  # out of the graph's memory
        except torch._dynamo.exc.BackendCompilerFailed as error:
            raise compile_failed(error) from None

    steps = len(scheduler.timesteps)
    method = options.method
    mad_steps = round(options.mad_ratio * steps) if method.merged_attention else 0
    if mad_steps and not adapter.supports_merged_attention:
        raise SwapForwardError(
            f"MAD is not available for {type(adapter.pipe).__name__}: its attention applies rotary positions inside "
            f"each view; use safa, safa-selfloop, md or md-tri."
        )
    # Without a view_batch_size the batches are sized from the free device memory (not for MAD, whose merged
    # attention needs all views together).
    if mad_steps:
        denoiser = fixed_batches(model, "MAD attends over all views at once: ask for a shorter output or use another "
                                        "method.")
    elif options.view_batch_size:
        denoiser = fixed_batches(model, "use a smaller view_batch_size, or none to size batches from free memory.")
    else:
        denoiser = fit_in_memory(model, DeviceMemory.of(device))

    prepare = None
    sync_steps = round(options.sync_ratio * steps) if method.gradient_sync and layout.num_views > 1 else 0
    if sync_steps:
        if torch.is_inference_mode_enabled():
            raise SwapForwardError("SyncDiffusion needs gradients; call the pipeline outside torch.inference_mode().")
        if getattr(scheduler, "init_noise_sigma", 1.0) != 1.0:
            raise SwapForwardError(
                f"SyncDiffusion needs a scheduler whose samples are x_t itself (ddim, dpm, unipc, flow matching), "
                f"not {type(scheduler).__name__}."
            )
        lpips = default_lpips() if lpips is None else lpips
        lpips = lpips.to(device)

        def prepare(k: int, t: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
            if k >= sync_steps:
                return views
            weight = options.sync_weight * options.sync_decay**k
            return sync_views(views, t, weight, denoise=denoiser, scheduler=scheduler,
                              decode=adapter.decode_preview, lpips=lpips)

    bar = tqdm(
        total=len(scheduler.timesteps),
        desc=f"{options.method.name}, {layout.num_views} views",
        unit="step",
        disable=not progress_bar,
    )

    attention = ExitStack()
    if mad_steps:
        geometry = CanvasGeometry(layout, _view_hw(view_shape), 0 if axis == len(canvas_shape) - 2 else 1,
                                  adapter.patch_size)
        attention.enter_context(merged_attention(adapter.denoiser_module, geometry))

    def on_step(k: int, t: torch.Tensor, x: torch.Tensor) -> None:
        if k + 1 == mad_steps:
            attention.close()  # MAD's steps are over: the model's own attention again
        bar.update(1)
        if callback is not None:
            callback(k, t, x)

    with bar, attention:
        canvas = joint_denoise(
            canvas,
            denoiser,
            scheduler,
            layout,
            axis=axis,
            weights=options.method.weights(layout, options.swap_interval, options.tail_shift),
            reference=reference,
            reference_mask=mask,
            guide_steps=guide_steps,
            view_batch_size=None if mad_steps else options.view_batch_size,  # MAD attends over all views at once
            step_kwargs=adapter.step_kwargs(generator, eta),
            callback=on_step,
            prepare=prepare,
        )
    return JointResult(latents=canvas, model_calls=calls, view_evaluations=evaluations, guide_steps=guide_steps,
                       steps=steps, views_per_call=largest)


def compile_failed(error: Exception) -> SwapForwardError:
    """torch.compile's failure (no C++ compiler, an unsupported GPU, ...) as one sentence."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = (lines[1] if len(lines) > 1 else lines[0] if lines else type(error).__name__).rstrip(".")
    return SwapForwardError(f"torch.compile could not compile the denoiser ({reason}); run without compiling.")


def _view_hw(view_shape: list[int]) -> tuple[int, int]:
    """The two spatial sizes of a (batch, channels, rows, cols) view."""
    return int(view_shape[-2]), int(view_shape[-1])


#: torch.compile's modes; the first two replay CUDA graphs.
COMPILE_MODES = ("reduce-overhead", "max-autotune", "default", "max-autotune-no-cudagraphs")


class JointPipeline:
    """What the audio and panorama pipelines share: an adapter around a diffusers pipeline, loading, devices.

    Subclasses name the diffusers pipeline classes they accept (`adapters`) and implement `__call__`.
    """

    adapters: dict[str, type] = {}
    kind: str = ""

    def __init__(self, adapter: Any):
        self.adapter = adapter

    @property
    def pipe(self) -> Any:
        """The wrapped diffusers pipeline."""
        return self.adapter.pipe

    @property
    def scheduler(self) -> Any:
        return self.adapter.pipe.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Any) -> None:
        self.adapter.pipe.scheduler = scheduler

    @classmethod
    def from_pipe(cls, pipe: Any) -> Any:
        """Wrap an already loaded diffusers pipeline (sharing its modules and keeping its scheduler)."""
        return cls(adapter_for(pipe, cls.adapters, cls.kind))

    @classmethod
    def from_pretrained(
        cls,
        model_id: str,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | str | None = None,
        scheduler: str = "paper",
        compile: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Load by hub id or local folder; device and dtype default to CUDA + fp16 where there is a GPU.

        `scheduler`: "paper" (DDIM as in the SaFa paper; flow-matching models such as SD 3 keep their own),
        "default" (the model's own), or ddim, dpm, euler, unipc. `compile`: compile the denoiser with its default
        mode (see `compile()`). Other keyword arguments go to diffusers.
        """
        check_scheduler_name(scheduler)
        device = resolve_device(device)
        dtype = resolve_dtype(torch_dtype, device)
        pipe = load_pipeline(model_id, cls.adapters, torch_dtype=dtype, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler)
        loaded = cls.from_pipe(pipe.to(device))
        return loaded.compile() if compile else loaded

    def compile(self, mode: str | None = None, **kwargs: Any) -> Any:
        """Compile the denoiser in place with `torch.compile`, for runs that repeat one shape many times.

        The default mode on CUDA is "reduce-overhead": the model is replayed from CUDA graphs, which removes the
        per-call launch overhead that dominates small audio latents on a large GPU. Elsewhere it is torch's default.
        Shapes are static by default (`dynamic=False`): CUDA graphs need them, and on the CPU inductor's
        dynamic-shape kernels ran 30x slower than eager here. So every new batch shape compiles first (seconds to
        minutes), and past torch's recompile limit (8) new shapes run eagerly. Results equal eager ones up to rounding.
        """
        kwargs.setdefault("dynamic", False)
        if mode is None and self.adapter.device.type == "cuda":
            mode = "reduce-overhead"
        if mode is not None and mode not in COMPILE_MODES:
            raise SwapForwardError(f"Unknown compile mode {mode!r}; use one of: {', '.join(COMPILE_MODES)}.")
        self.adapter.denoiser_module.compile(mode=mode, **kwargs)
        return self

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> Any:
        self.adapter.pipe.to(device, dtype) if dtype is not None else self.adapter.pipe.to(device)
        return self
