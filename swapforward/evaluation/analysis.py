"""The spectral analysis of the paper's Fig. 2(b): how averaging or swapping shapes the overlaps' spectrum.

For every method, the denoised canvas latent is recorded after each step. Patches as wide as the narrowest overlap
are cut from the overlap regions and from the middle (non-overlap) regions, the paper's reference. For each
patch the 2-D Fourier amplitude, averaged over channels and over rings of equal frequency, gives a relative
log-amplitude curve log|F(f)| - log|F(0)| for f from 0 to pi. Averaging suppresses the high frequencies of the
overlaps (their curve falls below the reference's), swapping should not.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.layout import ViewLayout
from ..errors import SwapForwardError
from ..io.files import write_atomic


def relative_log_amplitude(patch: torch.Tensor, bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in [0, pi], log|F(f)| - log|F(0)|) of a (channels, rows, cols) patch, averaged over rings."""
    patch = patch.float()
    amplitude = torch.fft.fftshift(torch.fft.fft2(patch), dim=(-2, -1)).abs().mean(0)
    rows, cols = amplitude.shape
    y = (torch.arange(rows) - rows // 2).float() / max(1, rows // 2)
    x = (torch.arange(cols) - cols // 2).float() / max(1, cols // 2)
    radius = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2).clamp(max=1.0)  # 1 = the Nyquist frequency, pi
    index = torch.round(radius * (bins - 1)).long()
    total = torch.zeros(bins).index_add_(0, index.flatten(), amplitude.flatten())
    count = torch.zeros(bins).index_add_(0, index.flatten(), torch.ones(index.numel()))
    frequencies = np.linspace(0.0, math.pi, bins)
    filled = (count > 0).numpy()
    log_amp = torch.log((total[count > 0] / count[count > 0]).clamp(min=1e-12)).numpy()
    log_amp = np.interp(frequencies, frequencies[filled], log_amp)  # rings a small patch has no cell on
    return frequencies, log_amp - log_amp[0]


def region_patches(canvas: torch.Tensor, layout: ViewLayout, axis: int) -> dict[str, list[torch.Tensor]]:
    """Equal-width (channels, rows, cols) patches of a batch-1 canvas: 'overlap' regions and 'reference' (middle)."""
    covered = (layout.coverage > 1).int().tolist()
    edges = np.flatnonzero(np.diff([0] + covered + [0]))
    overlaps = [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2], strict=False)]
    middles = [m for m in (layout.indices[i][layout.middle[i]].tolist() for i in range(layout.num_views))
               if m and m == list(range(m[0], m[0] + len(m)))]
    if not overlaps or not middles:
        raise SwapForwardError(
            "The layout has no " + ("overlaps" if not overlaps else "frames that only one view covers (the reference "
                                    "region)") + " to analyse; ask for a longer output or a smaller overlap."
        )
    width = min(min(hi - lo for lo, hi in overlaps), max(len(m) for m in middles))  # patches fit both regions
    patches: dict[str, list[torch.Tensor]] = {"overlap": [], "reference": []}
    for lo, hi in overlaps:
        start = lo + (hi - lo - width) // 2
        patches["overlap"].append(canvas[0].narrow(axis - 1 if axis > 0 else axis, start, width))
    for middle in middles:
        if len(middle) >= width:
            start = middle[0] + (len(middle) - width) // 2
            patches["reference"].append(canvas[0].narrow(axis - 1 if axis > 0 else axis, start, width))
    return patches


def _profile(patches: list[torch.Tensor], axis: int, bins: int) -> np.ndarray:
    """Mean relative log amplitude over patches, each laid out as (channels, rows, cols) with time/width last."""
    curves = []
    for patch in patches:
        if axis % 4 == 2:  # audio latents are (channels, time, freq): put the long axis last like images
            patch = patch.transpose(-1, -2)
        curves.append(relative_log_amplitude(patch, bins)[1])
    return np.mean(curves, axis=0)


