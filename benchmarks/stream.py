"""The stream against a one-shot run, on a tiny model of AudioLDM-S's geometry (benchmarks/eight_hours.py): time to
first audio for a 10-minute stream and for a 10-minute one-shot run (the ratio, in one process), the stream's
real-time factor, and its host memory over an hour of audio (the slope of resident memory against stream time,
after the first minutes; it should be zero).

    python benchmarks/stream.py                  # 600 s against 600 s, then an hour of stream, 2 steps
    python benchmarks/stream.py --quick          # 60 s against 60 s, then 5 minutes of stream (the smoke run)

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def resident_mib() -> float:
    """This process's resident memory (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the one-shot run and the stream")
    parser.add_argument("--hour", type=float, default=3600.0, help="seconds of stream for the memory slope")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--method", default="md-envelope")
    parser.add_argument("--quick", action="store_true", help="60 s and 300 s: the smoke run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.hour = 60.0, 300.0

    import torch
    from eight_hours import real_geometry_pipeline

    from swapforward import LongAudioPipeline

    torch.set_num_threads(2)
    pipe = LongAudioPipeline.from_pipe(real_geometry_pipeline())
    options = dict(num_inference_steps=args.steps, method=args.method, seed=0, progress_bar=False)
    pipe("warm-up", audio_length_in_s=20, **options)  # the first calls' one-off costs go to neither side

    start = time.perf_counter()
    stream = pipe.stream("rain on a tent", audio_length_in_s=args.seconds, **options)
    first_piece = next(iter(stream))
    first_stream = time.perf_counter() - start
    del first_piece

    start = time.perf_counter()
    pipe("rain on a tent", audio_length_in_s=args.seconds, **options)
    one_shot = time.perf_counter() - start

    stream = pipe.stream("rain on a tent", audio_length_in_s=args.hour, **options)
    start, memory, made = time.perf_counter(), [], 0
    for piece in stream:
        made += piece.shape[-1]
        memory.append((made / stream.sample_rate, resident_mib()))
    wall = time.perf_counter() - start
    settled = [(t, m) for t, m in memory if t >= min(120.0, args.hour / 4)]
    times, mib = np.array(settled).T
    slope = float(np.polyfit(times / 3600, mib, 1)[0])

    print(f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; {args.method}, {args.steps} steps, blocks of {stream.request.block_views} views "
          f"({stream.block_seconds:.2f} s of new audio each).\n")
    print("| measure | value |\n| --- | ---: |")
    print(f"| first audio, {args.seconds:g} s stream | {first_stream:.2f} s |")
    print(f"| {args.seconds:g} s one-shot run, whole | {one_shot:.2f} s |")
    print(f"| one-shot / stream first audio | {one_shot / first_stream:.1f}x |")
    print(f"| stream real-time factor ({args.hour:g} s) | {wall / args.hour:.3f} |")
    print(f"| resident memory after {settled[0][0]:.0f} s / at the end | {settled[0][1]:.0f} / {settled[-1][1]:.0f} "
          f"MiB |")
    print(f"| memory slope after {settled[0][0]:.0f} s | {slope:+.1f} MiB per hour of audio |")


if __name__ == "__main__":
    main()
