"""The user's own sound or picture: reading it, folding it to what the model takes, and the spans it is kept on.

Plain numpy, soundfile, soxr and PIL (no torch): the command line checks an input file and its spans before it
loads a model. Audio is read by libsndfile (WAV, FLAC, Ogg, MP3, AIFF, ...), resampled with soxr to the model's rate
and folded to the model's channels (mono: the channels' mean; stereo: a mono clip doubled, a multichannel clip's
first two); pictures by PIL, as RGB in [0, 1].
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SwapForwardError
from ..prompts import parse_start


@dataclass(frozen=True)
class Clip:
    """A sound the user gave: (channels, samples) float32 at `sample_rate`."""

    audio: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def at(self, sample_rate: int, channels: int) -> np.ndarray:
        """The clip resampled to `sample_rate` and folded to `channels`, (channels, samples) float32."""
        from .delivery import resample

        audio = self.audio
        if audio.shape[0] != channels:
            audio = audio.mean(0, keepdims=True) if channels == 1 else (
                np.repeat(audio, channels, 0) if audio.shape[0] == 1 else audio[:channels])
        return resample(np.ascontiguousarray(audio, dtype=np.float32), self.sample_rate, sample_rate)


#: The shortest clip taken: the models' feature windows (AudioLDM's STFT: 1024 samples at 16 kHz) need this much.
MIN_CLIP_SECONDS = 0.05


def check_clip_length(label: str, samples: int, rate: int) -> None:
    """One sentence for a clip shorter than MIN_CLIP_SECONDS."""
    if samples < MIN_CLIP_SECONDS * rate:
        raise SwapForwardError(f"{label} lasts {samples} samples ({samples / rate:.3g} s); a clip must last at least "
                               f"{MIN_CLIP_SECONDS:g} s.")


def existing_file(value: str | os.PathLike, label: str, what: str) -> Path:
    """The path of `value`; one sentence when it is missing or a folder."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise SwapForwardError(f"{label} {str(path)!r} is a folder; give {what}.")
    if not path.is_file():
        raise SwapForwardError(f"{label} {str(path)!r} does not exist.")
    return path


def _clip_header(value: str | os.PathLike, label: str) -> Any:
    """A clip file's header (soundfile's info), checking the file exists, reads as audio and is long enough."""
    import soundfile as sf

    path = existing_file(value, label, "an audio file")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as error:
        raise SwapForwardError(f"{label} {str(path)!r} cannot be read as audio ({_reason(error)}).") from None
    if info.frames <= 0:
        raise SwapForwardError(f"{label} {str(path)!r} holds no audio (zero length).")
    check_clip_length(label, info.frames, info.samplerate)
    return info


def clip_info(value: Any, label: str, sample_rate: int | None = None) -> float:
    """The clip's length in seconds, checking it can be read and holds only finite samples (read in blocks)."""
    if isinstance(value, (str, os.PathLike)):
        import soundfile as sf

        info = _clip_header(value, label)
        path = Path(value).expanduser()
        for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():  # here, with the flag's name, rather than in the pipeline
                raise SwapForwardError(f"{label} {str(path)!r} holds values that are not finite numbers.")
        return info.frames / info.samplerate
    return read_audio(value, label, sample_rate).seconds