@dataclass
class SpectralAnalysis:
    """Curves per method: `curves[method][step][region]` is the relative log amplitude at `frequencies`."""

    frequencies: np.ndarray
    steps: list[int]
    curves: dict[str, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for method, by_step in self.curves.items():
            for step, regions in by_step.items():
                for region, curve in regions.items():
                    for f, value in zip(self.frequencies, curve, strict=False):
                        out.append(dict(method=method, step=step, region=region, frequency=round(float(f), 6),
                                        relative_log_amplitude=round(float(value), 6)))
        return out

    def save(self, folder: str | os.PathLike, title: str = "") -> list[str]:
        """Write analysis.csv, analysis.json and analysis.png into `folder`; returns the paths."""
        os.makedirs(folder, exist_ok=True)
        rows = self.rows()
        csv_path, json_path, png_path = (os.path.join(folder, f"analysis.{ext}") for ext in ("csv", "json", "png"))

        def write_csv(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

        write_atomic(csv_path, write_csv)
        data = {"frequencies": self.frequencies.tolist(), "steps": self.steps,
                "curves": {m: {str(s): {r: c.tolist() for r, c in reg.items()} for s, reg in by.items()}
                           for m, by in self.curves.items()}}
        write_atomic(json_path, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))
        write_atomic(png_path, lambda tmp: self._plot(tmp, title))
        return [csv_path, json_path, png_path]

    def _plot(self, path: str, title: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
        last = self.steps[-1]
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, (method, by_step) in enumerate(self.curves.items()):
            color = colors[k % len(colors)]
            left.plot(self.frequencies, by_step[last]["overlap"], color=color, label=f"{method}: overlap")
            if k == 0:
                left.plot(self.frequencies, by_step[last]["reference"], color="black", ls="--",
                          label=f"non-overlap (reference, {method})")
            gap = [by_step[s]["overlap"][-1] - by_step[s]["reference"][-1] for s in self.steps]
            right.plot(self.steps, gap, color=color, marker=".", label=method)
        left.set_xlabel("frequency (0 to pi)")
        left.set_ylabel("relative log amplitude")
        left.set_title(f"after the last step ({last})", fontsize=9)
        left.legend(fontsize=7)
        right.axhline(0, color="black", lw=0.5)
        right.set_xlabel("denoising step")
        right.set_ylabel("overlap - reference at pi")
        right.set_title("high-frequency loss in the overlaps over the steps", fontsize=9)
        right.legend(fontsize=7)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)


def analyze(
    pipe: Any, request: Any, methods: list[str], every: int = 1, bins: int = 16, progress_bar: bool = True,
    **options: Any
) -> SpectralAnalysis:
    """Run `pipe` (LongAudioPipeline or PanoramaPipeline) once per method, recording the canvas every `every` steps
    (a progress bar per method shows the steps).

    `request` is a checked request of the pipeline's spec, or a prompt with the other `options` as keywords.
    """
    if isinstance(request, str):
        request = pipe.spec.check({"prompt": request, **options})
    axis = pipe.adapter.long_axis
    result: SpectralAnalysis | None = None
    for method in methods:
        recorded: dict[int, torch.Tensor] = {}
        steps_total = [0]

        def record(k: int, t: torch.Tensor, canvas: torch.Tensor, recorded=recorded, steps_total=steps_total) -> None:
            steps_total[0] = k + 1
            if (k + 1) % every == 0:
                recorded[k + 1] = canvas.detach().float().cpu()

        out = pipe.generate(request.replace(method=method), callback=record, progress_bar=progress_bar)
        if steps_total[0] not in recorded:
            recorded[steps_total[0]] = out.latents.detach().float().cpu()
        layout = out.layout
        curves = {}
        for step, canvas in sorted(recorded.items()):
            patches = region_patches(canvas, layout, axis % canvas.ndim)
            curves[step] = {region: _profile(p, axis % canvas.ndim, bins) for region, p in patches.items() if p}
        if result is None:
            result = SpectralAnalysis(np.linspace(0.0, math.pi, bins), sorted(recorded))
        result.curves[method] = curves
    return result
