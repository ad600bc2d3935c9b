"""Streams in the lab (issue 35): how should a block continue the last? Chains of blocks in the styles world, where a
long canvas keeps one style throughout, measured against the truth.

Each candidate chains `blocks` blocks of `block_views` views exactly as `pipelines.stream` does (the core's step,
the method's plan, `pipelines.continuation.Continuation` on the first `context` frames of every block after the
first), over `streams` independent streams, and is measured on the stream of new frames:

- agreement: the share of streams whose block k has block 1's style (the most likely style of a window in the middle
  of the block's new frames), at k = 2, 5, 10, 16; the truth is 1, independent blocks give about 0.5;
- style mix: the largest gap between a style's share over all blocks and its true weight;
- repetition: the largest mean correlation between block k's new frames and block 1's at the same positions (what a
  shared, swapped reference would copy), over k >= 2;
- seam: the mean squared step across the first new frame of each block against the truth's, and the variance of
  the frames beside it against the truth's;
- model calls per window of new output (views and reference views evaluated per step, times steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..core.layout import ViewLayout, stride_for
from ..core.methods import METHODS
from ..pipelines.continuation import Continuation
from . import metrics
from .run import Lab, Setting, linear
from .worlds import GaussianWorld, StylesWorld

#: The blocks at which agreement with block 1 is reported.
AGREEMENT_AT = (2, 5, 10, 16)
#: The issue's targets: agreement at the last block, style mix, repetition, seam step and variance.
TARGETS = {"agreement": 0.9, "mix": 0.03, "repetition": 0.10, "seam_step": 1.5, "seam_variance": 0.9}


@dataclass(frozen=True)
class Candidate:
    """One way to chain blocks."""

    method: str
    continuation: str = "trajectory"
    """trajectory, replace, or independent (no context: blocks made apart, the floor)."""
    reference: str = "shared"
    """shared (every block's reference view from the same noise), fresh, anchor (every later block observes the
    first block's last window, clean) or previous (each block observes the previous block's last window)."""
    r_guide: float = 0.3
    envelope_share: float = 0.25
    fade: float = 0.0
    """trajectory: the share of the context, at its end, that ramps into the new frames (replace: a quarter)."""
    guidance: float = 0.0
    """Reconstruction guidance toward the context (`candidates.context_guided`; issue 39)."""

    @property
    def setting(self) -> Setting:
        return Setting(self.method, 0.2, r_guide=self.r_guide, phase="middle", envelope_share=self.envelope_share,
                       kept_guidance=self.guidance)

    @property
    def name(self) -> str:
        parts = [self.continuation]
        if METHODS[self.method].reference and self.continuation != "independent":
            parts.append(f"{self.reference} reference")
            if self.r_guide != 0.3:
                parts.append(f"r_guide {self.r_guide:g}")
            if self.method == "md-envelope" and self.envelope_share != 0.25:
                parts.append(f"share {self.envelope_share:g}")
        if self.continuation == "trajectory" and self.fade:
            parts.append(f"ramp {self.fade:g}")
        if self.guidance:
            parts.append(f"reconstruction guidance {self.guidance:g}")
        return f"{self.method} ({', '.join(parts)})"


#: The candidates the table compares: independent blocks and replacement (the issue's failures), then trajectory
#: continuations with fresh and shared references.
CANDIDATES = (
    Candidate("md-tri", "independent"), Candidate("md-tri", "replace"), Candidate("safa", "replace", "fresh"),
    Candidate("md-tri"), Candidate("safa", reference="fresh"), Candidate("safa"), Candidate("safa", reference="anchor"),
    Candidate("md-envelope", reference="fresh"), Candidate("md-envelope"), Candidate("md-envelope", reference="anchor"),
    Candidate("md-envelope", fade=0.5), Candidate("md-envelope", envelope_share=1.0),
)


def geometry(window: int, block_views: int, overlap: float) -> tuple[int, int]:
    """(context frames, block frames) of a stream's blocks, as `pipelines.stream` lays them out."""
    stride = stride_for(window, overlap)
    return window - stride, window + (block_views - 1) * stride


