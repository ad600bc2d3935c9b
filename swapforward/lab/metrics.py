"""Measures against truth: spectra, band energies, marginal variance, exact Gaussian KL, correlations between views,
and the styles world's consistency. Spectra are Hann-tapered periodograms along the frames; for Gaussian outputs
they are computed exactly from covariances, for samples estimated (mean and standard error)."""

from __future__ import annotations

import math

import torch

#: Frequency bands, in cycles per frame (0 .. 0.5): the slow structure and the fast one.
LOW_BAND = (0.0, 0.08)
HIGH_BAND = (0.2, 0.5)
#: The top of the band, where frame-by-frame alternation (a swap with w = 1) puts its energy.
TOP_BAND = (0.4, 0.5)


def _dft(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies, tapered DFT matrix (freqs, length)) for one-sided periodograms of `length` frames."""
    n = torch.arange(length, dtype=torch.float64)
    freqs = torch.arange(length // 2 + 1, dtype=torch.float64) / length
    window = torch.hann_window(length, periodic=False, dtype=torch.float64)
    window = window / window.pow(2).sum().sqrt()
    phase = -2 * math.pi * freqs[:, None] * n[None, :]
    return freqs, torch.polar(torch.ones_like(phase), phase) * window


def spectrum_of_covariance(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies, expected tapered periodogram) of a zero-mean Gaussian with covariance `cov` (frames x frames)."""
    freqs, matrix = _dft(cov.shape[0])
    power = torch.einsum("fn,nm,fm->f", matrix, cov.to(torch.complex128), matrix.conj()).real
    return freqs, power


def spectrum_of_samples(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frequencies, mean tapered periodogram, its standard error) over samples x (N, channels, frames, bins)."""
    freqs, matrix = _dft(x.shape[-2])
    lanes = x.double().transpose(-1, -2).reshape(x.shape[0], -1, x.shape[-2])
    power = (lanes.to(torch.complex128) @ matrix.T).abs().pow(2).mean(1)  # (N, freqs): per sample, over lanes
    return freqs, power.mean(0), power.std(0) / math.sqrt(x.shape[0])


def log_spectral_distance(power: torch.Tensor, truth: torch.Tensor) -> float:
    """Root mean square of 10 log10(power / truth) over the frequencies, in dB (0 for the true spectrum)."""
    return float((10 * torch.log10(power / truth)).pow(2).mean().sqrt())


def band_ratio(freqs: torch.Tensor, power: torch.Tensor, truth: torch.Tensor, band: tuple[float, float]) -> float:
    """Energy in `band` of `power` over the truth's (1: as much as the true process has)."""
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return float(power[inside].sum() / truth[inside].sum())


#: Noise floor (variance, against the processes' unit variance: -20 dB) added to both sides of `gaussian_kl` when
#: an output is degenerate, so that every method gets a finite, comparable number.
KL_FLOOR = 0.01


def lost_dimensions(cov: torch.Tensor, tolerance: float = 1e-9) -> int:
    """How many directions a Gaussian output with covariance `cov` never varies in (0 for a full-rank output).

    A deterministic sampler that overwrites a frame's state (the reference-guided swap) throws away that frame's
    initial noise, and no later step gives it back: the output then lies in a subspace of the canvas."""
    eigenvalues = torch.linalg.eigvalsh(cov)
    return int((eigenvalues < tolerance * eigenvalues.max()).sum())


def gaussian_kl(cov: torch.Tensor, truth: torch.Tensor, mean: torch.Tensor | None = None,
                true_mean: torch.Tensor | None = None, floor: float = 0.0) -> float:
    """KL(N(mean, cov) || N(true_mean, truth)) per dimension, in nats (means default to zero); infinite for a
    degenerate `cov`. With `floor`, both covariances get `floor` added on the diagonal first (a blurred KL)."""
    d = cov.shape[0]
    eye = torch.eye(d, dtype=torch.float64)
    cov, truth = cov + floor * eye, truth + floor * eye
    if floor == 0 and lost_dimensions(cov):
        return math.inf
    diff = torch.zeros(d, dtype=torch.float64) if mean is None else (mean - (0 if true_mean is None else true_mean))
    inverse = torch.linalg.inv(truth)
    _, logdet_truth = torch.linalg.slogdet(truth)
    _, logdet_cov = torch.linalg.slogdet(cov)
    kl = 0.5 * (torch.trace(inverse @ cov) + diff @ inverse @ diff - d + logdet_truth - logdet_cov)
    return float(kl) / d


