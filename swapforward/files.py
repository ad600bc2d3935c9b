"""Output files: checked before generating, written atomically (temporary file, then rename), and pictures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import SwapForwardError

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
IMAGE_FORMATS = {".png": "PNG"}
PANORAMA_FORMATS = {**IMAGE_FORMATS, ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def check_output_path(path: str | os.PathLike, formats: dict[str, str]) -> Path:
    """Refuse an output path before any work: unsupported extension, missing or unwritable folder, a folder."""
    path = Path(path).expanduser()
    ext = path.suffix.lower()
    if ext not in formats:
        allowed = ", ".join(formats)
        raise SwapForwardError(f"Cannot write {str(path)!r}: unsupported format {ext or '(none)'!r}; use {allowed}.")
    if path.is_dir():
        raise SwapForwardError(f"Cannot write {str(path)!r}: it is a folder; give a file name ending in {ext}.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SwapForwardError(f"Cannot write {str(path)!r}: folder {str(folder)!r} does not exist.")
    if path.exists() and not os.access(path, os.W_OK):
        raise SwapForwardError(f"Cannot write {str(path)!r}: permission denied.")
    try:  # the only sure test (root passes os.access; /proc and read-only mounts refuse files anyway)
        fd, probe = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        message = f"Cannot write {str(path)!r}: the folder does not accept new files ({reason})."
        raise SwapForwardError(message) from None
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`: never a partial file."""
    path = Path(path).expanduser()
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
    except OSError as error:
        raise SwapForwardError(f"Cannot write {str(path)!r}: {error.strerror or error}.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write (channels, samples) float audio as WAV (float32) or FLAC (24-bit), chosen by extension."""
    import soundfile as sf

    path = check_output_path(path, AUDIO_FORMATS)
    fmt = AUDIO_FORMATS[path.suffix.lower()]
    data = np.asarray(audio, dtype=np.float32).T
    if fmt == "FLAC":
        data = np.clip(data, -1.0, 1.0)
    subtype = "FLOAT" if fmt == "WAV" else "PCM_24"
    return write_atomic(path, lambda tmp: sf.write(tmp, data, sample_rate, format=fmt, subtype=subtype))


def save_spectrogram(
    path: str | os.PathLike,
    mel: np.ndarray,
    seconds: float,
    boundaries: list[float],
    overlaps: list[tuple[float, float]],
    title: str = "",
    segments: list[tuple[float, str]] | None = None,
) -> Path:
    """A PNG of the (frames, bins) spectrogram over `seconds`, view starts as lines, overlap spans shaded, and a
    timeline's segment starts as white dashed lines labelled with their prompts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_output_path(path, IMAGE_FORMATS)
    fig, ax = plt.subplots(figsize=(float(min(24.0, max(6.0, seconds / 2.5))), 3.2), dpi=100)
    ax.imshow(mel.T, origin="lower", aspect="auto", extent=(0.0, seconds, 0, mel.shape[1]), cmap="magma")
    for start, end in overlaps:
        ax.axvspan(start, end, color="cyan", alpha=0.2, lw=0)
    for x in boundaries:
        ax.axvline(x, color="cyan", lw=0.8)
    for start, prompt in segments or []:
        ax.axvline(start, color="white", lw=1.2, ls="--")
        ax.text(start, mel.shape[1] * 0.97, f" {prompt[:40]}", color="white", fontsize=7, va="top", ha="left",
                clip_on=True)
    ax.set_xlim(0, seconds)
    ax.set_xlabel("time (s); lines: view starts, shaded: overlaps")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
