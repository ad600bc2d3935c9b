"""Worlds whose styles differ in something other than the spectrum (issue 39, first part): how loudness moves over
time, and how the latent channels co-vary; with the style mix each method makes and the modulation it keeps.

Both are mixtures of Gaussian components with exact posteriors, so the model is still Bayes-optimal:
- `modulated_world`: half the signals are a stationary process, half the same process times a slow amplitude
  envelope 1 + m cos(2 pi (t + phase) / period) (a random phase; every lane shares it): rhythm, pulses, gusts.
  Each channel's average spectrum hardly differs; the modulation is in time.
- `channel_world`: two styles with the same kernel in every channel, the channels correlated +rho in one and -rho
  in the other: every channel's spectrum is the same in both, only the channels' covariance differs.

Measures, sampled over canvases: the share of canvases each style wins (a canvas's style: the larger sum over its
window-sized segments of the style's log likelihood), its error against the truth's share, measured by the same
classifier on true signals as the control; and the modulation depth (the power envelope's first harmonic at the
period, relative to its mean), of the generated canvases against true ones and against one window of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .worlds import mixed_kernel, toeplitz

#: The candidates of the table: the control, the paper's methods and the project's at the paper's audio overlap.
CANDIDATES = (("control", 0.2), ("md-tri", 0.2), ("safa", 0.2), ("md-envelope", 0.2), ("md", 0.8))


@dataclass
class MixtureWorld:
    """Gaussian components over (channels x frames) for each bin lane; component c has `weights[c]` and belongs to
    style `styles[c]`; `covariance(c, frames, start)` gives its (C*frames, C*frames) covariance, channel-major, of
    frames start .. start + frames - 1."""

    name: str
    components: list[Any]
    weights: list[float]
    styles: list[int]
    channels: int = 2
    bins: int = 4
    period: int = 0
    cache: dict = field(default_factory=dict, repr=False)

    def covariance(self, component: int, frames: int, start: int = 0) -> torch.Tensor:
        key = (component, frames, start % self.period if self.period else 0)
        if key not in self.cache:
            self.cache[key] = self.components[component](frames, start)
        return self.cache[key]

    @property
    def style_weights(self) -> list[float]:
        return [sum(w for w, s in zip(self.weights, self.styles, strict=True) if s == style)
                for style in sorted(set(self.styles))]

    def sample(self, count: int, frames: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """((count, channels, frames, bins) signals, (count,) their styles)."""
        chosen = torch.multinomial(torch.tensor(self.weights, dtype=torch.float64), count, True, generator=generator)
        out = torch.empty(count, self.channels, frames, self.bins, dtype=torch.float64)
        for component in chosen.unique().tolist():
            rows = (chosen == component).nonzero().flatten()
            chol = torch.linalg.cholesky(self.covariance(component, frames))
            z = torch.randn(len(rows), self.bins, self.channels * frames, generator=generator, dtype=torch.float64)
            out[rows] = (z @ chol.T).view(len(rows), self.bins, self.channels, frames).permute(0, 2, 3, 1)
        return out, torch.tensor([self.styles[c] for c in chosen.tolist()])

    def _lanes(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, frames, bins) -> (batch, bins, channels * frames)."""
        return x.permute(0, 3, 1, 2).reshape(x.shape[0], x.shape[3], -1)

    def component_log_likelihoods(self, x: torch.Tensor, abar: torch.Tensor | float = 1.0) -> torch.Tensor:
        """(batch, components) log p(x | component) + log weight of windows x seen at noise level abar."""
        abar = torch.as_tensor(abar, dtype=torch.float64)
        lanes, frames = self._lanes(x.double()), x.shape[-2]
        out = []
        for c, weight in enumerate(self.weights):
            cov = abar * self.covariance(c, frames) + (1 - abar) * torch.eye(lanes.shape[-1], dtype=torch.float64)
            dist = torch.distributions.MultivariateNormal(torch.zeros(lanes.shape[-1], dtype=torch.float64), cov)
            out.append(dist.log_prob(lanes).sum(-1) + math.log(weight))
        return torch.stack(out, -1)

    def log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, styles) log p(x | style) of clean windows x."""
        per = self.component_log_likelihoods(x)
        styles = torch.tensor(self.styles)
        return torch.stack([per[:, styles == s].logsumexp(-1) for s in sorted(set(self.styles))], -1)

    def x0_hat(self, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t]: the posterior-weighted mix of the components' linear predictors."""
        posterior = torch.softmax(self.component_log_likelihoods(x_t, abar), -1)
        lanes, frames = self._lanes(x_t.double()), x_t.shape[-2]
        eye = torch.eye(lanes.shape[-1], dtype=torch.float64)
        estimate = torch.zeros_like(lanes)
        for c in range(len(self.weights)):
            cov = self.covariance(c, frames)
            gain = abar.sqrt() * cov @ torch.linalg.inv(abar * cov + (1 - abar) * eye)
            estimate += posterior[:, c, None, None] * (lanes @ gain.T)
        shape = (x_t.shape[0], x_t.shape[3], x_t.shape[1], frames)
        return estimate.view(shape).permute(0, 2, 3, 1).to(x_t.dtype)


