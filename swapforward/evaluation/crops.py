"""Cutting long outputs into model-sized pieces, as the paper's protocol does before computing metrics."""

from __future__ import annotations

import math

import numpy as np


def sliding_windows(length: int, window: int, step: int) -> list[tuple[int, int]]:
    """(start, end) of windows of `window` samples every `step`, the last one aligned to the end; one if shorter."""
    if length <= window:
        return [(0, length)]
    count = math.ceil((length - window) / step) + 1
    starts = [min(i * step, length - window) for i in range(count)]
    return [(s, s + window) for s in sorted(set(starts))]


def audio_windows(samples: int, sample_rate: int, seconds: float = 10.0, overlap: float | None = 0.2,
                  step_seconds: float | None = None) -> list[tuple[int, int]]:
    """10 s windows of a waveform: overlap 0.2 as in Table 2, or a fixed step (8 s in Table 5)."""
    window = round(seconds * sample_rate)
    step = round(step_seconds * sample_rate) if step_seconds else max(1, round(window * (1 - (overlap or 0))))
    return sliding_windows(samples, window, step)


def image_crops(width: int, crop: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Column ranges of view-size crops of a panorama (FID/KID/CLIP), `stride` apart (default: the crop width)."""
    return sliding_windows(width, crop, stride or crop)


def region_crops(width: int, crop: int, regions: int = 5, seed: int = 0) -> list[tuple[int, int]]:
    """One random `crop`-wide crop inside each of `regions` equal, non-overlapping regions (Intra-LPIPS/-Style)."""
    rng = np.random.default_rng(seed)
    size = width // regions
    if size < crop:
        raise ValueError(f"a {width}-pixel panorama has no {regions} regions of at least {crop} pixels")
    out = []
    for r in range(regions):
        start = r * size + int(rng.integers(0, size - crop + 1))
        out.append((start, start + crop))
    return out
