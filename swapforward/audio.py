"""`LongAudioPipeline`: long, optionally looping audio from AudioLDM / AudioLDM2 with SaFa or MultiDiffusion."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .core.layout import ViewLayout
from .errors import SwapForwardError
from .files import save_spectrogram, write_audio
from .joint import (
    JointOptions,
    JointPipeline,
    check_joint_options,
    number,
    run_joint,
    seeded,
)
from .models import AUDIO_ADAPTERS
from .runtime import available_memory_bytes


@dataclass
class LongAudioOutput:
    """What a generation returns: the waveform and everything needed to inspect or reuse it."""

    audio: np.ndarray
    """float32 waveform, (channels, samples)."""
    sample_rate: int
    latents: torch.Tensor
    """Final long latent x_0, batch 1."""
    mel_spectrogram: np.ndarray
    """Decoded mel spectrogram, (frames, bins), covering the returned audio."""
    layout: ViewLayout
    method: str
    model_calls: int
    frame_seconds: float
    """Seconds per latent frame (view boundaries in seconds are layout frames times this)."""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def overlap_spans(self) -> list[tuple[float, float]]:
        """(start, end) in seconds of every run of frames that more than one view covers."""
        covered = (self.layout.coverage > 1).int().tolist()
        edges = np.flatnonzero(np.diff([0] + covered + [0]))
        pairs = zip(edges[::2], edges[1::2], strict=True)
        return [(lo * self.frame_seconds, min(hi * self.frame_seconds, self.seconds)) for lo, hi in pairs]

    def save(self, path: str | os.PathLike) -> str:
        """Write the audio as WAV or FLAC (by extension), atomically."""
        return str(write_audio(path, self.audio, self.sample_rate))

    def save_spectrogram(self, path: str | os.PathLike, title: str = "") -> str:
        """Write a PNG of the mel spectrogram with view starts and overlaps marked."""
        starts = [s * self.frame_seconds for s in self.layout.starts]
        return str(save_spectrogram(path, self.mel_spectrogram, self.seconds, starts, self.overlap_spans(), title))


#: Host memory per output sample at the end of a run: the waveform, its cross-fade buffers, the spectrogram
#: (fewer values than samples) and their copies, at 4 bytes each.
_BYTES_PER_SAMPLE = 32


@dataclass(frozen=True)
class AudioRequest:
    """A checked audio request: the prompt, the lengths and the joint-diffusion options."""

    prompt: str
    seconds: float
    window_seconds: float | None
    options: JointOptions


def check_audio_request(
    prompt: Any,
    audio_length_in_s: Any,
    window_seconds: Any = None,
    method: Any = "safa",
    overlap: Any = 0.2,
    r_guide: Any = 0.3,
    swap_interval: Any = 1,
    tail_shift: Any = 0,
    num_inference_steps: Any = 200,
    guidance_scale: Any = 3.5,
    view_batch_size: Any = None,
    seed: Any = None,
    **baseline: Any,
) -> AudioRequest:
    """Check every argument without a model, so that the CLI refuses bad input before loading one.

    `window_seconds` None stands for the model's default view length; `baseline` holds MAD's and SyncDiffusion's
    options (mad_ratio, sync_weight, sync_decay, sync_ratio).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise SwapForwardError("The prompt is empty; describe the sound to generate.")
    seconds = number("audio_length_in_s", audio_length_in_s)
    if not seconds > 0:
        raise SwapForwardError(f"audio_length_in_s must be more than 0 seconds, got {audio_length_in_s!r}.")
    window_s = None if window_seconds is None else number("window_seconds", window_seconds)
    if window_s is not None and not 0 < window_s < math.inf:
        raise SwapForwardError(f"window_seconds must be a finite number of seconds > 0, got {window_seconds!r}.")
    options = check_joint_options(
        method, overlap, r_guide, swap_interval, tail_shift, num_inference_steps, guidance_scale, view_batch_size, seed,
        **baseline,
    )
    return AudioRequest(prompt=prompt, seconds=seconds, window_seconds=window_s, options=options)


