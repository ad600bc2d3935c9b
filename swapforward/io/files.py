"""Output files: checked before generating, written atomically (temporary file, then rename), and pictures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import SwapForwardError

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3", ".ogg": "OGG", ".opus": "OGG"}
#: libsndfile's encoding per extension: float WAV, 24-bit FLAC, MP3 (layer III), Ogg Vorbis, Ogg Opus.
AUDIO_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24", ".mp3": "MPEG_LAYER_III", ".ogg": "VORBIS", ".opus": "OPUS"}
#: Sample rates the lossy encoders take.
#: Opus codes at 48 kHz inside; files are written at that rate unless another is asked for.
OPUS_RATE = 48000
AUDIO_RATES = {".opus": (8000, 12000, 16000, 24000, 48000),
               ".mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)}
#: Text tags libsndfile writes (WAV INFO, FLAC and Ogg comments).
TAGS = ("title", "comment", "software", "artist")
IMAGE_FORMATS = {".png": "PNG"}
PANORAMA_FORMATS = {**IMAGE_FORMATS, ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def check_output_path(path: str | os.PathLike, formats: dict[str, str] | None, make_folder: bool = False) -> Path:
    """Refuse an output path before any work: unsupported extension (unless `formats` is None: any), missing or
    unwritable folder, a folder. With `make_folder` the folder may be missing if it can be made (batch jobs)."""
    path = Path(path).expanduser()
    ext = path.suffix.lower()
    if formats is not None and ext not in formats:
        allowed = ", ".join(formats)
        raise SwapForwardError(f"Cannot write {str(path)!r}: unsupported format {ext or '(none)'!r}; use {allowed}.")
    if path.is_dir():
        raise SwapForwardError(f"Cannot write {str(path)!r}: it is a folder; give a file name" +
                               (f" ending in {ext}." if ext else "."))
    folder = path.parent if str(path.parent) else Path(".")
    if make_folder and not folder.exists():
        check_output_folder(folder)
        return path
    if not folder.is_dir():
        raise SwapForwardError(f"Cannot write {str(path)!r}: folder {str(folder)!r} does not exist.")
    if path.exists() and not os.access(path, os.W_OK):
        raise SwapForwardError(f"Cannot write {str(path)!r}: permission denied.")
    try:  # the only sure test (root passes os.access; /proc and read-only mounts refuse files anyway)
        _probe(folder, path.stem)
    except OSError as error:
        reason = error.strerror or str(error)
        message = f"Cannot write {str(path)!r}: the folder does not accept new files ({reason})."
        raise SwapForwardError(message) from None
    return path


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Refuse an output folder before any work: a file, or a place where it cannot be made or written (the nearest
    folder that exists must take new files)."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SwapForwardError(f"Cannot write into {str(folder)!r}: it is a file.")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    try:
        _probe(existing, "swapforward")
    except OSError as error:
        raise SwapForwardError(f"Cannot write into {str(folder)!r}: {str(existing)!r} does not accept new files "
                               f"({error.strerror or error}).") from None
    return folder


def _probe(folder: Path, stem: str) -> None:
    """Create and remove a file in `folder` (OSError if it takes none)."""
    fd, probe = tempfile.mkstemp(prefix=f".{stem}.", suffix=".probe", dir=folder)
    os.close(fd)
    os.unlink(probe)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`: never a partial file."""
    path = Path(path).expanduser()
    remove_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent or ".")
    except OSError as error:
        raise SwapForwardError(f"Cannot write {str(path)!r}: {error.strerror or error}.") from None
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # libsndfile's errors are RuntimeErrors ("System error.")
        raise SwapForwardError(f"Cannot write {str(path)!r}: {write_failure(error, path.parent)}.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: A temporary file of `write_atomic`'s naming untouched this long was left by a killed run (a live one writes on).
STALE_SECONDS = 600


def remove_stale(path: Path) -> None:
    """Remove what a killed run left beside `path`: `write_atomic`'s temporary files of its naming (".stem.XXXXXXXX
    .ext", mkstemp's eight characters) that nothing has written for `STALE_SECONDS`."""
    import re
    import time

    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{8}}{re.escape(path.suffix)}")
    try:
        names = os.listdir(path.parent or ".")
    except OSError:
        return
    for name in names:
        stale = path.parent / name
        try:
            if pattern.fullmatch(name) and time.time() - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink()
        except OSError:
            pass


def write_failure(error: BaseException, folder: str | os.PathLike) -> str:
    """Why a write failed, in words: a full disk said as such (libsndfile reports it only as "System error")."""
    import errno
    import shutil

    if getattr(error, "errno", None) == errno.ENOSPC:
        return "the disk is full"
    try:
        if shutil.disk_usage(folder).free < 1 << 20:
            return "the disk is full"
    except OSError:
        pass
    return getattr(error, "strerror", None) or str(error).rstrip(".")


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
                tags: dict[str, str] | None = None) -> Path:
    """Write (channels, samples) float audio in the format of the extension (WAV float32, FLAC 24-bit, MP3, Ogg
    Vorbis, Ogg Opus), with `tags` (title, comment, software, artist) where the format keeps them. The same audio
    gives the same bytes: the timestamp libsndfile puts in a float WAV's PEAK chunk is zeroed."""
    return write_audio_chunks(path, [audio], sample_rate, tags)


