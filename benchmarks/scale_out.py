"""One piece across processes: the bytes each process exchanges per step, before (every view gathered by every
process) and after the border-only exchange, at 10 minutes, 1 hour and 8 hours of AudioLDM's geometry in fp32 (counted
from the layouts, no model needed); then the time per step with 1, 2 and 3 processes at one thread each on the CPU
(gloo, the tiny AudioLDM of tests/tiny_pipelines.py), as ratios measured in one run.

    python benchmarks/scale_out.py                 # 10 min / 1 h / 8 h bytes; 60 s of tiny audio, 4 steps
    python benchmarks/scale_out.py --seconds 4 --steps 1 --processes 1 2   # the smoke run

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: AudioLDM: 8 latent channels x 16 bins, 25 latent frames a second, a 256-frame (10.24 s) window, overlap 0.2.
CHANNELS, BINS, RATE, WINDOW, BATCH = 8, 16, 25, 256, 8


def bytes_table(world: int) -> list[str]:
    from swapforward.core.layout import ViewLayout
    from swapforward.core.shares import border_plan, process_shares

    view = CHANNELS * BINS * WINDOW * 4
    rows = ["| length | views | before: received per process and step | after: largest received | ratio |",
            "|---|---|---|---|---|"]
    for label, seconds in (("10 min", 600), ("1 h", 3600), ("8 h", 28800)):
        layout = ViewLayout.build(seconds * RATE, WINDOW, overlap=0.2, loop=True)
        shares = process_shares(layout.num_views, world, BATCH)
        plan = border_plan(layout, shares)
        before = (layout.num_views - min(end - first for first, end in shares)) * view
        after = max(sum(len(views) for views in needs) for needs in plan) * view
        rows.append(f"| {label} | {layout.num_views} | {before / 2**20:.1f} MiB | {after / 2**10:.0f} KiB "
                    f"| {before / after:,.0f}x |")
    return rows


def worker(rank: int, world: int, port: int, seconds: float, steps: int, out: str) -> None:
    import torch.distributed as dist
    from tiny_pipelines import tiny_audioldm_pipeline

    from swapforward import LongAudioPipeline
    from swapforward.runtime import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if world > 1:
        distributed.join_from_environment()
    pipe = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())
    arguments = dict(audio_length_in_s=seconds, window_seconds=0.256, num_inference_steps=steps, seed=0, loop=True,
                     progress_bar=False)
    pipe("rain", **{**arguments, "num_inference_steps": 1})  # warm up
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    result = pipe("rain", **arguments)
    wall = time.perf_counter() - start
    if rank == 0:
        Path(out).write_text(f"{wall} {result.layout.num_views}")
    if world > 1:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    options = parser.parse_args()
    print("Bytes each process receives per step (views of 8 x 256 x 16 fp32, batches of 8, loop, 2 processes):\n")
    print("\n".join(bytes_table(2)))
    times = {}
    for world in options.processes:
        out = Path(tempfile.mkdtemp()) / "wall.txt"
        mp.spawn(worker, args=(world, free_port(), options.seconds, options.steps, str(out)), nprocs=world,
                 join=True)
        wall, views = out.read_text().split()
        times[world] = float(wall) / options.steps
    print(f"\nTime per step, {options.seconds:g} s of tiny AudioLDM ({views} views), one thread a process, "
          f"{os.cpu_count()} CPUs:\n")
    print("| processes | s per step | speed-up |\n|---|---|---|")
    for world, per_step in times.items():
        print(f"| {world} | {per_step:.3f} | {times[options.processes[0]] / per_step:.2f}x |")


if __name__ == "__main__":
    main()