def modulated_world(depth: float = 0.8, period: int = 16, channels: int = 2, bins: int = 4) -> MixtureWorld:
    """Plain and amplitude-modulated signals, half each; the modulated style's phase is one of `period` positions."""
    kernel = mixed_kernel(length=4.0, fast=0.2)

    def plain(frames: int, start: int = 0) -> torch.Tensor:
        return torch.kron(torch.eye(channels, dtype=torch.float64), toeplitz(kernel, frames))

    def modulated(phase: int):
        def cov(frames: int, start: int = 0) -> torch.Tensor:
            t = torch.arange(frames, dtype=torch.float64) + start + phase
            envelope = torch.diag(1 + depth * torch.cos(2 * math.pi * t / period))
            return torch.kron(torch.eye(channels, dtype=torch.float64), envelope @ toeplitz(kernel, frames) @ envelope)
        return cov

    return MixtureWorld("modulated", [plain] + [modulated(p) for p in range(period)],
                        [0.5] + [0.5 / period] * period, [0] + [1] * period, channels, bins, period)


def channel_world(rho: float = 0.8, channels: int = 2, bins: int = 4) -> MixtureWorld:
    """Two styles with the same kernel in every channel, the channels correlated +rho or -rho."""
    kernel = mixed_kernel(length=4.0, fast=0.2)

    def style(sign: float):
        mixing = torch.full((channels, channels), sign * rho, dtype=torch.float64).fill_diagonal_(1.0)

        def cov(frames: int, start: int = 0) -> torch.Tensor:
            return torch.kron(mixing, toeplitz(kernel, frames))
        return cov

    return MixtureWorld("channels", [style(1.0), style(-1.0)], [0.5, 0.5], [0, 1], channels, bins)


def canvas_styles(world: MixtureWorld, x: torch.Tensor, window: int) -> torch.Tensor:
    """(canvases,) each canvas's style: the larger sum over its window-sized segments of the style's log likelihood."""
    segments = max(1, x.shape[2] // window)
    pieces = torch.stack([x[:, :, i * window:(i + 1) * window] for i in range(segments)], 1).flatten(0, 1)
    scores = world.log_likelihoods(pieces).view(x.shape[0], segments, -1).sum(1)
    return scores.argmax(-1)


def style_shares(world: MixtureWorld, x: torch.Tensor, window: int) -> list[float]:
    styles = canvas_styles(world, x, window)
    return [float((styles == s).double().mean()) for s in range(len(world.style_weights))]


def modulation_depth(x: torch.Tensor, period: int) -> float:
    """The power envelope's first harmonic at `period`, relative to its mean, averaged over canvases (0 for no
    modulation; 2m / (1 + m^2 / 2) for a whole canvas of depth m)."""
    power = (x.double() ** 2).mean((1, 3))
    t = torch.arange(power.shape[1], dtype=torch.float64)
    usable = power.shape[1] // period * period
    harmonic = (power[:, :usable] * torch.exp(-2j * math.pi * t[:usable] / period)).sum(1).abs()
    return float((2 * harmonic / power[:, :usable].sum(1)).mean())


def rows(lab: Any, world: MixtureWorld) -> list[dict[str, Any]]:
    """Each candidate's style shares, mix error, consistency and modulation depth in `world` (sampled with the lab's
    canvases, seed and steps); the first row is the truth, measured by the same classifier on true signals."""
    from . import metrics
    from .run import CONTROL, Setting, sampled

    generator = torch.Generator().manual_seed(lab.seed)
    truth, _ = world.sample(lab.samples, lab.length, generator)
    truth_shares = style_shares(world, truth, lab.window)
    out = [{"setting": "truth (true signals, the same classifier)", "shares": truth_shares, "mix_error": 0.0,
            "depth": modulation_depth(truth, world.period) if world.period else None, "consistency": None}]
    for method, overlap in CANDIDATES:
        setting = CONTROL if method == "control" else Setting(method, overlap)
        x = sampled(lab, world, setting, generator)
        shares = style_shares(world, x, lab.window)
        segments = max(1, x.shape[2] // lab.window)
        pieces = torch.stack([x[:, :, i * lab.window:(i + 1) * lab.window] for i in range(segments)], 1)
        logl = world.log_likelihoods(pieces.flatten(0, 1)).view(lab.samples, segments, -1)
        out.append({"setting": setting.name, "shares": shares,
                    "mix_error": max(abs(a - b) for a, b in zip(shares, truth_shares, strict=True)),
                    "depth": modulation_depth(x, world.period) if world.period else None,
                    "consistency": metrics.consistency(logl)[0] if segments > 1 else None})
    return out


def markdown(world: MixtureWorld, table: list[dict[str, Any]], lab: Any) -> str:
    """One world's table, with the modulation kept against one window of the model where the world has one."""
    window = next((r["depth"] for r in table if r["setting"].startswith("single window")), None)
    head = "| candidate | share of style 1 | style-mix error | consistency |"
    head += " modulation depth | kept (of one window's) |" if world.period else ""
    lines = [f"World `{world.name}`: {lab.samples} canvases of {lab.length} frames, windows of {lab.window}, "
             f"{lab.steps} {lab.scheduler} steps, seed {lab.seed}.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        cells = [r["setting"], f"{r['shares'][1]:.3f}", f"{r['mix_error']:.3f}",
                 "-" if r["consistency"] is None else f"{r['consistency']:.3f}"]
        if world.period:
            cells += [f"{r['depth']:.3f}", f"{r['depth'] / window:.2f}" if window else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
