"""`LongAudioPipeline`: long, optionally looping audio from AudioLDM, AudioLDM2 and Stable Audio Open."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.layout import ViewLayout
from ..errors import SwapForwardError
from ..io.delivery import LoudnessMeter, loudness_gain, normalize_loudness, resample, resample_circular, settings_json
from ..io.files import OPUS_RATE, save_spectrogram, write_atomic, write_audio_chunks
from ..io.inputs import read_audio
from ..models import AUDIO_ADAPTERS
from ..options import AUDIO, STREAM, Request
from ..runtime import memory
from .base import JointPipeline, spec_signature
from .joint import JointResult
from .kept import Kept, Media, edge_ramp
from .stream import AudioStream, StreamState

logger = logging.getLogger("swapforward")


def words_of(prompt: Any) -> str:
    """The prompt as the title tag: its text, or a timeline's prompts joined."""
    if isinstance(prompt, list):
        return " then ".join(segment["prompt"] for segment in prompt)
    return prompt or ""


@dataclass
class LongAudioOutput:
    """What a generation returns: the waveform and everything needed to inspect or reuse it."""

    audio: np.ndarray | None
    """float32 waveform, (channels, samples); None for an output longer than `memory.STREAM_SAMPLES` (about 70
    minutes at 16 kHz), which `save` writes as it is decoded and `waveform()` gives whole."""
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
    segments: list[tuple[float, str]] = field(default_factory=list)
    """A timeline's (start seconds, prompt) segments; empty for one prompt."""
    kept: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) seconds that hold the input clip's own samples (with splice)."""
    takes: list[LongAudioOutput] = field(default_factory=list, repr=False)
    """Every take of the call (this one first; best first when ranked); each has its own seed in info["seed"]."""
    stream: Callable[[], Iterator[np.ndarray]] | None = field(default=None, repr=False)
    """For a streamed output: the waveform's pieces, in order, decoded anew at each call."""
    samples: int = 0
    """The waveform's length in samples."""

    def __post_init__(self) -> None:
        if self.audio is not None:
            self.samples = self.audio.shape[-1]

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def waveform(self) -> np.ndarray:
        """The whole waveform (channels, samples), joined from the stream for an output too long to keep."""
        return self.audio if self.audio is not None else np.concatenate(list(self.stream()), axis=-1)

    @property
    def audios(self) -> list[np.ndarray]:
        """Every take's waveform, as diffusers' audio pipelines return them."""
        return [take.audio for take in self.takes or [self]]

    def overlap_spans(self) -> list[tuple[float, float]]:
        """(start, end) in seconds of every run of frames that more than one view covers."""
        covered = (self.layout.coverage > 1).int().tolist()
        edges = np.flatnonzero(np.diff([0] + covered + [0]))
        pairs = zip(edges[::2], edges[1::2], strict=True)
        return [(lo * self.frame_seconds, min(hi * self.frame_seconds, self.seconds)) for lo, hi in pairs]

    def save(self, path: str | os.PathLike, sample_rate: int | None = None, loudness: float | None = None,
             sidecar: bool = False) -> str:
        """Write the audio atomically as WAV, FLAC, MP3, Ogg Vorbis or Opus (by extension), with the settings that
        made it in its tags (and, with `sidecar`, in a JSON file beside it), the written rate and loudness target
        included. `sample_rate` resamples (a loop as a circle; Opus defaults to 48 kHz, its own rate), `loudness`
        brings it to that integrated LUFS without clipping (a silent take is written as it is, with a note)."""
        rate = self.sample_rate
        if sample_rate is None and str(path).lower().endswith(".opus"):
            sample_rate = OPUS_RATE
        if self.audio is None and sample_rate in (None, rate):  # hours: piece by piece
            pieces, applied = self.stream(), None
            if loudness is not None:
                pieces, applied = self._normalised_pieces(path, loudness)
            return self._write(path, pieces, rate, applied, sidecar)
        audio = self.waveform()
        if sample_rate is not None and sample_rate != rate:
            target = round(audio.shape[-1] * sample_rate / rate)
            audio = resample_circular(audio, target) if self.layout.loop else resample(audio, rate, sample_rate)
            rate = sample_rate
        applied = None
        if loudness is not None:
            audio, note = normalize_loudness(audio, rate, loudness)
            applied = None if note and note.startswith("this take is silent") else loudness
            if note:
                logger.warning(note)
        return self._write(path, [audio], rate, applied, sidecar)

    def _write(self, path: str | os.PathLike, pieces: Iterable[np.ndarray], rate: int, loudness: float | None,
               sidecar: bool) -> str:
        """The file, its tags and, with `sidecar`, the JSON beside it: the settings, the written rate and loudness."""
        values = {**self.info.get("settings", {}), "sample_rate": rate, "loudness": loudness}
        tags = {"title": words_of(values.get("prompt")), "comment": settings_json(values),
                "software": f"swapforward {values.get('swapforward', '')}".strip()}
        written = write_audio_chunks(path, pieces, rate, tags=tags)
        if sidecar:
            write_atomic(f"{written}.json", lambda tmp: tmp.write_text(settings_json(values)))
        return str(written)

    def _normalised_pieces(self, path: str | os.PathLike, loudness: float) -> tuple[Iterator[np.ndarray], float | None]:
        """A streamed output brought to `loudness` in two passes over a float WAV written beside `path` (measured
        as it is written, then read back with the gain), never held whole; (pieces, the target or None)."""
        import tempfile

        import soundfile as sf

        folder = os.path.dirname(os.path.abspath(path))
        handle, scratch = tempfile.mkstemp(suffix=".wav", prefix=".swapforward-", dir=folder)
        os.close(handle)
        meter = LoudnessMeter(self.sample_rate)

        def measured() -> Iterator[np.ndarray]:
            for piece in self.stream():
                meter.add(piece)
                yield piece

        try:
            write_audio_chunks(scratch, measured(), self.sample_rate)
        except BaseException:
            os.unlink(scratch)
            raise
        gain, note = loudness_gain(*meter.finish(), loudness)
        if note:
            logger.warning(note)

        def read_back() -> Iterator[np.ndarray]:
            try:
                for block in sf.blocks(scratch, blocksize=1 << 20, dtype="float32", always_2d=True):
                    yield (block.T * np.float32(gain)).astype(np.float32)
            finally:
                os.unlink(scratch)

        return read_back(), None if note and note.startswith("this take is silent") else loudness

    def save_spectrogram(self, path: str | os.PathLike, title: str = "") -> str:
        """Write a PNG of the mel spectrogram with view starts and overlaps marked."""
        starts = [s * self.frame_seconds for s in self.layout.starts]
        return str(save_spectrogram(path, self.mel_spectrogram, self.seconds, starts, self.overlap_spans(), title,
                                    self.segments, self.kept))


