"""`swapforward stream`: a stream to standard output or to a file that grows as it plays, a line per block on
stderr, and a clean end on Ctrl-C, SIGTERM, a closed pipe or the asked length."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ..errors import SwapForwardError
from ..io.delivery import settings_json
from ..io.files import AUDIO_FORMATS, AUDIO_RATES, check_output_path
from ..io.streaming import GrowingFile, PipeWriter
from ..options import Request
from ..runtime.signals import deferred


def check_stream_output(output: Request, stdout_is_terminal: bool) -> None:
    """Every output choice checked before the model loads, one sentence each."""
    if output.serve:
        if output.out is not None:
            raise SwapForwardError("Give either --out or --serve: a served stream is written to no file.")
        return
    if output.out is None:
        raise SwapForwardError("Give --out: a file that grows as it plays (.wav, .flac, .ogg, .opus, .mp3), or - to "
                               "play it from standard output (swapforward stream ... --out - | ffplay -nodisp -).")
    if output.out == "-":
        if stdout_is_terminal:
            raise SwapForwardError("--out - writes audio to standard output, which is a terminal here; pipe it into a "
                                   "player (| ffplay -nodisp -, | aplay, | sox -t wav - -d) or give a file.")
        if output.sample_rate is not None:
            raise SwapForwardError("--sample-rate resamples a file; standard output gets the model's own rate.")
        return
    if output.format != "wav":
        raise SwapForwardError("--format raw is for --out - (standard output); a file's format is its extension.")
    path = check_output_path(output.out, AUDIO_FORMATS)
    rates = AUDIO_RATES.get(path.suffix.lower())
    if rates is not None and output.sample_rate is not None and output.sample_rate not in rates:
        raise SwapForwardError(f"{path.suffix} takes sample rates of {', '.join(map(str, rates))} Hz, not "
                               f"{output.sample_rate}.")
    if output.save_state is not None:
        check_output_path(output.save_state, None)


def open_writer(stream: Any, output: Request) -> Any:
    """The pipe or the growing file the stream goes to (a file's tags hold the settings that made it)."""
    if output.out == "-":
        return PipeWriter(stream.sample_rate, stream.channels, output.format)
    tags = {"title": stream.request.prompt if isinstance(stream.request.prompt, str) else "timeline",
            "comment": settings_json(stream.settings), "software": "swapforward stream"}
    return GrowingFile(output.out, stream.sample_rate, stream.channels, output.sample_rate, tags)


def play_out(stream: Any, output: Request, say: Callable[[str], None]) -> str:
    """Write the stream until it ends, a signal stops it or the reader goes away; the writer is closed in every case
    (a file is valid up to the last piece). Returns the closing line."""
    writer = open_writer(stream, output)
    start, blocks, reason = time.perf_counter(), 0, "done"
    try:
        for piece in stream:
            with deferred():  # a signal waits until the piece is written whole
                writer.write(piece)
            if stream.state.block != blocks:
                blocks = stream.state.block
                wall = time.perf_counter() - start
                if output.save_state is not None:
                    stream.save_state(output.save_state)
                first = " (first audio)" if blocks == 1 else ""
                say(f"block {blocks}: {stream.seconds:.1f} s of audio after {wall:.1f} s{first}, real-time factor "
                    f"{wall / max(stream.seconds, 1e-9):.2f}")
    except BrokenPipeError:
        reason = "the player closed the pipe"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more goes to the closed pipe
    except KeyboardInterrupt as stop:
        reason = f"stopped ({getattr(stop, 'name', 'SIGINT')})"
    finally:
        closed = writer.close()
    where = "standard output" if closed is None else str(closed)
    return f"{where}: {stream.seconds:.2f} s of {stream.request.method} stream, seed {stream.seed}; {reason}"