def run_chain(sub: Lab, world: Any, candidate: Candidate, setting: Setting, blocks: int, context: int,
              draw: Callable[[int], tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The frames each block adds (the whole first block, then each block's frames after its context; every block
    whole when they are independent), for block noises `draw(b)` = (canvas noise, reference noise)."""
    window, steps = sub.window, len(sub.make_scheduler().timesteps)
    follows = candidate.continuation != "independent"
    tail, pieces, out = None, [], None
    for b in range(blocks):
        noise, reference = draw(b)
        continuation = Continuation(2, context, steps, tail if follows else None,
                                    mode="replace" if candidate.continuation == "replace" else "trajectory",
                                    fade=round(context * (candidate.fade if candidate.continuation == "trajectory"
                                                          else 0.25)))
        seen = None
        if candidate.reference in ("anchor", "previous") and b:
            seen = (pieces[0] if candidate.reference == "anchor" else out)[:, :, -window:]
        out = sub.sample(world, setting, noise, reference, kept=continuation, observed=seen)
        tail = continuation.tail()
        pieces.append(out if b == 0 or not follows else out[:, :, context:])
    return pieces


def chain(lab: Lab, world: StylesWorld, candidate: Candidate, blocks: int, streams: int,
          block_views: int = 2, overlap: float = 0.2) -> dict[str, Any]:
    """Run `streams` streams of `blocks` chained blocks of `candidate`; its measures as a table row."""
    window = lab.window
    context, length = geometry(window, block_views, overlap)
    sub = replace(lab, length=length, results=[])
    setting = replace(candidate.setting, overlap=overlap)
    generator = torch.Generator().manual_seed(lab.seed)
    shape = (streams, world.channels, length, world.bins)
    shared = torch.randn(streams, world.channels, window, world.bins, generator=generator, dtype=torch.float64)

    def draw(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        fresh = torch.randn(shared.shape, generator=generator, dtype=torch.float64)
        return noise, shared if candidate.reference == "shared" else fresh

    pieces = run_chain(sub, world, candidate, setting, blocks, context, draw)
    steps = len(sub.make_scheduler().timesteps)
    new = length - context
    styles = torch.stack([_style(world, piece, window) for piece in pieces], 1)  # (streams, blocks)
    agreement = {k: float((styles[:, k - 1] == styles[:, 0]).double().mean()) for k in AGREEMENT_AT if k <= blocks}
    shares = [float((styles == s).double().mean()) for s in range(len(world.kernels))]
    mix = max(abs(share - weight) for share, weight in zip(shares, world.weights, strict=True))
    first = pieces[0][:, :, -new:]
    repetition = max(_correlation(piece[:, :, -new:], first) for piece in pieces[1:])
    stream = torch.cat(pieces, 2)
    borders = [pieces[0].shape[2] + i * pieces[1].shape[2] for i in range(blocks - 1)]
    inside = [b + new // 2 for b in borders]  # the same measures in the middle of the new frames
    true_step, true_variance = _truth(world)
    step, step_inside = (_steps(stream, at) / true_step for at in (borders, inside))
    variance, variance_inside = (_variance(stream, at) / true_variance for at in (borders, inside))
    views = ViewLayout.build(length, window, overlap=overlap).num_views
    guided = round(steps * setting.r_guide) if METHODS[candidate.method].reference else 0
    calls = views * steps + guided
    return {"candidate": candidate.name, "blocks": blocks, "streams": streams, "agreement": agreement,
            "style_shares": shares, "mix_error": mix, "repetition": repetition,
            "seam_step": step, "seam_variance": variance, "inside_step": step_inside,
            "inside_variance": variance_inside,
            "calls_per_window": calls * window / new, "context": context, "block_frames": length}


def gaussian_row(lab: Lab, world: GaussianWorld, candidate: Candidate, blocks: int = 4, draws: int = 16384,
                 block_views: int = 2, overlap: float = 0.2) -> dict[str, Any]:
    """The Gaussian world's exact measures of a chain of `blocks` (sampled over `draws` streams for a guidance that
    is not linear): the KL per frame of the stream against the truth, and of one canvas of the same length made by
    the same method in one joint run, and the dimensions each loses."""
    window = lab.window
    context, length = geometry(window, block_views, overlap)
    sub = replace(lab, length=length, results=[])
    setting = replace(candidate.setting, overlap=overlap)
    lane = replace(world, channels=1, bins=1)
    exact = linear(setting)
    per_block = candidate.reference != "shared"
    if exact:  # every noise a unit vector: the stream is A z
        inputs = blocks * length + (blocks if per_block else 1) * window
        eye = torch.eye(inputs, dtype=torch.float64)

        def draw(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            first = blocks * length + (b if per_block else 0) * window
            return (eye[:, b * length:(b + 1) * length].reshape(inputs, 1, length, 1),
                    eye[:, first:first + window].reshape(inputs, 1, window, 1))

        a = torch.cat(run_chain(sub, lane, candidate, setting, blocks, context, draw), 2).reshape(inputs, -1)
        cov = a.T @ a
    else:
        generator = torch.Generator().manual_seed(lab.seed + 4)
        shared = torch.randn(draws, 1, window, 1, generator=generator, dtype=torch.float64)

        def draw(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(draws, 1, length, 1, generator=generator, dtype=torch.float64)
            fresh = torch.randn(shared.shape, generator=generator, dtype=torch.float64)
            return noise, fresh if per_block else shared

        out = torch.cat(run_chain(sub, lane, candidate, setting, blocks, context, draw), 2).reshape(draws, -1)
        cov = out.T @ out / draws
    frames = cov.shape[0]
    truth = world.covariance(frames)
    whole = replace(lab, length=frames, results=[])
    if exact:
        matrix, _ = whole.linear_map(world, setting)
        whole_cov = matrix @ matrix.T
    else:
        whole_cov = replace(whole, draws=draws).sampled_moments(world, setting)[1]
    bias = 0.0 if exact else metrics.sampled_kl_bias(cov, draws)
    whole_bias = 0.0 if exact else metrics.sampled_kl_bias(whole_cov, draws)
    return {"candidate": candidate.name, "blocks": blocks, "frames": frames, "sampled": not exact,
            "kl_per_frame": metrics.gaussian_kl(cov, truth) - bias,
            "whole_kl_per_frame": metrics.gaussian_kl(whole_cov, truth) - whole_bias,
            "lost_dimensions": metrics.lost_dimensions(cov),
            "whole_lost_dimensions": metrics.lost_dimensions(whole_cov)}


def gaussian_markdown(rows: list[dict[str, Any]]) -> str:
    """The chains' KL and lost dimensions, beside one joint run of the same length."""
    lines = ["| candidate | frames | KL / frame, stream | KL / frame, one run of that length | ratio | lost dims, "
             "stream / one run |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        kl, whole = r["kl_per_frame"], r["whole_kl_per_frame"]
        ratio = f"{kl / whole:.2f}" if math.isfinite(kl) and math.isfinite(whole) and whole > 0 else "-"
        lines.append(f"| {r['candidate']}{' *' if r['sampled'] else ''} | {r['frames']} | {_kl(kl)} | {_kl(whole)} | "
                     f"{ratio} | {r['lost_dimensions']} / {r['whole_lost_dimensions']} |")
    return "\n".join(lines) + "\n"


def _kl(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "∞"


#: The chains whose KL the Gaussian table gives (exact where linear; md-envelope sampled).
GAUSSIAN_CANDIDATES = (Candidate("md-tri", "independent"), Candidate("md-tri", "replace"), Candidate("md-tri"),
                       Candidate("safa", reference="fresh"), Candidate("safa"), Candidate("md-envelope"))


def single_window(lab: Lab, world: StylesWorld, streams: int) -> dict[str, Any]:
    """The floor of the style mix: single windows of the model itself, classified as the blocks are."""
    generator = torch.Generator().manual_seed(lab.seed + 3)
    sub = replace(lab, length=lab.window, results=[])
    noise = torch.randn(streams, world.channels, lab.window, world.bins, generator=generator, dtype=torch.float64)
    out = sub.sample(world, Setting("control"), noise, noise)
    styles = world.log_likelihoods(out).argmax(-1)
    shares = [float((styles == s).double().mean()) for s in range(len(world.kernels))]
    return {"style_shares": shares,
            "mix_error": max(abs(a - b) for a, b in zip(shares, world.weights, strict=True))}


def meets(row: dict[str, Any]) -> dict[str, bool]:
    """Which of the issue's targets a row meets."""
    last = row["agreement"][max(row["agreement"])]
    return {"agreement": last >= TARGETS["agreement"], "mix": row["mix_error"] <= TARGETS["mix"],
            "repetition": row["repetition"] <= TARGETS["repetition"],
            "seam": row["seam_step"] <= TARGETS["seam_step"] and row["seam_variance"] >= TARGETS["seam_variance"]}


def table(lab: Lab, world: StylesWorld, blocks: int = 16, streams: int = 256,
          candidates: tuple[Candidate, ...] = CANDIDATES, progress: Any = None) -> list[dict[str, Any]]:
    """Every candidate's row, with the targets it meets."""
    rows = []
    for candidate in candidates:
        row = chain(lab, world, candidate, blocks, streams)
        row["targets"] = meets(row)
        rows.append(row)
        if progress is not None:
            progress(f"stream: {candidate.name}")
    return rows


def markdown(rows: list[dict[str, Any]], control: dict[str, Any] | None = None) -> str:
    """The stream table, as docs/lab.md shows it (with the single window's style mix above it when given)."""
    at = [k for k in AGREEMENT_AT if k <= rows[0]["blocks"]]
    lines = [] if control is None else [
        f"A single window (the model itself) makes the styles {', '.join(f'{s:.3f}' for s in control['style_shares'])}"
        f" of the time (truth: equal shares): the sampler's and classifier's own style mix error is "
        f"{control['mix_error']:.3f}.\n"]
    lines += ["| candidate | " + " | ".join(f"agreement k={k}" for k in at) + " | style mix error | repetition | "
             "seam step / truth | seam variance / truth | inside: step, variance / truth | calls per window | "
             "targets missed |",
             "| --- |" + " ---: |" * (len(at) + 6) + " --- |"]
    for r in rows:
        missed = ", ".join(name for name, ok in r["targets"].items() if not ok) or "none"
        lines.append(f"| {r['candidate']} | " + " | ".join(f"{r['agreement'][k]:.3f}" for k in at) +
                     f" | {r['mix_error']:.3f} | {r['repetition']:.3f} | {r['seam_step']:.2f} | "
                     f"{r['seam_variance']:.2f} | {r['inside_step']:.2f}, {r['inside_variance']:.2f} | "
                     f"{r['calls_per_window']:.1f} | {missed} |")
    return "\n".join(lines) + "\n"


def _style(world: StylesWorld, piece: torch.Tensor, window: int) -> torch.Tensor:
    """(streams,) the most likely style of the window in the middle of each stream's `piece` of new frames."""
    start = (piece.shape[2] - window) // 2
    return world.log_likelihoods(piece[:, :, start:start + window]).argmax(-1)


def _steps(stream: torch.Tensor, at: list[int]) -> float:
    """The mean squared step from frame a - 1 to frame a, over the frames `at`."""
    return float(torch.stack([(stream[:, :, a] - stream[:, :, a - 1]).pow(2).mean() for a in at]).mean())


def _variance(stream: torch.Tensor, at: list[int]) -> float:
    """The mean square of frames a - 1 and a, over the frames `at` (the truth's mean is zero)."""
    return float(torch.stack([stream[:, :, a - 1:a + 1].pow(2).mean() for a in at]).mean())


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over streams and lanes of the correlation along the frames of a and b (streams, channels, frames, bins)."""
    a = a - a.mean(2, keepdim=True)
    b = b - b.mean(2, keepdim=True)
    r = (a * b).sum(2) / (a.pow(2).sum(2) * b.pow(2).sum(2)).sqrt()
    return float(r.mean())


def _truth(world: StylesWorld) -> tuple[float, float]:
    """The true mean squared step between neighbouring frames and the true frame variance (over the style mix)."""
    from .worlds import toeplitz

    covs = [toeplitz(k, 2) for k in world.kernels]
    weights = world.weights
    step = sum(w * float(c[0, 0] + c[1, 1] - 2 * c[0, 1]) for w, c in zip(weights, covs, strict=True))
    variance = sum(w * float(c[0, 0]) for w, c in zip(weights, covs, strict=True))
    return step, variance

