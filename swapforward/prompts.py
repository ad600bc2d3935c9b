"""Prompts along the canvas: a timeline of segments, each a start and a prompt (and its own negative prompt).

Audio starts are seconds of the output; panorama starts are pixels of the width, or fractions of it (numbers
strictly between 0 and 1). The text form, one segment per line, is what `--timeline FILE`, a batch job's `timeline`
field and the app's timeline box take:

    0:00 light rain on leaves
    0:30 thunderstorm, heavy rain | music, speech
    # a comment; blank lines are skipped

A start is `h:mm:ss`, `m:ss` or plain seconds (pixels for panoramas); text after ` | ` is that segment's negative
prompt. Plain Python, no torch: the command line checks timelines before loading anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SwapForwardError

#: Segments shorter than these are refused: shorter than a second of sound or 64 pixels (8 latent columns), a
#: segment is too short to be heard or seen as a part of its own, and with transition "cut" it may hold no view.
MIN_SEGMENT = {"audio": 1.0, "panorama": 64.0}
UNITS = {"audio": "s", "panorama": "px"}


@dataclass(frozen=True)
class Segment:
    """A part of the canvas from `start` (seconds or pixels) to the next segment's start, with its own prompt."""

    start: float
    prompt: str
    negative_prompt: str | None = None


_CLOCK = re.compile(r"(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)")


def parse_start(text: str) -> float | None:
    """'1:02:03' -> 3723.0, '0:30' -> 30.0, '12.5' -> 12.5; None if it is not a start."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        return None
    first, second, seconds = match.groups()
    hours, minutes = (first, second) if second is not None else (None, first)
    if minutes is not None and float(seconds) >= 60 or hours is not None and int(minutes) >= 60:
        raise SwapForwardError(f"{text.strip()!r} is not a time: in m:ss and h:mm:ss the seconds and minutes must be "
                               f"below 60 (1:15, or 75 as plain seconds).")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def parse_lines(text: str, label: str = "timeline") -> list[Segment]:
    """Segments from the text form; a malformed line is one sentence quoting it with its number."""
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        head, _, rest = stripped.partition(" ")
        start = parse_start(head)
        prompt, _, negative = rest.partition(" | ")
        if start is None or not prompt.strip():
            raise SwapForwardError(
                f"{label} line {number} is not 'START PROMPT' (START as m:ss or seconds): {stripped!r}."
            )
        segments.append(Segment(start, prompt.strip(), negative.strip() or None))
    if not segments:
        raise SwapForwardError(f"{label} has no segments; write one 'START PROMPT' per line.")
    return segments


def to_segments(value: Sequence[Any], label: str, text: bool) -> list[Segment]:
    """Segments from (start, prompt[, negative]) pairs, dicts with start/prompt/negative_prompt, or Segments; starts
    as text ('0:30') are parsed when they come from text (command line, jobs, app)."""
    segments = []
    for i, item in enumerate(value):
        if isinstance(item, Segment):
            item = (item.start, item.prompt, item.negative_prompt)
        elif isinstance(item, dict):
            unknown = set(item) - {"start", "at", "prompt", "negative_prompt"}
            if unknown:
                raise SwapForwardError(f"{label} segment {i} has an unknown key {sorted(unknown)[0]!r}; use start, "
                                       f"prompt and negative_prompt.")
            item = (item.get("start", item.get("at")), item.get("prompt"), item.get("negative_prompt"))
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise SwapForwardError(f"{label} segment {i} must be (start, prompt) or (start, prompt, negative), "
                                   f"got {item!r}.")
        start, prompt, negative = (*item, None)[:3]
        if isinstance(start, str) and text:
            start = parse_start(start)
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start) or start < 0:
            raise SwapForwardError(f"{label} segment {i} has start {item[0]!r}; give a number >= 0 (or m:ss).")
        if not isinstance(prompt, str) or not prompt.strip():
            raise SwapForwardError(f"{label} segment {i} has an empty prompt; describe what it should hold.")
        if negative is not None and not isinstance(negative, str):
            raise SwapForwardError(f"{label} segment {i} has a negative prompt that is not text: {negative!r}.")
        segments.append(Segment(float(start), prompt.strip(), (negative or "").strip() or None))
    if not segments:
        raise SwapForwardError(f"{label} has no segments; give at least one (start, prompt).")
    return segments


def settle(segments: list[Segment], kind: str, extent: float, loop: bool, label: str) -> list[Segment]:
    """Check segments against the output (`extent` seconds or pixels) and merge neighbours that ask the same.

    Starts must increase and lie inside the output; every segment (the last one wrapping onto the first when
    looping) must be at least MIN_SEGMENT long. Panorama starts strictly between 0 and 1 are fractions of the width.
    """
    unit = UNITS[kind]
    if kind == "panorama":
        segments = [Segment(s.start * extent if 0 < s.start < 1 else s.start, s.prompt, s.negative_prompt)
                    for s in segments]
    starts = [s.start for s in segments]
    for previous, current in zip(starts, starts[1:], strict=False):
        if current <= previous:
            raise SwapForwardError(f"{label} starts must increase; {_shown(current, unit)} comes after "
                                   f"{_shown(previous, unit)}.")
    if starts[-1] >= extent:
        raise SwapForwardError(f"{label} segment at {_shown(starts[-1], unit)} starts outside the output, which is "
                               f"{_shown(extent, unit)} long.")
    ends = starts[1:] + [extent + (starts[0] if loop else 0.0)]
    lengths = [end - start for start, end in zip(starts, ends, strict=True)]
    if not loop:
        lengths[0] = ends[0]  # the first segment reaches back to the start
    shortest = min(range(len(lengths)), key=lengths.__getitem__)
    if len(segments) > 1 and lengths[shortest] < MIN_SEGMENT[kind]:
        raise SwapForwardError(
            f"{label} segment at {_shown(starts[shortest], unit)} lasts {_shown(lengths[shortest], unit)}; a "
            f"segment must last at least {_shown(MIN_SEGMENT[kind], unit)}."
        )
    merged = [segments[0]]
    for segment in segments[1:]:
        if (segment.prompt, segment.negative_prompt) != (merged[-1].prompt, merged[-1].negative_prompt):
            merged.append(segment)
    if loop and len(merged) > 1 and (merged[0].prompt, merged[0].negative_prompt) == (
            merged[-1].prompt, merged[-1].negative_prompt):
        merged = merged[1:]  # the last segment wraps onto the start: it is the first one continued
    return merged


def _shown(value: float, unit: str) -> str:
    if unit == "s":
        minutes, seconds = divmod(value, 60)
        return f"{int(minutes)}:{seconds:05.2f}" if minutes else f"{value:g} s"
    return f"{value:g} px"


def describe(prompt: str | Sequence[Segment], kind: str = "audio") -> str:
    """A prompt or a timeline in one line: 'rain' or '0:00 rain -> 0:30 storm'."""
    if isinstance(prompt, str):
        return prompt
    return " -> ".join(f"{_clock(s.start) if kind == 'audio' else f'{s.start:g} px'} {s.prompt}" for s in prompt)


def words(prompt: str | Sequence[Segment]) -> str:
    """The prompt's text alone: 'rain', or 'rain then storm' for a timeline (for file names and titles)."""
    return prompt if isinstance(prompt, str) else " then ".join(s.prompt for s in prompt)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}" if rest % 1 else f"{int(minutes)}:{int(rest):02d}"
