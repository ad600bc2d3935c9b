"""Writing a stream as it is made: WAV (with a header for unknown length) or raw PCM to a pipe, and files that are
playable while they grow (WAV, FLAC, Ogg Vorbis, Ogg Opus, MP3), each closed cleanly on any stop, so the file is
complete up to the last piece written."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import SwapForwardError
from .files import AUDIO_FORMATS, AUDIO_SUBTYPES, OPUS_RATE, check_output_path, write_failure

#: What `--out -` writes: a WAV stream (16-bit PCM after a header for unknown length) or bare 16-bit PCM.
PIPE_FORMATS = ("wav", "raw")
#: The size fields of a WAV header whose length is not known yet: players read to the end of the stream.
UNKNOWN = 0xFFFFFFFF


def wav_header(rate: int, channels: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte RIFF/WAVE header for 16-bit PCM; without `data_bytes` its sizes say "unknown" (0xFFFFFFFF), as
    ffmpeg and sox write a WAV to a pipe, and as browsers, ffplay, aplay and sox read one."""
    data = UNKNOWN if data_bytes is None else data_bytes
    riff = UNKNOWN if data_bytes is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) +
            b"data" + struct.pack("<I", data))


def pcm16(piece: np.ndarray) -> bytes:
    """(channels, samples) float audio as interleaved little-endian 16-bit PCM (clipped at full scale)."""
    scaled = np.clip(np.asarray(piece, dtype=np.float32).T, -1.0, 1.0) * 32767.0
    return np.round(scaled).astype("<i2").tobytes()


class Resampler:
    """Pieces from one rate to another with soxr's streaming resampler (the pieces join as one signal would)."""

    def __init__(self, rate: int, target: int, channels: int):
        import soxr

        self.stream = None if rate == target else soxr.ResampleStream(rate, target, channels, dtype="float32",
                                                                        quality="HQ")

    def __call__(self, piece: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return piece
        out = self.stream.resample_chunk(np.ascontiguousarray(piece.T, dtype=np.float32), last=last)
        return np.ascontiguousarray(out.T)


class PipeWriter:
    """A stream to a binary pipe (standard output): a WAV stream or raw PCM, flushed piece by piece."""

    def __init__(self, rate: int, channels: int, kind: str = "wav", pipe: BinaryIO | None = None):
        if kind not in PIPE_FORMATS:
            raise SwapForwardError(f"Unknown stream format {kind!r}; use {' or '.join(PIPE_FORMATS)}.")
        self.pipe = pipe if pipe is not None else sys.stdout.buffer
        self.rate = rate
        if kind == "wav":
            self._send(wav_header(rate, channels))

    def write(self, piece: np.ndarray) -> None:
        self._send(pcm16(piece))

    def _send(self, data: bytes) -> None:
        self.pipe.write(data)
        self.pipe.flush()

    def close(self) -> None:
        try:
            self.pipe.flush()
        except (BrokenPipeError, ValueError):
            pass


class GrowingFile:
    """A file written piece by piece where it will stay, playable while it grows, and valid whenever it is closed:
    WAV as 16-bit PCM whose sizes are filled in at each close (and say "unknown" meanwhile), the other formats
    through libsndfile (24-bit FLAC, Ogg Vorbis, Ogg Opus at 48 kHz, MP3). `sample_rate` resamples as it goes."""

    def __init__(self, path: str | os.PathLike, rate: int, channels: int, sample_rate: int | None = None,
                 tags: dict[str, str] | None = None):
        self.path = check_output_path(path, AUDIO_FORMATS)
        ext = self.path.suffix.lower()
        target = sample_rate or (OPUS_RATE if ext == ".opus" else rate)
        self.resample = Resampler(rate, target, channels)
        self.rate, self.channels, self.written = target, channels, 0
        try:
            if ext == ".wav":
                self.file: Any = open(self.path, "wb")
                self.file.write(wav_header(target, channels))
                self.file.flush()
            else:
                import soundfile as sf

                self.file = sf.SoundFile(self.path, "w", target, channels, format=AUDIO_FORMATS[ext],
                                         subtype=AUDIO_SUBTYPES[ext])
                for key, value in (tags or {}).items():
                    if value:
                        setattr(self.file, key, value)
        except (OSError, RuntimeError) as error:
            why = write_failure(error, self.path.parent)
            raise SwapForwardError(f"Cannot write {str(self.path)!r}: {why}.") from None
        self.wav = ext == ".wav"

    def write(self, piece: np.ndarray) -> None:
        self._put(self.resample(piece))

    def _put(self, piece: np.ndarray) -> None:
        if not piece.shape[-1]:
            return
        try:
            if self.wav:
                self.file.write(pcm16(piece))
                self.file.flush()
            else:
                self.file.write(np.clip(piece.T, -1.0, 1.0))
                self.file.flush()
        except (OSError, RuntimeError) as error:
            why = write_failure(error, self.path.parent)
            raise SwapForwardError(f"Cannot write {str(self.path)!r}: {why}.") from None
        self.written += piece.shape[-1]

    def close(self) -> Path:
        """Flush the resampler, write the real sizes (WAV) or finish the encoder: a valid file, whatever stopped."""
        if self.resample.stream is not None:
            self._put(self.resample(np.zeros((self.channels, 0), dtype=np.float32), last=True))
        if self.wav:
            data = self.written * self.channels * 2
            self.file.seek(0)
            self.file.write(wav_header(self.rate, self.channels, data))
        self.file.close()
        return self.path

