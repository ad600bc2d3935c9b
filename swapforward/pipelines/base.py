"""What the audio and panorama pipelines share: loading, wrapping, compiling and moving a diffusers pipeline, the
diffusers-style call (options checked once by the spec, step callbacks), and the skeleton of a generation (layout,
joint run, output) whose kind-specific steps the subclasses fill in."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..core.layout import ViewLayout
from ..errors import SwapForwardError
from ..evaluation.ranking import default_scorer, rank_takes
from ..io.delivery import settings
from ..models import adapter_for, load_pipeline
from ..options import RANDOM_SEED, RUN, Request, Spec
from ..runtime.devices import check_scheduler_name, make_scheduler, resolve_device, resolve_dtype
from ..runtime.resume import check_resumable, load_state
from .joint import Generators, JointResult, generators, run_joint
from .kept import Media

#: torch.compile's modes; the first two replay CUDA graphs.
COMPILE_MODES = ("reduce-overhead", "max-autotune", "default", "max-autotune-no-cudagraphs")

#: Tensors a `callback_on_step_end` may read and replace.
CALLBACK_TENSOR_INPUTS = ("latents",)


class JointPipeline:
    """An adapter around a diffusers pipeline, with loading, compiling and the steps every generation takes.

    Subclasses name the diffusers pipeline classes they accept (`adapters`) and their option spec (`spec`), lay out
    a checked request's canvas (`layout`) and turn the denoised canvas into their output (`output`).
    """

    adapters: dict[str, type] = {}
    kind: str = ""
    spec: Spec

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
        """Load by hub id or local folder; the device defaults to CUDA (fp16), then MPS, then the CPU (fp32).

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

    def call(
        self,
        prompt: Any = None,
        *,
        generator: Generators = None,
        latents: torch.Tensor | None = None,
        reference_latents: torch.Tensor | None = None,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict | None] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = CALLBACK_TENSOR_INPUTS,
        progress_bar: bool = True,
        lpips: torch.nn.Module | None = None,
        scorer: Callable[[list[Any], str], list[float]] | None = None,
        save_state: str | os.PathLike | None = None,
        save_every: int = 10,
        resume_from: str | os.PathLike | None = None,
        **options: Any,
    ) -> Any:
        """What `__call__` does: check the options with the spec (once), then generate.

        `seed` or `generator` (one, or a list with one per canvas) fix the noise; `latents` replaces the initial
        canvas noise and `reference_latents` the reference view's (given latents and no seed, the reference noise
        is derived from the latents, so the run is reproducible). `callback(step, t, latents)` or diffusers'
        `callback_on_step_end(pipe, step, t, callback_kwargs)` (whose returned "latents" replace the canvas) run
        after every step; `lpips` is SyncDiffusion's perceptual network (default: VGG LPIPS); `scorer(takes, prompt)`
        returns a score per take for `rank` (default: the evaluation's CLAP or CLIP similarity). `save_state` writes
        the run's state to a file every `save_every` steps, and `resume_from` finishes a run from such a file.
        """
        request = self.spec.check({"prompt": prompt, **options})
        run = RUN.check({"save_state": save_state, "save_every": save_every, "resume": resume_from})
        hook = self.step_callback(callback, callback_on_step_end, callback_on_step_end_tensor_inputs)
        return self.generate(request, generator=generator, latents=latents, reference_latents=reference_latents,
                             callback=hook, progress_bar=progress_bar, lpips=lpips, scorer=scorer,
                             save_state=run.save_state, save_every=run.save_every, resume_from=run.resume)

    @torch.no_grad()
    def generate(
        self,
        request: Request,
        *,
        generator: Generators = None,
        latents: torch.Tensor | None = None,
        reference_latents: torch.Tensor | None = None,
        callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
        progress_bar: bool = True,
        lpips: torch.nn.Module | None = None,
        scorer: Callable[[list[Any], str], list[float]] | None = None,
        save_state: str | os.PathLike | None = None,
        save_every: int = 10,
        resume_from: str | os.PathLike | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> Any:
        """Generate a request already checked by this pipeline's spec (what `__call__` and the front ends do): the
        model-dependent checks and the layout, the joint loop, the output. `save_state` writes the run's state every
        `save_every` steps; `resume_from` continues a run so saved (with the same settings; a seed of -1 takes the
        saved run's) to the bytes of the uninterrupted run. `interrupt()` runs before every model call and stops the
        run by raising (the app's Cancel stops within one view batch, not one step)."""
        request = self.resolve(request)
        resumed = load_state(resume_from, self.adapter.device) if resume_from is not None else None
        if resumed is not None and request.seed == RANDOM_SEED:
            request = request.replace(seed=resumed.asked.get("seed"))
        layout, canvas_shape = self.layout(request)
        takes = request[self.takes_option]
        canvas_shape = (takes, *canvas_shape[1:])
        generator, seed = generators(generator, request.seed, takes)
        asked = self.settings(request, seed)
        if resumed is not None:
            names = {o.name: o.flag for o in self.spec.options}  # --resume is the command line's
            check_resumable(resumed, asked, resume_from, lambda key: names.get(key, key))
        timeline = None if isinstance(request.prompt, str) else [
            (min(layout.length - 1, self.start_frame(segment.start)), segment) for segment in request.prompt]
        media = self.media(request, layout, canvas_shape)
        result = run_joint(self.adapter, request, layout, canvas_shape, generator=generator, latents=latents,
                           reference_latents=reference_latents, timeline=timeline, kept=media.kept,
                           observed_reference=media.reference, callback=callback, progress_bar=progress_bar,
                           lpips=lpips, save=None if save_state is None else (save_state, save_every, asked),
                           resume=resumed, interrupt=interrupt)
        outputs = [self.output(request, layout, result.latents[b : b + 1], result, None if seed is None else seed + b,
                               media, progress_bar) for b in range(takes)]
        for index, output in enumerate(outputs):
            output.info["take"] = index
        if request.rank != "none" and takes > 1:
            outputs = rank_takes(outputs, request, scorer or default_scorer(request.rank, self.adapter.device))
        outputs[0].takes = outputs
        return outputs[0]

    def resolve(self, request: Request) -> Request:
        """`request` with the model's own steps and guidance where it gives none (its `default_steps` and
        `default_guidance`: the paper's for AudioLDM, a distilled checkpoint's few steps without guidance)."""
        steps, guidance = request.num_inference_steps, request.guidance_scale
        return request.replace(num_inference_steps=self.adapter.default_steps if steps is None else steps,
                               guidance_scale=self.adapter.default_guidance if guidance is None else guidance)

    @property
    def takes_option(self) -> str:
        """The option that asks for several takes (diffusers' name for the kind)."""
        return next(o.name for o in self.spec.options if o.key == "takes")

    def settings(self, request: Request, seed: int | None) -> dict[str, Any]:
        """What made a take: its request, seed, model and the version, for tags and sidecars."""
        model = getattr(self.pipe, "name_or_path", None) or None
        return settings(request, seed, model)

    def layout(self, request: Request) -> tuple[ViewLayout, tuple[int, ...]]:
        """The views and the canvas shape for `request`, after the checks that need the model."""
        raise NotImplementedError

    def start_frame(self, start: float) -> int:
        """The canvas frame (latent frame or column) where a timeline segment starting at `start` (seconds or
        pixels) begins."""
        raise NotImplementedError

    def media(self, request: Request, layout: ViewLayout, canvas_shape: tuple[int, ...]) -> Media:
        """The request's own input (a clip or a picture to keep, or to sound or look like), encoded on the canvas."""
        return Media()

    def output(self, request: Request, layout: ViewLayout, latents: torch.Tensor, result: JointResult,
               seed: int | None, media: Media, progress_bar: bool = False) -> Any:
        """One denoised canvas (`latents`, batch 1) decoded into the pipeline's output (with the input spliced in);
        `progress_bar` shows a long decode's progress."""
        raise NotImplementedError

    def step_callback(
        self,
        callback: Callable[[int, torch.Tensor, torch.Tensor], Any] | None,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict | None] | None,
        tensor_inputs: Sequence[str],
    ) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None:
        """One per-step hook from the old `callback(step, t, latents)` and diffusers'
        `callback_on_step_end(pipe, step, timestep, callback_kwargs)`, whose returned "latents" replace the canvas."""
        unknown = [name for name in tensor_inputs if name not in CALLBACK_TENSOR_INPUTS]
        if unknown:
            raise SwapForwardError(
                f"callback_on_step_end_tensor_inputs may name {', '.join(CALLBACK_TENSOR_INPUTS)}, got {unknown[0]!r}."
            )
        if callback is None and callback_on_step_end is None:
            return None

        def on_step(k: int, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor | None:
            if callback is not None:
                callback(k, t, latents)
            if callback_on_step_end is None:
                return None
            returned = callback_on_step_end(self, k, t, {name: latents for name in tensor_inputs}) or {}
            return returned.get("latents")

        return on_step


def spec_signature(spec: Spec) -> Callable[[Callable], Callable]:
    """Give a pipeline's `__call__(self, prompt, **arguments)` the signature and docstring of every option of `spec`
    and of `JointPipeline.call`'s run arguments, so that `help()`, `inspect.signature` and IDEs list them with their
    defaults although they are declared once, in `swapforward.options`."""

    def decorate(func: Callable) -> Callable:
        own = inspect.signature(func)
        head = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        run = [p for p in inspect.signature(JointPipeline.call).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
        options = [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default_for(spec.kind))
            for o in spec.options if o.name != "prompt"
        ]
        func.__signature__ = own.replace(parameters=head + options + run)
        lines = [f"    {o.name} ({o.default_for(spec.kind)!r}): {o.describe(spec.kind, show_default=False)}"
                 for o in spec.options]
        run_doc = inspect.cleandoc(JointPipeline.call.__doc__).split("\n\n", 1)[1]
        func.__doc__ = (f"{inspect.cleandoc(func.__doc__ or '')}\n\n{run_doc}\n\nOptions (swapforward.options):\n"
                        + "\n".join(lines))
        return func

    return decorate
