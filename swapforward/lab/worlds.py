"""Worlds whose answer is known: priors over latents (batch, channels, frames, bins), stationary along the frames,
with the exact (Bayes-optimal) denoiser of a model "trained on W-frame windows" of them.

- `GaussianWorld`: every (channel, bin) lane is an independent stationary Gaussian process along the frames, with a
  kernel of slow and fast structure (a smooth squared-exponential plus a short-range oscillating one). The optimal
  predictor of a W-frame window is linear: x0_hat = sqrt(abar) S (abar S + (1 - abar) I)^-1 x_t with S the window's
  Toeplitz covariance, computed from its eigendecomposition.
- `StylesWorld`: a mixture of Gaussian styles with different kernels; a whole long signal has one style. The
  optimal predictor is the posterior-weighted mix of the styles' linear predictors, the weights computed in log
  space from each style's likelihood of the noisy window.

`denoiser(world, scheduler, window)` turns a world into the model the joint loop calls for any diffusers scheduler:
epsilon or v prediction under the variance-preserving process (alphas_cumprod), or the flow-matching velocity
(x_t = (1 - s) x0 + s noise, sigmas), in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Kernel = Callable[[torch.Tensor], torch.Tensor]


def mixed_kernel(length: float = 6.0, decay: float = 3.0, period: float = 4.0, fast: float = 0.3) -> Kernel:
    """k(tau) = (1 - fast) exp(-tau^2 / 2 length^2) + fast exp(-|tau| / decay) cos(2 pi tau / period): slow and
    fast structure, unit variance (both parts are positive definite, so is their sum)."""

    def k(tau: torch.Tensor) -> torch.Tensor:
        tau = tau.double()
        smooth = torch.exp(-(tau**2) / (2 * length**2))
        oscillating = torch.exp(-tau.abs() / decay) * torch.cos(2 * math.pi * tau / period)
        return (1 - fast) * smooth + fast * oscillating

    return k


def toeplitz(kernel: Kernel, size: int, nugget: float = 1e-4) -> torch.Tensor:
    """(size, size) covariance of `size` consecutive frames, with a small nugget for conditioning."""
    tau = torch.arange(size)[:, None] - torch.arange(size)[None, :]
    return kernel(tau) + nugget * torch.eye(size, dtype=torch.float64)


@dataclass
class GaussianWorld:
    """Independent lanes (channel, bin), each a stationary Gaussian process along the frames with `kernel`."""

    kernel: Kernel = field(default_factory=mixed_kernel)
    channels: int = 2
    bins: int = 4
    name: str = "gaussian"

    def covariance(self, frames: int) -> torch.Tensor:
        return toeplitz(self.kernel, frames)

    def sample(self, count: int, frames: int, generator: torch.Generator) -> torch.Tensor:
        """(count, channels, frames, bins) true long signals."""
        chol = torch.linalg.cholesky(self.covariance(frames))
        z = torch.randn(count, self.channels, self.bins, frames, generator=generator, dtype=torch.float64)
        return (z @ chol.T).transpose(-1, -2)

    def x0_hat(self, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] for windows x_t (..., W, bins) under x_t = sqrt(abar) x0 + sqrt(1 - abar) noise."""
        return _linear_x0(self.covariance(x_t.shape[-2]), x_t, abar)


@dataclass
class StylesWorld:
    """A mixture of Gaussian styles (kernels with different spectra); a whole signal has one style."""

    kernels: tuple[Kernel, ...] = field(default_factory=lambda: (
        mixed_kernel(length=8.0, fast=0.05), mixed_kernel(length=2.0, decay=2.0, period=3.0, fast=0.6)))
    weights: tuple[float, ...] = (0.5, 0.5)
    channels: int = 2
    bins: int = 4
    name: str = "styles"

    def sample(self, count: int, frames: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """((count, channels, frames, bins) signals, (count,) their styles)."""
        styles = torch.multinomial(torch.tensor(self.weights, dtype=torch.float64), count, True, generator=generator)
        out = torch.empty(count, self.channels, frames, self.bins, dtype=torch.float64)
        for s, kernel in enumerate(self.kernels):
            chosen = (styles == s).nonzero().flatten()
            if len(chosen):
                out[chosen] = GaussianWorld(kernel, self.channels, self.bins).sample(len(chosen), frames, generator)
        return out, styles

    def log_likelihoods(self, x: torch.Tensor, abar: torch.Tensor | float = 1.0) -> torch.Tensor:
        """(batch, styles) log p(x | style) of windows x (batch, channels, W, bins) seen at noise level abar."""
        abar = torch.as_tensor(abar, dtype=torch.float64)
        out = []
        for kernel in self.kernels:
            cov = abar * toeplitz(kernel, x.shape[-2]) + (1 - abar) * torch.eye(x.shape[-2], dtype=torch.float64)
            lanes = x.transpose(-1, -2).reshape(x.shape[0], -1, x.shape[-2])
            dist = torch.distributions.MultivariateNormal(torch.zeros(x.shape[-2], dtype=torch.float64), cov)
            out.append(dist.log_prob(lanes).sum(-1))
        return torch.stack(out, -1) + torch.log(torch.tensor(self.weights, dtype=torch.float64))

    def x0_hat(self, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """The posterior-weighted mix of the styles' linear predictors (weights from log likelihoods)."""
        posterior = torch.softmax(self.log_likelihoods(x_t, abar), -1)
        estimates = torch.stack([_linear_x0(toeplitz(k, x_t.shape[-2]), x_t, abar) for k in self.kernels], -1)
        return (estimates * posterior[:, None, None, None, :]).sum(-1)


def _linear_x0(cov: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """sqrt(abar) S (abar S + (1 - abar) I)^-1 x_t along the frames (dim -2), through S's eigendecomposition."""
    values, vectors = torch.linalg.eigh(cov)
    gain = abar.sqrt() * values / (abar * values + 1 - abar)
    operator = (vectors * gain) @ vectors.T
    return torch.einsum("fg,...gb->...fb", operator, x_t.double())


def denoiser(world, scheduler) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The world's exact windowed model, predicting what `scheduler` expects (epsilon, v, or flow velocity); every row
    is the same model, so the rows' ids are not used."""
    if hasattr(scheduler, "alphas_cumprod"):
        kind = scheduler.config.prediction_type

        def vp(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
            abar = scheduler.alphas_cumprod[int(t)].double()
            x0 = world.x0_hat(x, abar)
            eps = (x.double() - abar.sqrt() * x0) / (1 - abar).sqrt()
            out = eps if kind == "epsilon" else abar.sqrt() * eps - (1 - abar).sqrt() * x0
            return out.to(x.dtype)

        return vp

    def flow(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        sigma = (t.double() / scheduler.config.num_train_timesteps).clamp(1e-6, 1.0)
        # x_t = (1 - s) x0 + s noise is the VP process with sqrt(abar) = (1 - s) / r, r = sqrt((1 - s)^2 + s^2)
        scale = torch.sqrt((1 - sigma) ** 2 + sigma**2)
        abar = ((1 - sigma) / scale) ** 2
        x0 = world.x0_hat(x.double() / scale, abar)
        return ((x.double() - x0) / sigma).to(x.dtype)

    return flow