def write_audio_chunks(path: str | os.PathLike, chunks: Iterable[np.ndarray], sample_rate: int,
                       tags: dict[str, str] | None = None) -> Path:
    """`write_audio` of the (channels, samples) pieces of one waveform, in order, each written as it comes (hours of
    audio stream to the file; nothing appears at `path` until the last piece is written)."""
    import soundfile as sf

    path = check_output_path(path, AUDIO_FORMATS)
    ext = path.suffix.lower()
    rates = AUDIO_RATES.get(ext)
    if rates is not None and sample_rate not in rates:
        raise SwapForwardError(f"{ext} takes sample rates of {', '.join(str(r) for r in rates)} Hz, not {sample_rate}; "
                               f"choose one with --sample-rate.")
    pieces = iter(chunks)

    def frames(chunk: np.ndarray) -> np.ndarray:
        data = np.asarray(chunk, dtype=np.float32).T
        return np.clip(data, -1.0, 1.0) if ext != ".wav" else data

    first = frames(next(pieces))

    def write(tmp: Path) -> None:
        with sf.SoundFile(tmp, "w", sample_rate, first.shape[1], format=AUDIO_FORMATS[ext],
                          subtype=AUDIO_SUBTYPES[ext]) as f:
            for key, value in (tags or {}).items():
                if key in TAGS and value:
                    setattr(f, key, value)
            f.write(first)
            for piece in pieces:
                f.write(frames(piece))
        if ext == ".wav":
            _zero_peak_timestamp(tmp)

    return write_atomic(path, write)


def _zero_peak_timestamp(path: Path) -> None:
    """Zero the time of writing that libsndfile stores in a WAV's PEAK chunk, so that equal audio gives equal bytes."""
    with open(path, "r+b") as f:
        head = f.read(4096)
        at = head.find(b"PEAK")
        if at >= 0:
            f.seek(at + 12)  # 'PEAK', chunk size, version, then the 4-byte timestamp
            f.write(b"\0\0\0\0")


#: A spectrogram picture is at most 2,400 pixels wide: beyond this many frames, frames are averaged in blocks first;
#: beyond this many views their starts and overlaps would cover the picture, so they are not marked.
SPECTROGRAM_FRAMES = 16384
MARKED_VIEWS = 200


def decimated(mel: np.ndarray, limit: int = SPECTROGRAM_FRAMES) -> np.ndarray:
    """(frames, bins) with at most `limit` frames: blocks of frames averaged (hours of audio plot in the memory and
    time of minutes; shorter spectrograms are drawn as they are)."""
    if mel.shape[0] <= limit:
        return mel
    block = -(-mel.shape[0] // limit)
    whole = mel.shape[0] // block * block
    parts = [mel[:whole].reshape(-1, block, mel.shape[1]).mean(axis=1)]
    if whole < mel.shape[0]:
        parts.append(mel[whole:].mean(axis=0, keepdims=True))
    return np.concatenate(parts).astype(np.float32)


def save_spectrogram(
    path: str | os.PathLike,
    mel: np.ndarray,
    seconds: float,
    boundaries: list[float],
    overlaps: list[tuple[float, float]],
    title: str = "",
    segments: list[tuple[float, str]] | None = None,
    kept: list[tuple[float, float]] | None = None,
) -> Path:
    """A PNG of the (frames, bins) spectrogram over `seconds`, view starts as lines, overlap spans shaded, a
    timeline's segment starts as white dashed lines labelled with their prompts, and kept input spans as a green bar
    along the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_output_path(path, IMAGE_FORMATS)
    fig, ax = plt.subplots(figsize=(float(min(24.0, max(6.0, seconds / 2.5))), 3.2), dpi=100)
    ax.imshow(decimated(mel).T, origin="lower", aspect="auto", extent=(0.0, seconds, 0, mel.shape[1]), cmap="magma")
    marked = len(boundaries) <= MARKED_VIEWS
    for start, end in overlaps if marked else ():
        ax.axvspan(start, end, color="cyan", alpha=0.2, lw=0)
    for x in boundaries if marked else ():
        ax.axvline(x, color="cyan", lw=0.8)
    for start, end in kept or []:
        ax.axvspan(start, end, ymin=0.94, ymax=1.0, color="lime", lw=0)
        ax.text(start, mel.shape[1] * 0.90, " kept", color="lime", fontsize=7, va="top", clip_on=True)
    for start, prompt in segments or []:
        ax.axvline(start, color="white", lw=1.2, ls="--")
        ax.text(start, mel.shape[1] * 0.97, f" {prompt[:40]}", color="white", fontsize=7, va="top", ha="left",
                clip_on=True)
    ax.set_xlim(0, seconds)
    ax.set_xlabel("time (s); lines: view starts, shaded: overlaps" if marked else
                  f"time (s); {len(boundaries)} views, too many to mark")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