class LongAudioPipeline(JointPipeline):
    """Long-form text-to-audio by joint diffusion over window-sized views of one long latent.

    Build it with `from_pretrained(model_id)` (e.g. cvssp/audioldm-s-full-v2) or `from_pipe(pipeline)` with a
    loaded `AudioLDMPipeline`, `AudioLDM2Pipeline` or `StableAudioPipeline`, then call it with a prompt.
    """

    adapters = AUDIO_ADAPTERS
    kind = "audio"
    spec = AUDIO

    def frames_for(self, seconds: float, loop: bool) -> tuple[int, int]:
        """(latent frames, output samples) for `seconds` of audio: exactly round(seconds x rate) samples. A loop's
        canvas is the nearest whole number of latent frames, and its decoded period is resampled as a circle to the
        exact sample count; otherwise the canvas covers the length and the waveform is cut to it."""
        sr, per_frame = self.adapter.sample_rate, self.adapter.frame_samples
        samples = max(1, round(seconds * sr))
        if loop:
            return max(1, round(samples / per_frame)), samples
        return math.ceil(samples / per_frame), samples

    @spec_signature(AUDIO)
    def __call__(self, prompt: str | None = None, **arguments: Any) -> LongAudioOutput:
        """Generate `audio_length_in_s` seconds for `prompt`.

        Views are `window_seconds` long (default: the model's training length, 10.24 s for AudioLDM/AudioLDM2),
        `overlap` (rate) apart. With `loop` the output is circular: its end continues into its start (the length is
        rounded to whole latent frames, 40 ms for AudioLDM). A length shorter than one window is generated as a
        single view of that length (the plain model).
        """
        return self.call(prompt, **arguments)

    def stream(self, prompt: Any = None, *, progress_bar: bool = True, resume_from: str | os.PathLike | None = None,
               **options: Any) -> AudioStream:
        """An endless stream of `prompt` (or `audio_length_in_s` of it), made and handed out block by block: iterate
        it for waveform pieces, `set_prompt` to change it while it plays, `save_state` / `resume_from` to continue it
        later. Takes the options of `__call__` (not loop, takes, rank, bpm or init_audio) and the stream's own:
        block_views, continuation, stream_reference (pipelines/stream.py)."""
        return self.open_stream(STREAM.check({"prompt": prompt, **options}), progress_bar, resume_from)

    def open_stream(self, request: Request, progress_bar: bool = True,
                    resume_from: str | os.PathLike | None = None) -> AudioStream:
        """`stream` for a request already checked by the stream spec (what the front ends do)."""
        request = self.resolve(request)
        state = StreamState.load(resume_from) if resume_from is not None else None
        return AudioStream(self, request, state, progress_bar)

    def layout(self, request: Request) -> tuple[ViewLayout, tuple[int, ...]]:
        adapter = self.adapter
        seconds = request.audio_length_in_s
        latent = math.prod(adapter.latent_shape(1)) * torch.finfo(adapter.dtype).bits / 8 / adapter.frame_samples
        frames, samples = self.frames_for(seconds, request.loop)
        streamable = (request.rank == "none" and not (request.init_audio is not None and request.splice)
                      and (frames * adapter.frame_samples == samples or not request.loop))  # as `output` decides
        memory.check_audio_memory("audio_length_in_s", seconds, adapter.sample_rate, request.num_waveforms_per_prompt,
                                  latent, adapter.spectrogram_bytes_per_sample, adapter.channels, streamable)
        window = self.window_frames(request)
        if request.tail_shift >= window:
            raise SwapForwardError(
                f"tail_shift must be smaller than the window ({window} frames), got {request.tail_shift}."
            )
        layout = ViewLayout.build(frames, window, overlap=request.overlap, loop=request.loop)
        memory.check_view_memory(layout.num_views, layout.window, "overlap", request.overlap)
        return layout, adapter.latent_shape(frames)

    def start_frame(self, start: float) -> int:
        return round(start * self.adapter.sample_rate / self.adapter.frame_samples)

    def window_frames(self, request: Request) -> int:
        """The view length in latent frames: `window_seconds`, or the model's training length."""
        seconds = self.adapter.trained_window_seconds if request.window_seconds is None else request.window_seconds
        return self.frames_for(seconds, False)[0]

    def media(self, request: Request, layout: ViewLayout, canvas_shape: tuple[int, ...]) -> Media:
        """The input clip encoded and placed on the canvas at `init_at` (rounded to a latent frame), its kept frames
        and splice spans; and the reference clip's latent, one view long (a shorter clip tiled, a longer one's
        excerpt from `like_offset`)."""
        adapter = self.adapter
        rate, per_frame, axis = adapter.sample_rate, adapter.frame_samples, adapter.long_axis
        media = Media()
        if request.init_audio is not None:
            wave = read_audio(request.init_audio, "init_audio", request.init_sample_rate).at(rate, adapter.channels)
            latent = adapter.encode_audio(wave)
            first = self.start_frame(request.init_at)
            frames = min(latent.shape[axis], layout.length - first)
            content = torch.zeros((1, *canvas_shape[1:]), dtype=adapter.dtype, device=adapter.device)
            content.narrow(axis, first, frames).copy_(latent.narrow(axis, 0, frames))
            exact = torch.zeros(layout.length, dtype=torch.bool)
            offset = first * per_frame  # where the clip's first sample lands in the output
            spans = []
            for start, end in request.keep:
                a, b = round((start - request.init_at) * rate), round((end - request.init_at) * rate)
                a, b = max(0, a), min(wave.shape[-1], b)
                exact[first + round(a / per_frame): first + min(frames, round(b / per_frame))] = True
                spans.append((offset + a, offset + b))
            fade = round(request.keep_fade * rate / per_frame)
            media.kept = Kept(content, exact, edge_ramp(exact, fade, request.loop), axis)
            media.splice = (wave, offset, spans) if request.splice else None
        if request.reference_audio is not None:
            wave = read_audio(request.reference_audio, "reference_audio",
                              request.init_sample_rate).at(rate, adapter.channels)
            media.reference = adapter.encode_audio(excerpt(wave, round(request.like_offset * rate),
                                                           layout.window * per_frame, "like_offset", rate))
        return media

    def output(self, request: Request, layout: ViewLayout, latents: torch.Tensor, result: JointResult,
               seed: int | None, media: Media, progress_bar: bool = False) -> LongAudioOutput:
        adapter = self.adapter
        _, samples = self.frames_for(request.audio_length_in_s, request.loop)
        mel, waves = adapter.decode_chunks(latents, window=layout.window, loop=request.loop)
        decoded = layout.length * adapter.frame_samples
        streamed = (samples * adapter.channels > memory.STREAM_SAMPLES and media.splice is None
                    and request.rank == "none" and (decoded == samples or not request.loop))
        audio, stream = None, None
        shown = progress_bar and samples >= DECODE_BAR_SECONDS * adapter.sample_rate
        if streamed:  # hours: decoded piece by piece as the file is written
            stream = lambda: decoding(cut(waves(), samples), samples, shown, "decode and write")  # noqa: E731
        else:
            audio = np.concatenate(list(decoding(waves(), decoded, shown, "decode")), axis=-1)
            decoded = audio.shape[-1]
            if request.loop and decoded != samples:  # whole latent frames -> the exact period, seamless
                audio = resample_circular(audio, samples)
            audio = audio[:, :samples]
            if media.splice is not None:
                audio = splice(audio, *media.splice, round(request.crossfade * adapter.sample_rate), request.loop)
            audio = np.ascontiguousarray(audio, dtype=np.float32)
        mel = mel[: math.ceil(samples * mel.shape[0] / decoded)] if not request.loop else mel
        stretch = samples / decoded if request.loop else 1.0
        return LongAudioOutput(
            audio=audio,
            stream=stream,
            samples=samples,
            sample_rate=adapter.sample_rate,
            latents=latents,
            mel_spectrogram=mel,
            layout=layout,
            method=request.method,
            model_calls=result.model_calls,
            frame_seconds=adapter.frame_samples / adapter.sample_rate,
            info={**result.info(), "requested_seconds": request.audio_length_in_s, "seed": seed,
                  "time_stretch": stretch, "decoded_samples": decoded, "settings": self.settings(request, seed)},
            segments=[] if isinstance(request.prompt, str) else [(s.start, s.prompt) for s in request.prompt],
            kept=[(a / adapter.sample_rate, b / adapter.sample_rate) for a, b in media.splice[2]]
            if media.splice else [],
        )


