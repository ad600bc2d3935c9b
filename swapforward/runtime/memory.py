"""Memory: how many views go in one denoiser call when the user does not say (sized from the device's free
memory), and how much host memory is available for the decoded output.

On a GPU the first call of a run evaluates one view alone and measures what it cost; the batch limit is then the
free memory (with headroom) over that cost, so the denoiser's memory stays bounded whatever the length. If a call
still runs out of memory, its batch is halved until it fits, and the size that fitted is kept. Devices whose memory
cannot be measured (CPU, MPS) take `HOST_VIEW_BATCH` views per call: larger batches gain little there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import SwapForwardError

#: Views per denoiser call on devices without memory statistics.
HOST_VIEW_BATCH = 8
#: Fraction of the free memory that the views of one call may take (the rest: allocator slack, the decoder).
HEADROOM = 0.8

#: (views batch, timestep, the rows' positions in the step's batch) -> model output; the positions travel with the
#: rows through every split, so each row keeps its own conditioning.
Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DeviceMemory:
    """The three readings the sizing needs, as functions (CUDA's statistics, or others in tests)."""

    start: Callable[[], int]
    """Reset the peak statistic and return the bytes allocated now."""
    peak: Callable[[], int]
    """Peak bytes allocated since `start`."""
    free: Callable[[], int]
    """Bytes that new tensors can still take: free on the device (within this process's cap) plus PyTorch's unused
    cache."""

    @classmethod
    def of(cls, device: torch.device) -> DeviceMemory | None:
        """CUDA's readings for `device`, or None where there are none."""
        if device.type != "cuda":
            return None

        def start() -> int:
            torch.cuda.reset_peak_memory_stats(device)
            return torch.cuda.memory_allocated(device)

        def free() -> int:
            device_free, total = torch.cuda.mem_get_info(device)
            reserved = torch.cuda.memory_reserved(device)
            capped = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # absent from older torch
            fraction = capped(device) if capped else 1.0  # the cap of torch.cuda.set_per_process_memory_fraction
            return min(device_free, int(fraction * total) - reserved) + reserved - torch.cuda.memory_allocated(device)

        return cls(start=start, peak=lambda: torch.cuda.max_memory_allocated(device), free=free)


def aligned(size: int, ids: torch.Tensor) -> int:
    """A batch size that keeps canvases whole when it can: the largest multiple of a canvas's block of rows (the
    distinct views and references of the call, which repeat canvas by canvas; `ids` hold each row's view) that fits
    in `size`, else `size` itself. So each call holds whole canvases, and a take's rows meet the model as they would
    in a run of that take alone."""
    block = int(ids.unique().numel()) if ids.numel() else 1
    return (size // block) * block if size >= block else size


def batch_limit(free_bytes: int, per_view_bytes: int, headroom: float = HEADROOM) -> int:
    """Views per call that fit in `headroom` of `free_bytes` when each costs `per_view_bytes` (at least one)."""
    return max(1, int(free_bytes * headroom) // max(per_view_bytes, 1))


def fit_in_memory(model: Model, memory: DeviceMemory | None = None, host_limit: int = HOST_VIEW_BATCH) -> Model:
    """Wrap `model` to evaluate a batch of views in chunks that fit the device (see the module's docstring).

    With `memory` (a GPU), the first call measures one view and sizes the chunks from the free memory; without it,
    chunks hold `host_limit` views. Out-of-memory errors halve the chunk, and the size that fitted is kept.
    """
    limit: int | None = None if memory is not None else host_limit

    def calibrate(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        nonlocal limit
        before = memory.start()
        try:
            first = model(x[:1], t, ids[:1])
        except torch.cuda.OutOfMemoryError:
            raise out_of_memory() from None
        limit = batch_limit(memory.free(), memory.peak() - before)
        return first if x.shape[0] == 1 else torch.cat([first, call(x[1:], t, ids[1:])])

    def call(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        nonlocal limit
        if limit is None:
            return calibrate(x, t, ids)
        size = aligned(min(limit, x.shape[0]), ids)
        while True:
            try:
                return torch.cat([model(part, t, i) for part, i in zip(x.split(size), ids.split(size), strict=True)])
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise out_of_memory() from None
                size = limit = size // 2
                torch.cuda.empty_cache()

    return call


def fixed_batches(model: Model, hint: str, size: int | None = None) -> Model:
    """Wrap `model` to take batches of `size` views (all at once without it), so that running out of GPU memory is
    one sentence with `hint`."""

    def call(x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        chunk = aligned(size, ids) if size else x.shape[0]
        try:
            return torch.cat([model(part, t, i) for part, i in zip(x.split(chunk), ids.split(chunk), strict=True)])
        except torch.cuda.OutOfMemoryError:
            message = f"The GPU runs out of memory with {min(chunk, x.shape[0])} views per model call; {hint}"
            raise SwapForwardError(message) from None

    return call


def out_of_memory() -> SwapForwardError:
    return SwapForwardError(
        "The GPU runs out of memory even with one view per model call; use a smaller window, --dtype float16, "
        "or a GPU with more memory."
    )


#: Host memory per output sample or pixel at the end of a run (the decoded output, its copies, the file's encoding
#: and the picture), and a working set that does not grow with the output (the first model call's buffers, the
#: libraries loaded to write): measured on a grid of lengths, widths and methods (tests/test_memory.py, about 33
#: bytes a sample, 49 a pixel and 120 MiB), with margins.
BYTES_PER_SAMPLE = 40
BYTES_PER_PIXEL = 64
WORKING_BYTES = 256 * 2**20
#: Copies of the latent canvas the joint loop holds at once (the canvas, the merge's sums, the views of a segment,
#: the scheduler's temporaries), and AudioLDM's latent and mel spectrogram bytes per output sample (8 x 16 float32
#: per 640 samples; 64 bins per 160): a streamed output (past STREAM_SAMPLES) holds only these, measured at 5.2
#: bytes a sample for 8 hours of AudioLDM's geometry (benchmarks/eight_hours.py).
LOOP_CANVASES = 6
AUDIOLDM_LATENT_BYTES, AUDIOLDM_SPECTROGRAM_BYTES = 0.8, 1.6


def sample_bytes(samples: float, latent_bytes: float = AUDIOLDM_LATENT_BYTES,
                 spectrogram_bytes: float = AUDIOLDM_SPECTROGRAM_BYTES, channels: int = 1,
                 streamable: bool = True) -> float:
    """Host memory per output sample for a take of `samples` (every take is held or streamed by its own length), for
    a model whose latent and held spectrogram take `latent_bytes` and `spectrogram_bytes` per sample: the loop's
    canvases and the spectrogram, plus the waveform's `channels` and their copies unless the take is streamed to its
    file (past STREAM_SAMPLES, and only when the run is `streamable`: not spliced, ranked or a loop resampled)."""
    streamed = streamable and samples * channels > STREAM_SAMPLES
    return LOOP_CANVASES * latent_bytes + spectrogram_bytes + (0 if streamed else BYTES_PER_SAMPLE * channels)


def check_host_memory(label: str, value: float, units: float, unit_bytes: float, unit: str, step: int = 1,
                      bytes_at: Callable[[float], float] | None = None, breaks: tuple[float, ...] = ()) -> None:
    """Refuse, in one sentence, an output of `units` samples or pixels that would not fit in the free host memory,
    naming the most `label` that fits (in multiples of `step`). `bytes_at(v)` is the output's bytes at `label` = v
    (default: proportional), increasing between `breaks` (where a take starts to be streamed and costs less): the
    advice is a value that passes this same check."""
    available = available_memory_bytes()
    budget = HEADROOM * available - WORKING_BYTES
    need = WORKING_BYTES + units * unit_bytes
    if need > HEADROOM * available:
        bytes_at = bytes_at or (lambda v: units * unit_bytes * v / value)
        most = largest_fitting(bytes_at, budget, value, step, breaks)
        raise SwapForwardError(f"{label}={value!r} needs about {need / 2**30:.1f} GiB of memory, more than "
                               f"{HEADROOM:.0%} of the {available / 2**30:.1f} GiB free; ask for at most {most:g} "
                               f"{unit}.")


def audio_bytes(seconds: float, rate: int, takes: int, latent_bytes: float = AUDIOLDM_LATENT_BYTES,
                spectrogram_bytes: float = AUDIOLDM_SPECTROGRAM_BYTES, channels: int = 1,
                streamable: bool = True) -> float:
    """Host memory `takes` takes of `seconds` at `rate` need at the end of a run, each held or streamed by its own
    length (the working set aside)."""
    return seconds * rate * takes * sample_bytes(seconds * rate, latent_bytes, spectrogram_bytes, channels, streamable)


def check_audio_memory(label: str, seconds: float, rate: int, takes: int, latent_bytes: float = AUDIOLDM_LATENT_BYTES,
                       spectrogram_bytes: float = AUDIOLDM_SPECTROGRAM_BYTES, channels: int = 1,
                       streamable: bool = True) -> None:
    """`check_host_memory` for audio: its advice counts the takes, and where a take starts to be streamed."""
    def bytes_at(value: float) -> float:
        return audio_bytes(value, rate, takes, latent_bytes, spectrogram_bytes, channels, streamable)

    samples = seconds * rate * takes
    check_host_memory(label, seconds, samples, bytes_at(seconds) / samples, "s", bytes_at=bytes_at,
                      breaks=(STREAM_SAMPLES / rate / channels,) if streamable else ())


def largest_fitting(bytes_at: Callable[[float], float], budget: float, value: float, step: int,
                    breaks: tuple[float, ...] = ()) -> float:
    """The largest multiple of `step` below `value` whose `bytes_at` is within `budget` (0 if none), for bytes that
    increase with the value between `breaks` (bisection in each stretch, the highest first)."""
    edges = sorted({0.0, float(value), *(float(b) for b in breaks if 0 < b < value)})
    for lo, hi in reversed(list(zip(edges, edges[1:], strict=False))):
        first, last = math.floor(lo / step) + (1 if lo > 0 else 0), math.floor(hi / step)
        if hi == value and last * step >= value:
            last -= 1  # the value asked for did not fit
        if last < first or bytes_at(first * step) > budget:
            continue
        while first < last:
            middle = (first + last + 1) // 2
            first, last = (middle, last) if bytes_at(middle * step) <= budget else (first, middle - 1)
        return first * step
    return 0


#: Host bytes per view frame that a layout's buffers take (frame indices, merge and swap weights, the reference mask,
#: the swap's per-frame candidates and their temporaries), with a margin: what a high overlap multiplies.
VIEW_FRAME_BYTES = 64


def check_view_memory(views: int, window: int, label: str, value: float) -> None:
    """Refuse, in one sentence, a layout whose views x window buffers would not fit in the free host memory (an
    overlap near 1 makes thousands of views: 0.999 over a minute of a 5120-frame window asked for 31 GB)."""
    available = available_memory_bytes()
    need = WORKING_BYTES + views * window * VIEW_FRAME_BYTES
    if need > HEADROOM * available:
        raise SwapForwardError(f"{label}={value!r} lays out {views} views of {window} frames, whose buffers need about "
                               f"{need / 2**30:.1f} GiB, more than {HEADROOM:.0%} of the {available / 2**30:.1f} GiB "
                               f"free; use a smaller {label} or a shorter output.")


def release_host_memory() -> None:
    """Give the C allocator's free pages back to the system (glibc's malloc_trim; nothing elsewhere). A stream calls
    it after every block: without it, glibc keeps the freed buffers of varying sizes and the resident memory of an
    endless stream creeps up (+21 MiB over an hour of audio, flat with it; benchmarks/stream.py)."""
    import ctypes
    import ctypes.util

    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)


_libc = None


def available_memory_bytes() -> int:
    """Host memory available now (MemAvailable), or the physical total where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


#: Latent views a segment of the joint loop holds at once (see core.sampler): beyond it, a step's memory would grow
#: with the length (the views, the model's outputs and the scheduler's temporaries are each a few times this).
SEGMENT_BYTES = 64 * 2**20
#: Outputs of more samples than this (about 70 minutes of 16 kHz mono, 256 MB of float32) are not held whole: the
#: vocoder's pieces go to the file as they are decoded (`LongAudioOutput.save`).
STREAM_SAMPLES = 2**26


def segment_views(view_bytes: int, canvases: int, views: int) -> int | None:
    """How many views a segment takes, or None when every view fits in one (all runs up to ~1.4 h of AudioLDM)."""
    size = max(1, SEGMENT_BYTES // max(1, view_bytes * canvases))
    return None if size >= views else size
