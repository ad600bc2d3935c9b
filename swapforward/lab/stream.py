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

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..core.layout import ViewLayout, stride_for
from ..core.methods import METHODS
from ..pipelines.continuation import Continuation
from .run import Lab, Setting
from .worlds import StylesWorld

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

    @property
    def setting(self) -> Setting:
        return Setting(self.method, 0.2, r_guide=self.r_guide, phase="middle", envelope_share=self.envelope_share)

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
        return f"{self.method} ({', '.join(parts)})"


#: The candidates the table compares: independent blocks and replacement (the issue's failures), then trajectory
#: continuations with fresh and shared references.
CANDIDATES = (
    Candidate("md-tri", "independent"), Candidate("md-tri", "replace"), Candidate("safa", "replace", "fresh"),
    Candidate("md-tri"), Candidate("safa", reference="fresh"), Candidate("safa"), Candidate("safa", reference="anchor"),
    Candidate("md-envelope", reference="fresh"), Candidate("md-envelope"), Candidate("md-envelope", reference="anchor"),
    Candidate("md-envelope", fade=0.5), Candidate("md-envelope", envelope_share=1.0),
)


def chain(lab: Lab, world: StylesWorld, candidate: Candidate, blocks: int, streams: int,
          block_views: int = 2, overlap: float = 0.2) -> dict[str, Any]:
    """Run `streams` streams of `blocks` chained blocks of `candidate`; its measures as a table row."""
    window = lab.window
    stride = stride_for(window, overlap)
    context, length = window - stride, window + (block_views - 1) * stride
    sub = replace(lab, length=length, results=[])
    setting = replace(candidate.setting, overlap=overlap)
    generator = torch.Generator().manual_seed(lab.seed)
    shape = (streams, world.channels, length, world.bins)
    shared = torch.randn(streams, world.channels, window, world.bins, generator=generator, dtype=torch.float64)
    steps = len(sub.make_scheduler().timesteps)
    tail, pieces, out = None, [], None
    for b in range(blocks):
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        fresh = torch.randn(shared.shape, generator=generator, dtype=torch.float64)
        reference = shared if candidate.reference == "shared" else fresh
        follows = candidate.continuation != "independent"
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
            "seam_step": step, "seam_variance": variance, "inside_step": step_inside, "inside_variance": variance_inside,
            "calls_per_window": calls * window / new, "context": context, "block_frames": length}


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