class LongAudioPipeline(JointPipeline):
    """Long-form text-to-audio by joint diffusion over window-sized views of one long latent.

    Build it with `from_pretrained(model_id)` (e.g. cvssp/audioldm-s-full-v2) or `from_pipe(pipeline)` with a
    loaded `AudioLDMPipeline` or `AudioLDM2Pipeline`, then call it with a prompt.
    """

    adapters = AUDIO_ADAPTERS
    kind = "audio"

    def frames_for(self, seconds: float, loop: bool) -> tuple[int, int]:
        """(latent frames, output samples) for `seconds` of audio; a loop's period is whole latent frames."""
        sr, per_frame = self.adapter.sample_rate, self.adapter.frame_samples
        samples = max(1, round(seconds * sr))
        if loop:
            frames = max(1, round(samples / per_frame))
            return frames, frames * per_frame
        return math.ceil(samples / per_frame), samples

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        audio_length_in_s: float = 24.0,
        window_seconds: float | None = None,
        method: str = "safa",
        loop: bool = False,
        num_inference_steps: int = 200,
        guidance_scale: float = 3.5,
        negative_prompt: str | None = None,
        overlap: float = 0.2,
        r_guide: float = 0.3,
        swap_interval: int = 1,
        tail_shift: int = 0,
        view_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        progress_bar: bool = True,
        mad_ratio: float = 0.3,
        sync_weight: float = 20.0,
        sync_decay: float = 0.95,
        sync_ratio: float = 1.0,
        lpips: torch.nn.Module | None = None,
    ) -> LongAudioOutput:
        """Generate `audio_length_in_s` seconds for `prompt`.

        Views are `window_seconds` long (default: the model's training length, 10.24 s for AudioLDM/AudioLDM2),
        `overlap` (rate) apart. `method` is safa, safa-selfloop, md, md-tri, mad or syncd. With `loop` the output is
        circular: its end continues into its start (the length is rounded to whole latent frames, 40 ms for AudioLDM).
        A length shorter than one window is generated as a single view of that length (the plain model).
        `r_guide` is the fraction of the steps with reference guidance (SaFa only), `swap_interval` the w of
        Eq. 9, `tail_shift` SaFa+'s shift of each overlap's tail (latent frames). `seed` or `generator` fix the
        noise; `latents` replaces the initial canvas noise. MAD merges attention over the canvas during the first
        `mad_ratio` of the steps; SyncDiffusion takes LPIPS gradient steps of weight `sync_weight * sync_decay**k`
        during the first `sync_ratio` of the steps, with `lpips` (default: VGG LPIPS) on mel spectrograms.
        """
        adapter = self.adapter
        req = check_audio_request(
            prompt, audio_length_in_s, window_seconds, method, overlap, r_guide, swap_interval, tail_shift,
            num_inference_steps, guidance_scale, view_batch_size, seed, mad_ratio=mad_ratio, sync_weight=sync_weight,
            sync_decay=sync_decay, sync_ratio=sync_ratio,
        )
        generator = seeded(generator, req.options.seed)
        per_second = _BYTES_PER_SAMPLE * adapter.sample_rate
        available = available_memory_bytes()
        if req.seconds * per_second > 0.8 * available:
            raise SwapForwardError(
                f"audio_length_in_s={audio_length_in_s!r} needs about {req.seconds * per_second / 2**30:.1f} GiB of "
                f"memory and {available / 2**30:.1f} GiB is free; "
                f"ask for at most {int(0.8 * available / per_second)} s."
            )
        frames, samples = self.frames_for(req.seconds, loop)
        window_s = adapter.trained_window_seconds if req.window_seconds is None else req.window_seconds
        window = self.frames_for(window_s, False)[0]
        if req.options.tail_shift >= window:
            raise SwapForwardError(
                f"tail_shift must be smaller than the window ({window} frames), got {req.options.tail_shift}."
            )
        layout = ViewLayout.build(frames, window, overlap=req.options.overlap, loop=loop)
        result = run_joint(
            adapter,
            req.options,
            layout,
            adapter.latent_shape(frames),
            prompt=req.prompt,
            negative_prompt=negative_prompt,
            generator=generator,
            latents=latents,
            eta=eta,
            callback=callback,
            progress_bar=progress_bar,
            lpips=lpips,
        )
        canvas = result.latents
        audio, mel = adapter.decode(canvas, window=window, loop=loop)
        mel = mel[: math.ceil(samples * mel.shape[0] / audio.shape[-1])]
        audio = audio[:, :samples]
        return LongAudioOutput(
            audio=np.ascontiguousarray(audio, dtype=np.float32),
            sample_rate=adapter.sample_rate,
            latents=canvas,
            mel_spectrogram=mel,
            layout=layout,
            method=req.options.method.name,
            model_calls=result.model_calls,
            frame_seconds=adapter.frame_samples / adapter.sample_rate,
            info={**result.info(), "requested_seconds": req.seconds},
        )