#: Outputs at least this long show their decode (and, streamed, their write) as a progress bar.
DECODE_BAR_SECONDS = 600


def decoding(pieces: Iterator[np.ndarray], total: int, shown: bool, what: str) -> Iterator[np.ndarray]:
    """The pieces, with a progress bar of the samples they hold when `shown` (an hour's decode takes a minute)."""
    if not shown:
        yield from pieces
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=what, unit="sample", unit_scale=True) as bar:
        for piece in pieces:
            bar.update(piece.shape[-1])
            yield piece


def cut(pieces: Iterator[np.ndarray], samples: int) -> Iterator[np.ndarray]:
    """The pieces of a waveform up to `samples` (the canvas covers whole latent frames, the output its length)."""
    done = 0
    for piece in pieces:
        if done >= samples:
            break
        piece = np.ascontiguousarray(piece[:, : samples - done], dtype=np.float32)
        done += piece.shape[-1]
        yield piece


def excerpt(wave: np.ndarray, start: int, length: int, label: str, rate: int) -> np.ndarray:
    """`length` samples of `wave` from `start`; a clip shorter than that is repeated to fill it."""
    if start >= wave.shape[-1]:
        raise SwapForwardError(f"{label} {start / rate:g} s is past the end of the clip ({wave.shape[-1] / rate:g} s).")
    part = wave[:, start:start + length]
    return np.resize(part, (part.shape[0], length)) if part.shape[-1] < length else part


