"""SyncDiffusion (Lee et al., NeurIPS 2023): pull every view toward an anchor view by an LPIPS gradient step.

Before each of its steps' MD update, every view's latent x_t^i takes one gradient step
x_t^i <- x_t^i - w_k * grad_x LPIPS(D(x0(x_t^i)), D(x0(x_t^anchor))), where x0 is the model's clean prediction, D the
VAE decoder, the anchor the middle view, and w_k = weight * decay^k. It costs a forward and backward pass through the
denoiser and the decoder per view per step. For audio, D gives a mel spectrogram, scaled to [-1, 1] and repeated on
three channels for LPIPS (the SaFa paper found LPIPS insensitive to intermediate spectrograms; it is offered anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from ..errors import SwapForwardError
from . import Baseline, LoopContext

VGG_FILE = "vgg16-397923af.pth"
VGG_URL = f"https://download.pytorch.org/models/{VGG_FILE}"


def predict_x0(scheduler: Any, sample: torch.Tensor, model_output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The clean latent the model predicts, for DDPM-family (epsilon, v, sample) and flow-matching schedulers.

    Computed from the scheduler's noise schedule without stepping it, so stateful schedulers are left untouched.
    """
    if hasattr(scheduler, "alphas_cumprod"):
        alpha = scheduler.alphas_cumprod.to(sample.device)[int(t)].to(sample.dtype)
        kind = scheduler.config.prediction_type
        if kind == "epsilon":
            return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
        if kind == "v_prediction":
            return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
        return model_output
    if hasattr(scheduler, "sigmas") and hasattr(scheduler, "timesteps"):  # flow matching: x = (1 - s) x0 + s noise
        index = int((scheduler.timesteps.to(t.device) == t).nonzero()[0])
        sigma = scheduler.sigmas[index].to(sample.device, sample.dtype)
        return sample - sigma * model_output
    raise SwapForwardError(f"SyncDiffusion cannot predict x0 with {type(scheduler).__name__}; use ddim or euler.")


def default_lpips() -> torch.nn.Module:
    """LPIPS with the VGG backbone; one sentence if its ImageNet weights are missing and cannot be downloaded."""
    try:
        import lpips
    except ImportError:
        raise SwapForwardError("SyncDiffusion needs the lpips and torchvision packages; install them with "
                               "`pip install 'swapforward[syncd]'`.") from None
    checkpoints = os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        return lpips.LPIPS(net="vgg", verbose=False).eval()
    except Exception:  # torchvision's download fails with URL, HTTP or OS errors
        raise SwapForwardError(
            f"SyncDiffusion needs the VGG16 weights {VGG_FILE}, which are not in {checkpoints} and could not be "
            f"downloaded; fetch {VGG_URL} on a machine with network access and put it in that folder."
        ) from None


def authors_clamp(image: torch.Tensor) -> torch.Tensor:
    """The preview as the authors' code feeds LPIPS: decoded to [0, 1] with `(x / 2 + 0.5).clamp(0, 1)`, then mapped
    back with `* 2 - 1`, the same arithmetic, so early previews outside [-1, 1] are clipped as theirs are."""
    return (image / 2 + 0.5).clamp(0, 1) * 2.0 - 1.0


def sync_views(
    views: torch.Tensor,
    t: torch.Tensor,
    weight: float,
    *,
    denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: Any,
    decode: Callable[[torch.Tensor], torch.Tensor],
    lpips: torch.nn.Module,
) -> torch.Tensor:
    """One SyncDiffusion gradient step on every view but the anchor (the middle one); returns the new views. Each
    view is denoised with its own conditioning (its id is its index)."""
    anchor_index = views.shape[0] // 2
    with torch.no_grad():
        anchor = views[anchor_index : anchor_index + 1]
        anchor_eps = denoise(anchor, t, torch.tensor([anchor_index]))
        anchor_image = authors_clamp(decode(predict_x0(scheduler, anchor, anchor_eps, t)))
    updated = []
    for i in range(views.shape[0]):
        view = views[i : i + 1]
        if i == anchor_index:
            updated.append(view)
            continue
        with torch.enable_grad():
            x = view.detach().requires_grad_(True)
            image = authors_clamp(decode(predict_x0(scheduler, x, denoise(x, t, torch.tensor([i])), t)))
            loss = lpips(image.float(), anchor_image.float()).sum()
            (grad,) = torch.autograd.grad(loss, x)
        updated.append((view - weight * grad).detach())
    return torch.cat(updated)


class GradientSync(Baseline):
    """SyncDiffusion as a plug-in of the joint loop: a gradient step on the views during its first `steps` steps."""

    def __init__(self, steps: int, weight: float, decay: float, lpips: torch.nn.Module | None):
        self.steps, self.weight, self.decay, self.lpips = steps, weight, decay, lpips

    def check(self, adapter: Any, scheduler: Any) -> None:
        if torch.is_inference_mode_enabled():
            raise SwapForwardError("SyncDiffusion needs gradients; call the pipeline outside torch.inference_mode().")
        if getattr(scheduler, "init_noise_sigma", 1.0) != 1.0:
            raise SwapForwardError(
                f"SyncDiffusion needs a scheduler whose samples are x_t itself (ddim, dpm, unipc, flow matching), "
                f"not {type(scheduler).__name__}."
            )
        self.lpips = (default_lpips() if self.lpips is None else self.lpips).to(adapter.device)

    def running(self, loop: LoopContext) -> nullcontext:
        self.loop = loop
        return nullcontext()

    def prepare(self, k: int, t: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        if k >= self.steps:
            return views
        loop = self.loop
        weight = self.weight * self.decay**k
        return torch.cat([
            sync_views(group, t, weight, denoise=loop.denoiser, scheduler=loop.scheduler,
                       decode=loop.adapter.decode_preview, lpips=self.lpips)
            for group in views.split(views.shape[0] // loop.canvases)  # each canvas has its own anchor view
        ])


def plugin(request: Any, steps: int, layout: Any, lpips: torch.nn.Module | None) -> GradientSync | None:
    """SyncDiffusion's plug-in for a run; None when it would act on no step or view pair (then it is plain MD)."""
    sync_steps = round(request.sync_ratio * steps)
    return GradientSync(sync_steps, request.sync_weight, request.sync_decay, lpips) if (
        sync_steps and layout.num_views > 1) else None