def sampled_kl_bias(cov: torch.Tensor, draws: int, floor: float = 0.0) -> float:
    """The expected excess, per dimension, of `gaussian_kl` computed from the second moment `cov` of `draws` samples
    of a zero-mean Gaussian instead of its covariance: with A = (cov + floor I)^-1, (tr(A cov)^2 + tr((A cov)^2)) /
    (4 draws) in all (the second-order term of E log det; without a floor, d (d + 1) / (4 draws), the Wishart law's
    to first order)."""
    product = torch.linalg.solve(cov + floor * torch.eye(cov.shape[0], dtype=cov.dtype), cov)
    return float(product.trace() ** 2 + (product @ product).trace()) / (4 * draws) / cov.shape[0]


def correlation(cov: torch.Tensor, a: int, b: int) -> float:
    return float(cov[a, b] / (cov[a, a] * cov[b, b]).sqrt())


def view_pair_correlations(cov: torch.Tensor, layout) -> list[float]:
    """For each pair of neighbouring views, the mean correlation of the frames at the same position in both views,
    over positions in both views' middles: how much one view copies the next (the truth's is the kernel at the
    stride)."""
    middle = layout.middle
    pairs = []
    for i in range(layout.num_views - 1 + int(layout.loop)):
        j = (i + 1) % layout.num_views
        shared = (middle[i] & middle[j]).nonzero().flatten().tolist()
        a, b = layout.starts[i], layout.starts[j]
        values = [correlation(cov, (a + p) % layout.length, (b + p) % layout.length) for p in shared]
        pairs.append(sum(values) / len(values) if values else float("nan"))
    return pairs


def region_band_ratio(cov: torch.Tensor, truth: torch.Tensor, regions: list[tuple[int, int]], width: int,
                      band: tuple[float, float]) -> float:
    """High- or low-band energy of `width`-frame patches centred in `regions` (overlaps, or middles), against the
    same patches of the true process: where averaging loses detail, the overlaps' ratio falls below 1."""
    ratios = []
    for lo, hi in regions:
        if hi - lo < width:
            continue
        start = lo + (hi - lo - width) // 2
        index = torch.arange(start, start + width)
        freqs, power = spectrum_of_covariance(cov[index][:, index])
        _, true_power = spectrum_of_covariance(truth[index][:, index])
        ratios.append(band_ratio(freqs, power, true_power, band))
    return sum(ratios) / len(ratios) if ratios else float("nan")


def consistency(log_likelihoods: torch.Tensor) -> tuple[float, float]:
    """(share of canvases whose window-sized segments all have the same most likely style, its standard error), from
    (canvases, segments, styles) log likelihoods."""
    styles = log_likelihoods.argmax(-1)
    same = (styles == styles[:, :1]).all(1).double()
    share = float(same.mean())
    return share, math.sqrt(max(share * (1 - share), 1e-12) / len(same))


def fixed_segments(x: torch.Tensor, window: int) -> torch.Tensor:
    """(canvases, segments, channels, window, bins): the window-sized segments of canvases x (canvases, channels,
    frames, bins) at frames 0, W, 2W, ... (at least one)."""
    count = max(1, x.shape[2] // window)
    return torch.stack([x[:, :, i * window:(i + 1) * window] for i in range(count)], 1)


def style_shares(scores: torch.Tensor) -> list[float]:
    """The share of canvases whose (canvases, styles) `scores` pick each style."""
    picked = scores.argmax(-1)
    return [float((picked == s).double().mean()) for s in range(scores.shape[-1])]


def independent_consistency(weights: tuple[float, ...], segments: int) -> float:
    """The consistency of independent windows: the chance that `segments` independent draws share a style."""
    return float(sum(w**segments for w in weights))