def read_audio(value: Any, label: str = "init_audio", sample_rate: int | None = None) -> Clip:
    """A file path, or an array ((samples,), (channels, samples) or (samples, channels) from soundfile) with its
    `sample_rate`, as a Clip; one sentence for anything unreadable, empty or not finite."""
    if isinstance(value, (str, os.PathLike)):
        import soundfile as sf

        _clip_header(value, label)  # its samples are checked below, as they are read
        try:
            data, rate = sf.read(str(Path(value).expanduser()), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as error:
            raise SwapForwardError(f"{label} {str(value)!r} cannot be read as audio ({_reason(error)}).") from None
        audio = data.T
    else:
        if sample_rate is None:
            raise SwapForwardError(f"{label} is an array: give its sample rate too (init_sample_rate).")
        audio = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        elif audio.ndim == 2 and audio.shape[0] > audio.shape[1]:
            audio = audio.T  # (samples, channels), as soundfile reads
        if audio.ndim != 2:
            raise SwapForwardError(f"{label} must be (samples,) or (channels, samples), got shape {audio.shape}.")
        rate = int(sample_rate)
    if audio.shape[-1] == 0:
        raise SwapForwardError(f"{label} holds no audio (zero length).")
    if not np.isfinite(audio).all():
        raise SwapForwardError(f"{label} holds values that are not finite numbers.")
    check_clip_length(label, audio.shape[-1], int(rate))
    return Clip(np.ascontiguousarray(audio), int(rate))


def read_image(value: Any, label: str = "init_image") -> np.ndarray:
    """A picture file, a PIL image or an (H, W, 3) array in [0, 1] (or uint8) as (H, W, 3) float32 in [0, 1]."""
    from PIL import Image

    if isinstance(value, (str, os.PathLike)):
        value = _open_picture(value, label, lambda image: image.convert("RGB"))
    if isinstance(value, Image.Image):
        value = np.asarray(value.convert("RGB"), dtype=np.float32) / 255.0
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise SwapForwardError(f"{label} must be an RGB picture, got an array of shape {array.shape}.")
    return array / 255.0 if array.max() > 1.0 else array


def _open_picture(value: str | os.PathLike, label: str, use: Callable[[Any], Any]) -> Any:
    """`use(image)` on the picture file `value` while it is open; one sentence if it is missing or unreadable."""
    from PIL import Image

    path = existing_file(value, label, "a picture file")
    try:
        with Image.open(path) as image:
            return use(image)
    except OSError as error:
        raise SwapForwardError(f"{label} {str(path)!r} cannot be read as a picture ({_reason(error)}).") from None


def image_size(value: Any, label: str) -> tuple[int, int]:
    """(height, width) of a picture, reading only what is needed."""
    if isinstance(value, (str, os.PathLike)):
        return _open_picture(value, label, lambda image: (image.height, image.width))
    array = read_image(value, label)
    return array.shape[0], array.shape[1]


def parse_spans(value: Any, label: str) -> list[tuple[float, float]]:
    """Spans from [(start, end), ...] or text 'a:b, c:d' (each end as m:ss or seconds; a span's two ends joined by
    '-' also work: '0:05-0:08'); one sentence for a malformed one or one that ends before it starts."""
    if isinstance(value, str):
        items = []
        for part in value.replace(";", ",").split(","):
            if part.strip():
                text = part.strip()
                start, separator, end = text.rpartition("-") if "-" in text[1:] else _colon_split(text)
                first, second = parse_start(start), parse_start(end)
                if not separator or first is None or second is None:
                    raise SwapForwardError(f"{label} span {text!r} is not 'START:END' (or 'START-END').")
                items.append((first, second))
        value = items
    spans = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x >= 0 for x in item):
            raise SwapForwardError(f"{label} spans must be (start, end) numbers >= 0, got {item!r}.")
        if item[1] <= item[0]:
            raise SwapForwardError(f"{label} span ({item[0]:g}, {item[1]:g}) ends before it starts.")
        spans.append((float(item[0]), float(item[1])))
    if not spans:
        raise SwapForwardError(f"{label} has no spans; give START:END.")
    spans.sort()
    for (a, b), (c, _) in zip(spans, spans[1:], strict=False):
        if c < b:
            raise SwapForwardError(f"{label} spans ({a:g}, {b:g}) and ({c:g}, ...) overlap; give each part once.")
    return spans


def _colon_split(text: str) -> tuple[str, str, str]:
    """'12.5:15' -> ('12.5', ':', '15'); '0:05:0:08' (m:ss on both sides) -> ('0:05', ':', '0:08')."""
    pieces = text.split(":")
    middle = len(pieces) // 2
    return ":".join(pieces[:middle]), ":" if len(pieces) > 1 else "", ":".join(pieces[middle:])


def _reason(error: Exception) -> str:
    return str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
