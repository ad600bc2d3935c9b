"""Sound ready to drop into a project: exact lengths, sample rates, loudness, and the settings written beside it.

- `resample_circular`: a loop resampled as a circle (scipy's Fourier resampling), so that a loop whose latent frames
  do not fill an exact number of samples (or of bars) is brought to that count without a seam at the wrap.
- `resample`: a plain clip to another sample rate, with soxr (band-limited, high quality).
- `normalize_loudness`: integrated loudness (ITU-R BS.1770, pyloudnorm) brought to a target, never clipping: when
  the gain would push the true peak (4x oversampled) above -1 dBTP, the gain is lowered and the result says so.
- `settings`: what made a take (prompt, seed, method, model, version, tempo, every option), for tags and sidecars.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..errors import SwapForwardError

#: The highest true peak a normalised file may have (the EBU R 128 / streaming convention).
TRUE_PEAK_DBTP = -1.0
#: pyloudnorm measures in 400 ms blocks: shorter audio has no integrated loudness.
LOUDNESS_MIN_SECONDS = 0.4


def resample_circular(audio: np.ndarray, samples: int) -> np.ndarray:
    """(channels, n) periodic audio -> (channels, `samples`), band-limited in the frequency domain (scipy's Fourier
    resampling, which treats the signal as one period), so the result is still periodic: its end meets its start."""
    if samples == audio.shape[-1]:
        return audio
    from scipy.signal import resample as fourier

    return np.ascontiguousarray(fourier(audio.astype(np.float64), samples, axis=-1), dtype=np.float32)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(channels, samples) audio from `rate` to `target` Hz with soxr ('VHQ')."""
    if rate == target:
        return audio
    import soxr

    return np.ascontiguousarray(soxr.resample(audio.T.astype(np.float64), rate, target, quality="VHQ").T,
                                dtype=np.float32)


def true_peak(audio: np.ndarray, rate: int) -> float:
    """The largest magnitude of the samples and of the 4x oversampled signal (the peaks between samples a DAC
    reproduces)."""
    return float(max(np.abs(audio).max(initial=0.0), np.abs(resample(audio, rate, 4 * rate)).max(initial=0.0)))


def normalize_loudness(audio: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, str | None]:
    """(audio at `target_lufs` integrated loudness, None) or, when that would take the true peak above -1 dBTP,
    (audio with the peak at -1 dBTP, a sentence saying what loudness it reached instead); a silent take is returned
    as it is, with a sentence saying so (a finished generation is never thrown away for its loudness)."""
    import pyloudnorm

    if audio.shape[-1] < LOUDNESS_MIN_SECONDS * rate:
        raise SwapForwardError(f"Loudness needs at least {LOUDNESS_MIN_SECONDS} s of audio to measure; this take has "
                               f"{audio.shape[-1] / rate:.2f} s.")
    meter = pyloudnorm.Meter(rate)
    measured = meter.integrated_loudness(audio.T.astype(np.float64))
    if not math.isfinite(measured):
        return audio, silent_note(target_lufs)
    gain = 10 ** ((target_lufs - measured) / 20)
    out = (audio * gain).astype(np.float32)
    ceiling = 10 ** (TRUE_PEAK_DBTP / 20)
    peak = true_peak(out, rate)
    if peak <= ceiling:
        return out, None
    out = (out * (0.9999 * ceiling / peak)).astype(np.float32)  # a hair under, against float32 rounding
    reached = meter.integrated_loudness(out.T.astype(np.float64))
    return out, limited_note(reached, target_lufs)


def silent_note(target_lufs: float) -> str:
    return (f"this take is silent (below -70 LUFS), so it was written as generated: the loudness target "
            f"{target_lufs:g} LUFS was not applied")


def limited_note(reached: float, target_lufs: float) -> str:
    return (f"the loudness was limited to {reached:.1f} LUFS (asked {target_lufs:g}) to keep the true peak at "
            f"{TRUE_PEAK_DBTP:g} dBTP without clipping")


