"""Endless audio as a stream of blocks (`LongAudioPipeline.stream`): sound within one block, memory that does not grow.

A block is a joint run over `block_views` views (any method). Every block after the first starts with `context`
frames, the previous block's last overlap, and continues it as `continuation` says (pipelines/continuation.py): by
default those frames follow the previous block's own trajectory at every step. The reference view of safa and
md-envelope starts from the same noise in every block (`stream_reference` "shared"), so every block follows the same
reference trajectory while the prompt stays: one style for hours, without the copying of a swapped reference (the
lab's stream table, docs/lab.md).

Each block is decoded alone; the samples handed out are cut in the middle of the next block's context, where both
blocks hold the same latent frames, with a short crossfade between the two decodes there, so pieces join without a
seam. Block b's noise comes from a generator seeded by (seed, b), so a stream is the same whatever pieces are read,
and a saved state (a few blocks' worth of context, no audio history) resumes it to the same samples.
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from ..core.layout import ViewLayout, stride_for
from ..core.methods import get_method
from ..errors import SwapForwardError
from ..io.files import write_atomic
from ..options import RANDOM_SEED, Request
from ..prompts import Segment
from ..runtime.memory import release_host_memory
from .continuation import Continuation
from .joint import generators, reference_noise, run_joint, timesteps_for

FORMAT = "swapforward-stream-state/1"
#: Seconds of crossfade between two blocks' decodes of the same frames (Magenta RealTime's is 40 ms).
CROSSFADE_SECONDS = 0.04


def block_seed(seed: int, block: int) -> int:
    """Block b's seed: the stream's own for the first block (so it is the plain run), a hash of both after."""
    if block == 0:
        return seed
    digest = hashlib.sha256(f"swapforward-stream:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class StreamState:
    """Where a stream stands between two blocks: what it needs to continue to the same samples."""

    settings: dict[str, Any]
    block: int = 0
    """Blocks made so far."""
    start: int = 0
    """The stream frame where the next block's canvas begins."""
    emitted: int = 0
    """Samples handed out so far."""
    tail: torch.Tensor | None = None
    """The last block's recorded context for the next (continuation.Continuation.tail)."""
    pending: np.ndarray | None = None
    """Decoded samples held back for the crossfade with the next block."""
    changes: list[Segment] = field(default_factory=list)
    """Prompt changes made while it played (`set_prompt`), as segments of stream time."""
    reference: torch.Tensor | None = None
    """The shared reference view's noise (None: not drawn yet, or fresh references)."""

    def save(self, path: str | os.PathLike) -> str:
        """Write the state atomically (a pickle: resume only from files you wrote)."""
        data = {"format": FORMAT, **self.__dict__}
        return str(write_atomic(path, lambda tmp: torch.save(data, tmp)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> StreamState:
        try:
            data = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # unreadable, truncated, not a pickle: one sentence whatever it is
            raise SwapForwardError(f"Cannot read the stream state {str(path)!r}: {error}.") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise SwapForwardError(f"{str(path)!r} is not a stream state written by swapforward stream --save-state.")
        return cls(**data)


class AudioStream:
    """An endless (or `audio_length_in_s` long) stream of consecutive waveform pieces, (channels, samples) float32.

    Iterate it for one piece per block; `pieces(samples)` gives pieces of a fixed size. `set_prompt` changes the
    prompt from the next block on, `stop` ends it after the block in progress, `state` / `save_state` capture it.
    """

    def __init__(self, pipe: Any, request: Request, state: StreamState | None = None, progress_bar: bool = True):
        self.pipe, self.adapter = pipe, pipe.adapter
        if request.seed == RANDOM_SEED or request.seed is None:
            seed = state.settings["seed"] if state is not None else generators(None, RANDOM_SEED)[1]
            request = request.replace(seed=seed)
        self.request, self.seed = request, request.seed
        self.settings = pipe.settings(request, self.seed)
        if state is not None:
            _check_same(state.settings, self.settings)
        self.progress_bar = progress_bar
        self.state = state or StreamState(self.settings)
        self._lock = threading.Lock()
        self._stopped = False

        fs = self.adapter.frame_samples
        self.window = pipe.window_frames(request)
        stride = stride_for(self.window, request.overlap)
        self.context = self.window - stride
        self.block_frames = self.window + (request.block_views - 1) * stride
        self.total = None if request.endless else pipe.frames_for(request.audio_length_in_s, False)[1]
        pipe.layout(request.replace(audio_length_in_s=self.block_frames * fs / self.sample_rate))  # its checks
        self.crossfade = min(round(CROSSFADE_SECONDS * self.adapter.sample_rate), (self.context // 2) * fs)
        self.media = None

    @property
    def sample_rate(self) -> int:
        return self.adapter.sample_rate

    @property
    def channels(self) -> int:
        return self.adapter.channels

    @property
    def seconds(self) -> float:
        """Seconds handed out so far."""
        return self.state.emitted / self.sample_rate

    @property
    def block_seconds(self) -> float:
        """Seconds of new audio each block after the first adds."""
        return (self.block_frames - self.context) * self.adapter.frame_samples / self.sample_rate

    def set_prompt(self, prompt: str, negative_prompt: str | None = None) -> float:
        """Change the prompt from the next block on (its first new frame), with the request's transition; returns
        the stream time (s) where the change starts."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise SwapForwardError("The new prompt is empty; describe what to generate.")
        if get_method(self.request.method).one_prompt:
            raise SwapForwardError(f"{self.request.method} conditions every view alike, so its prompt cannot change; "
                                   f"use another method to change it while it plays.")
        with self._lock:
            at = (self.state.start + (self.context if self.state.block else 0)) * self.adapter.frame_samples
            seconds = at / self.sample_rate
            kept = [c for c in self.state.changes if c.start < seconds]
            self.state.changes = [*kept, Segment(seconds, prompt, negative_prompt)]
        return seconds

    def stop(self) -> None:
        """End the stream after the block in progress (its pieces, the held-back crossfade included, come out)."""
        self._stopped = True

    def save_state(self, path: str | os.PathLike) -> str:
        """Write the state to resume this stream from its next block: `pipe.stream(..., resume_from=path)`."""
        with self._lock:
            return self.state.save(path)

    def __iter__(self) -> Iterator[np.ndarray]:
        while not self._stopped and not self._finished():
            for piece in self.next_block():
                if piece.shape[-1]:
                    yield piece
        with self._lock:  # stopped between two blocks: the held-back samples end it
            held, self.state.pending = self.state.pending, None
            if held is not None:
                self.state.emitted += held.shape[-1]
        if held is not None and held.shape[-1]:
            yield held

    def pieces(self, samples: int) -> Iterator[np.ndarray]:
        """The same samples in pieces of exactly `samples` (the last may be shorter)."""
        if samples < 1:
            raise SwapForwardError(f"A piece must hold at least one sample, got {samples}.")
        held = np.zeros((self.channels, 0), dtype=np.float32)
        for piece in self:
            held = np.concatenate([held, piece], axis=-1)
            while held.shape[-1] >= samples:
                yield held[:, :samples]
                held = held[:, samples:]
        if held.shape[-1]:
            yield held

    def _finished(self) -> bool:
        return self.total is not None and self.state.emitted >= self.total

    def next_block(self) -> list[np.ndarray]:
        """Make the next block and return its final samples (a crossfade with the last block first)."""
        state, request, adapter = self.state, self.request, self.adapter
        fs = adapter.frame_samples
        single = state.block == 0 and self.total is not None and self.total <= self.block_frames * fs
        frames = self.pipe.frames_for(request.audio_length_in_s, False)[0] if single else self.block_frames
        layout = ViewLayout.build(frames, self.window, overlap=request.overlap)
        canvas_shape = adapter.latent_shape(frames)
        if self.media is None:
            self.media = self.pipe.media(request, layout, canvas_shape)
        block_request, timeline = self._conditioning(state.start, frames)
        generator = torch.Generator("cpu").manual_seed(block_seed(self.seed, state.block))
        continuation = Continuation(adapter.long_axis % len(canvas_shape), self.context, self.steps, state.tail,
                                    mode=request.continuation,
                                    fade=self.context // 4 if request.continuation == "replace" else 0)
        reference = self._shared_reference(block_request, timeline)
        result = run_joint(adapter, block_request, layout, canvas_shape, generator=generator,
                           reference_latents=reference, timeline=timeline, kept=continuation,
                           observed_reference=self.media.reference, progress_bar=self.progress_bar)
        wave = np.concatenate(list(adapter.decode_chunks(result.latents, window=layout.window, loop=False)[1]()),
                              axis=-1).astype(np.float32)
        first = state.start * fs  # the stream sample where this block's audio begins
        cut = (state.start + frames - self.context + self.context // 2) * fs  # in the next block's context
        end = math.inf if self.total is None else self.total
        last = single or self._stopped or cut - self.crossfade >= end
        stop_at = int(min(end, first + wave.shape[-1])) if last else cut - self.crossfade
        out, position = [], state.emitted
        if state.pending is not None:  # the last block's decode fades into this one's over the same frames
            held = state.pending.shape[-1]
            n = min(held, stop_at - position)
            rising = (0.5 - 0.5 * np.cos(np.pi * (np.arange(held) + 0.5) / held))[:n].astype(np.float32)
            fresh = wave[:, position - first: position - first + n]
            out.append(state.pending[:, :n] * (1 - rising) + fresh * rising)
            position += n
        if stop_at > position:
            out.append(np.ascontiguousarray(wave[:, position - first: stop_at - first]))
        with self._lock:
            state.emitted = stop_at
            state.pending = None if last else np.ascontiguousarray(wave[:, stop_at - first: cut - first])
            state.tail = continuation.tail()
            state.start += frames - self.context
            state.block += 1
            self._stopped = self._stopped or last
        gc.collect()  # the block's cyclic garbage, then its freed pages, go back: memory stays flat for hours
        release_host_memory()
        return out

    @cached_property
    def steps(self) -> int:
        """Denoising steps per block, as the scheduler sets them for one view."""
        view_shape = self.adapter.latent_shape(self.window)
        return len(timesteps_for(self.adapter, self.request, view_shape).timesteps)

    def _conditioning(self, start: int, frames: int) -> tuple[Request, list[tuple[int, Segment]] | None]:
        """The block's request and timeline: the segments of stream time (the request's and the live changes) that
        cover its frames, placed on its canvas (one segment: a plain prompt)."""
        request, fs, rate = self.request, self.adapter.frame_samples, self.sample_rate
        segments = list(request.prompt) if not isinstance(request.prompt, str) else [Segment(0.0, request.prompt)]
        with self._lock:
            changes = list(self.state.changes)
        for change in changes:
            segments = [s for s in segments if s.start < change.start] + [change]
        placed = [(round(s.start * rate / fs) - start, s) for s in segments]
        inside = [(max(0, f), s) for i, (f, s) in enumerate(placed)
                  if f < frames and (i + 1 == len(placed) or placed[i + 1][0] > 0)]
        if len(inside) == 1:
            segment = inside[0][1]
            return request.replace(prompt=segment.prompt,
                                   negative_prompt=segment.negative_prompt or request.negative_prompt), None
        return request.replace(prompt=tuple(s for _, s in inside)), inside

    def _shared_reference(self, request: Request, timeline: Any) -> torch.Tensor | None:
        """The first block's reference noise, for every later block of one prompt (stream_reference shared): drawn
        as `run_joint` draws it, after the first block's canvas noise from the stream's seed."""
        state = self.state
        if request.stream_reference != "shared" or timeline is not None or self.media.reference is not None:
            return None
        if state.reference is None:  # the first block's draws: its canvas noise, then its reference noise
            generator = torch.Generator("cpu").manual_seed(self.seed)
            device, dtype = self.adapter.device, self.adapter.dtype
            first_shape = self.adapter.latent_shape(self.block_frames)
            randn_tensor(tuple(first_shape), generator=generator, device=device, dtype=dtype)
            axis = self.adapter.long_axis % len(first_shape)
            view_shape = (1, *first_shape[1:axis], self.window, *first_shape[axis + 1:])
            state.reference = reference_noise(view_shape, 1, generator, device, dtype).cpu()
        return state.reference.to(self.adapter.device) if state.block else None


def _check_same(saved: dict[str, Any], asked: dict[str, Any]) -> None:
    """A resumed stream must be asked for with the same settings (the model and version included)."""
    for key in sorted(set(saved) | set(asked)):
        if key in ("swapforward",):
            continue
        if saved.get(key) != asked.get(key):
            raise SwapForwardError(f"The stream state was saved with {key} {saved.get(key)!r}, not {asked.get(key)!r}; "
                                   f"resume with the same settings.")