def splice(audio: np.ndarray, clip: np.ndarray, offset: int, spans: list[tuple[int, int]], fade: int,
           loop: bool) -> np.ndarray:
    """The output with its kept spans holding the clip's own samples (`clip` placed at `offset`), cross-faded with
    equal power into the generated audio over `fade` samples inside each span edge that borders generated audio."""
    out = audio.copy()
    total = out.shape[-1]
    for start, end in spans:
        end = min(end, total)
        if end <= start:
            continue
        original = clip[:, start - offset:end - offset]
        length = end - start
        rising = np.ones(length, dtype=np.float64)
        edges = [(start > 0 or loop) and not _kept(start - 1, spans), (end < total or loop) and not _kept(end, spans)]
        n = min(fade, length // 2)
        if n:
            theta = (np.arange(n) + 0.5) / n * np.pi / 2
            if edges[0]:
                rising[:n] = np.sin(theta)
            if edges[1]:
                rising[length - n:] = np.minimum(rising[length - n:], np.sin(theta[::-1]))
        keep = rising == 1.0
        mixed = np.sqrt(1 - rising ** 2) * out[:, start:end] + rising * original
        out[:, start:end] = np.where(keep, original, mixed).astype(np.float32)
    return out


def _kept(sample: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= sample < b for a, b in spans)
