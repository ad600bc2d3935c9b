"""Hours of audio: wall time per denoising step and peak memory against length, for AudioLDM's latent geometry.

    python benchmarks/long_runs.py                      # 10 min, 1 h, 8 h (SaFa, loop, overlap 0.2)
    python benchmarks/long_runs.py --minutes 10 60 --steps 3

Each length runs in a fresh process (so its peak resident set is its own) through the real joint loop (core.plan and
core.sampler with DDIM, the segments the pipelines use), over a canvas of AudioLDM's latent shape (8 channels, 16
mel bins, 40 ms frames, 256-frame views) with a tiny denoiser of that shape (a 1x1 convolution), so that the cost of
the method's own structures (layout, weights, masks, crops, merges, scheduler steps) is what is measured: the
real U-Net's time per view is the same at every length and multiplies the view count. Prints a Markdown table with
the ratios to the shortest length.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

FRAME_SECONDS, WINDOW, CHANNELS, BINS = 0.04, 256, 8, 16


def peak_rss_gib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20


def one(minutes: float, steps: int) -> dict:
    import torch
    from diffusers import DDIMScheduler

    from swapforward.core import Joint, ViewLayout, get_method, joint_denoise, plan_joint
    from swapforward.runtime.memory import HOST_VIEW_BATCH, segment_views

    torch.manual_seed(0)
    frames = round(minutes * 60 / FRAME_SECONDS)
    began = time.perf_counter()
    layout = ViewLayout.build(frames, WINDOW, overlap=0.2, loop=True)
    view_shape = (1, CHANNELS, WINDOW, BINS)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, steps_offset=1)
    scheduler.set_timesteps(steps)
    plan = plan_joint(get_method("safa"), layout, steps, view_shape=view_shape, axis=2, swap_axis=2, r_guide=0.5,
                      swap_interval=1, tail_shift=0, reference_phase="middle", envelope_share=0.25)
    set_up = time.perf_counter() - began
    model = torch.nn.Conv2d(CHANNELS, CHANNELS, 1)

    @torch.no_grad()
    def denoiser(x, t, ids):
        return model(x)

    canvas = torch.randn(1, CHANNELS, frames, BINS)
    reference = torch.randn(view_shape)
    segment = segment_views(math.prod(view_shape) * 4, 1, layout.num_views)
    began = time.perf_counter()
    with torch.no_grad():
        joint = Joint(layout, 2, plan.weights, plan.guide_steps, plan.reference_mask,
                      view_batch_size=HOST_VIEW_BATCH, segment=segment, swap=plan.guidance)
        out = joint_denoise(canvas, denoiser, scheduler, joint, reference=reference)
    per_step = (time.perf_counter() - began) / steps
    assert out.shape == canvas.shape and torch.isfinite(out).all()
    return {"minutes": minutes, "frames": frames, "views": layout.num_views, "segment": segment or layout.num_views,
            "set_up": set_up, "per_step": per_step, "peak": peak_rss_gib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 480])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.steps)))
        return
    rows = []
    for minutes in args.minutes:
        child = subprocess.run([sys.executable, __file__, "--one", str(minutes), "--steps", str(args.steps)],
                               capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if child.returncode:
            sys.exit(child.stderr)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"SaFa, loop, overlap 0.2, AudioLDM geometry, tiny 1x1 denoiser, {args.steps} DDIM steps, "
          f"{os.cpu_count()} CPUs, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}\n")
    print("| length | frames | views | views per segment | set-up s | s per step | x length | x time | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['frames']:,} | {r['views']:,} | {r['segment']} | {r['set_up']:.2f} | "
              f"{r['per_step']:.2f} | {r['frames'] / base['frames']:.1f} | {r['per_step'] / base['per_step']:.1f} | "
              f"{r['peak']:.2f} |")


if __name__ == "__main__":
    main()
