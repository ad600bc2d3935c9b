"""ComfyUI's model call and sampler step as the core's denoiser and scheduler, so that the core's joint loop
(`core.sampler.joint_denoise`, Algorithm 1) runs over ComfyUI's own MODEL, CONDITIONING and sigmas.

ComfyUI hands a sampler function `(model, x, sigmas, extra_args, callback, disable)` a k-diffusion denoiser
(`model(x, sigma)` -> the denoised x_0 estimate, guidance applied) and the noisy canvas x at sigmas[0]. Here the views
of x are denoised by that `model` and stepped by `SigmaSteps`, the same Euler or DPM-Solver++(2M) step as ComfyUI's
`euler` and `dpmpp_2m`, written with the same operations so that one view gives ComfyUI's result bit for bit.
Nothing here imports ComfyUI: the node pack (nodes.py) passes its objects in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from ...core.layout import ViewLayout
from ...core.methods import get_method
from ...core.plan import plan_joint
from ...core.sampler import Joint, joint_denoise

#: The steps `SigmaSteps` takes, by ComfyUI's sampler names: deterministic, one model call a step (what the joint
#: loop needs: every view is stepped once per step, and a multistep history is kept per view as a batch row).
STEP_RULES = ("euler", "dpmpp_2m")
#: The methods that run over any ComfyUI model (MAD needs the model's attention, SyncDiffusion a decoder and LPIPS).
COMFY_METHODS = ("safa", "safa-selfloop", "md-envelope", "md", "md-tri")
MEDIA = ("image", "audio")


@dataclass
class SigmaSteps:
    """ComfyUI's step over its `sigmas`, shaped as the diffusers scheduler the core steps views with: `timesteps`
    are the sigmas of the steps and `step(denoised, sigma, x)` moves x to the next sigma. Stateful as diffusers'
    schedulers are (the core keeps a copy per segment of views): the step index and DPM-Solver++(2M)'s last
    denoised estimate."""

    sigmas: torch.Tensor
    rule: str = "euler"
    index: int = 0
    previous: torch.Tensor | None = field(default=None, repr=False)

    @property
    def timesteps(self) -> torch.Tensor:
        return self.sigmas[:-1]

    def step(self, denoised: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, **_: Any) -> SimpleNamespace:
        i, sigmas = self.index, self.sigmas
        self.index += 1
        if self.rule == "euler":  # comfy.k_diffusion.sampling.sample_euler without churn
            d = (x - denoised) / sigmas[i][(...,) + (None,) * x.ndim]
            return SimpleNamespace(prev_sample=x + d * (sigmas[i + 1] - sigmas[i]))
        t, t_next = sigmas[i].log().neg(), sigmas[i + 1].log().neg()  # sample_dpmpp_2m
        h = t_next - t
        if self.previous is not None and sigmas[i + 1] != 0:
            r = (t - sigmas[i - 1].log().neg()) / h
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * self.previous
        else:
            blended = denoised
        self.previous = denoised
        return SimpleNamespace(prev_sample=(t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * blended)


@dataclass(frozen=True)
class JointSettings:
    """A joint run's settings as the node pack's inputs give them (view size in latent frames along the long axis;
    0: square views for images, the latent's height)."""

    method: str = "safa"
    overlap: float = 0.2
    loop: bool = False
    view_size: int = 0
    swap_interval: int = 1
    r_guide: float = 0.3
    reference_phase: str = "local"
    step: str = "euler"
    media: str = "image"
    view_batch: int = 8

    def axes(self, ndim: int) -> tuple[int, int]:
        """(long axis, swap axis): width and rows for images (B, C, H, W), time for audio latents."""
        if self.media == "image":
            return ndim - 1, ndim - 2
        return ndim - 1, ndim - 1

    def window(self, x: torch.Tensor) -> int:
        if self.view_size > 0:
            return self.view_size
        if self.media == "image":
            return x.shape[-2]
        raise ValueError("audio needs a view_size: the latent frames of one window of the model (the "
                         "SwapForward Empty Long Latent Audio node's view_frames output)")


def plan_for(settings: JointSettings, x: torch.Tensor, steps: int) -> Joint:
    """The core's `Joint` for canvases `x` (batch first): the layout of views along the long axis and the method's
    plan (merge weights, guide steps, the reference mask)."""
    axis, swap_axis = settings.axes(x.ndim)
    layout = ViewLayout.build(x.shape[axis], settings.window(x), overlap=settings.overlap, loop=settings.loop)
    view_shape = (1, *x.shape[1:axis], layout.window, *x.shape[axis + 1:])
    plan = plan_joint(get_method(settings.method), layout, steps, view_shape=view_shape, axis=axis,
                      swap_axis=swap_axis, r_guide=settings.r_guide, reference_phase=settings.reference_phase,
                      swap_interval=settings.swap_interval)
    return Joint(layout, axis, plan.weights, plan.guide_steps, plan.reference_mask, None,
                 view_batch_size=settings.view_batch, swap=plan.guidance)


def reference_noise(x: torch.Tensor, joint: Joint, seed: int) -> torch.Tensor:
    """The reference views' noise (one per canvas), drawn after the canvases' noise from ComfyUI's own generator for
    `seed` (`comfy.sample.prepare_noise`: torch.manual_seed(seed), on the CPU), as the project's pipelines draw it."""
    generator = torch.Generator().manual_seed(seed)
    torch.randn(x.shape, dtype=x.dtype, generator=generator)  # the canvases' noise, drawn by ComfyUI
    shape = list(x.shape)
    shape[joint.axis] = joint.layout.window
    return torch.randn(shape, dtype=x.dtype, generator=generator).to(x.device)


@torch.no_grad()
def joint_sample(settings: JointSettings, model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                 extra_args: dict | None = None, callback: Callable[[dict], None] | None = None,
                 scale_reference: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Denoise the canvases `x` (noise at sigmas[0]) jointly with ComfyUI's denoiser `model`: the core's loop with
    `SigmaSteps`. `scale_reference(noise)` brings the reference's noise to sigmas[0] as ComfyUI's model sampling
    scales the canvas's (default: times sigmas[0])."""
    if x.ndim not in (3, 4):
        raise ValueError(f"swapforward's sampler takes image latents (batch, channels, height, width) and audio "
                         f"latents (3 or 4 axes, time last), got {x.ndim} axes {tuple(x.shape)}; video is not "
                         f"supported")
    extra_args = extra_args or {}
    steps = len(sigmas) - 1
    joint = plan_for(settings, x, steps)
    reference = None
    if joint.guide_steps:
        noise = reference_noise(x, joint, int(extra_args.get("seed") or 0))
        reference = scale_reference(noise) if scale_reference is not None else noise * sigmas[0]

    def denoiser(views: torch.Tensor, sigma: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return model(views, sigma * views.new_ones([views.shape[0]]), **extra_args)

    def after(k: int, sigma: torch.Tensor, canvas: torch.Tensor) -> None:
        if callback is not None:
            callback({"x": canvas, "i": k, "sigma": sigma, "sigma_hat": sigma, "denoised": canvas})

    return joint_denoise(x, denoiser, SigmaSteps(sigmas, settings.step), joint, reference=reference, callback=after)