class LoudnessMeter:
    """BS.1770 integrated loudness and the 4x oversampled true peak of audio given piece by piece, in order: what
    `normalize_loudness` measures, for hours of audio that are never held whole (pyloudnorm's K-weighting filters,
    carried across pieces, and its 400 ms blocks, 75% overlapping, gated at -70 LUFS and 10 LU below)."""

    def __init__(self, rate: int):
        import pyloudnorm

        self.rate, self.channels = rate, 0
        self.stages = [(f.b, f.a, f.passband_gain) for f in pyloudnorm.Meter(rate)._filters.values()]
        self.done, self.peak = 0, 0.0
        self.sums: list[np.ndarray] = []  # squared filtered samples per 100 ms step, per channel

    def add(self, piece: np.ndarray) -> None:
        """The next (channels, n) samples."""
        import soxr
        from scipy.signal import lfilter

        data = np.asarray(piece, dtype=np.float64)
        if not self.channels:  # the first piece says how many channels
            self.channels = data.shape[0]
            self.states = [np.zeros((self.channels, max(len(b), len(a)) - 1)) for b, a, _ in self.stages]
            self.oversample = soxr.ResampleStream(self.rate, 4 * self.rate, self.channels, dtype="float64",
                                                  quality="VHQ")
        self.peak = max(self.peak, float(np.abs(data).max(initial=0.0)),
                        float(np.abs(self.oversample.resample_chunk(data.T)).max(initial=0.0)))
        for i, (b, a, gain) in enumerate(self.stages):
            data, self.states[i] = lfilter(b, a, data, axis=-1, zi=self.states[i])
            data = gain * data
        step = round(0.1 * self.rate)
        squares = np.square(data)
        start = self.done
        edges = np.arange((start // step + 1) * step, start + data.shape[-1], step) - start
        parts = np.split(squares, edges, axis=-1)
        for k, part in enumerate(parts):
            index = start // step + k
            while len(self.sums) <= index:
                self.sums.append(np.zeros(self.channels))
            self.sums[index] += part.sum(axis=-1)
        self.done += data.shape[-1]

    def finish(self) -> tuple[float, float]:
        """(integrated loudness in LUFS, -inf for silence; true peak as a linear magnitude)."""
        tail = self.oversample.resample_chunk(np.zeros((0, self.channels)), last=True)
        self.peak = max(self.peak, float(np.abs(tail).max(initial=0.0)))
        steps = np.array(self.sums).T  # (channels, steps of 100 ms)
        blocks = int(np.round((self.done / self.rate - 0.4) / 0.1)) + 1
        z = np.stack([steps[:, j:j + 4].sum(axis=-1) for j in range(blocks)], axis=-1) / (0.4 * self.rate)
        weights = np.array([1.0, 1.0, 1.0, 1.41, 1.41][: self.channels])[:, None]
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10 * np.log10((weights * z).sum(axis=0))
            gated = loudness >= -70.0
            if not gated.any():
                return -math.inf, self.peak
            relative = -0.691 + 10 * np.log10((weights[:, 0] * z[:, gated].mean(axis=-1)).sum()) - 10.0
            kept = (loudness > relative) & gated
            return float(-0.691 + 10 * np.log10((weights[:, 0] * z[:, kept].mean(axis=-1)).sum())), self.peak


def loudness_gain(measured: float, peak: float, target_lufs: float) -> tuple[float, str | None]:
    """The gain `normalize_loudness` applies, from a measured loudness and true peak (a stream's, measured once)."""
    if not math.isfinite(measured):
        return 1.0, silent_note(target_lufs)
    gain = 10 ** ((target_lufs - measured) / 20)
    ceiling = 10 ** (TRUE_PEAK_DBTP / 20)
    if peak * gain <= ceiling:
        return gain, None
    limited = gain * 0.9999 * ceiling / (peak * gain)
    return limited, limited_note(measured + 20 * math.log10(limited), target_lufs)


def settings(request: Any, seed: int | None, model: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What made a take, JSON-ready: every option of its request, the seed it used, the model and the version."""
    from .. import __version__
    from ..prompts import Segment

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Segment):
            return {"start": value.start, "prompt": value.prompt, "negative_prompt": value.negative_prompt}
        return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)

    return {"swapforward": __version__, "model": model, **{k: plain(v) for k, v in request.items()},
            "seed": seed, **(extra or {})}


def settings_json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=1, sort_keys=True)
