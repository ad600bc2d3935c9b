"""A differentiable log-mel spectrogram, for pictures and perceptual losses of waveforms."""

from __future__ import annotations

import math

import torch


def log_mel(wave: torch.Tensor, sample_rate: int, bins: int = 64, hop: int = 512) -> torch.Tensor:
    """(samples,) waveform -> (frames, bins) log power on an HTK mel scale up to Nyquist; differentiable."""
    n_fft = min(4 * hop, 2 ** int(math.log2(max(8, wave.shape[-1]))))  # short clips get a shorter window
    hop = n_fft // 4
    power = torch.stft(wave, n_fft, hop, window=torch.hann_window(n_fft, device=wave.device), pad_mode="constant",
                       return_complex=True).abs() ** 2
    mel_of = lambda hz: 1127.0 * math.log(1.0 + hz / 700.0)  # noqa: E731
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, device=wave.device)
    mels = 1127.0 * torch.log1p(freqs / 700.0)
    edges = torch.linspace(mel_of(20.0), mel_of(sample_rate / 2), bins + 2, device=wave.device)
    lower = (mels[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - mels[:, None]) / (edges[2:] - edges[1:-1])
    weights = torch.clamp(torch.minimum(lower, upper), min=0)
    return torch.log10(power.T @ weights + 1e-10)
