"""Side-by-side speed of the methods, in one run, with ratios to SaFa. Prints a Markdown table.

    python benchmarks/compare.py panorama            # tiny SD on CPU: the same ratios, in seconds
    python benchmarks/compare.py audio
    python benchmarks/compare.py panorama --full     # SD 2 base architecture, random weights (GPU)
    python benchmarks/compare.py audio --full --seconds 10 24 96 600

Panoramas compare SaFa, SaFa*, MD and MD* through swapforward (the paper's overlaps: 0.2 for SaFa, 0.8 for MD) with
diffusers' own MultiDiffusion pipeline on the same U-Net, at its defaults and at the paper's MD settings. Audio
compares the methods at each length; its rows for SaFa also give the curve of length against time and peak memory.
With --full, the full-size architectures of benchmarks/architectures.py are used; otherwise the tiny pipelines of
tests/tiny_pipelines.py, with lengths scaled so that each run has as many views as the full-size one would.
Peak memory is what PyTorch allocated on the GPU, or on the CPU the process's peak resident set (weights, Python
and libraries included).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch

sys.path[:0] = [os.path.dirname(__file__), os.path.join(os.path.dirname(__file__), os.pardir, "tests")]
warnings.filterwarnings("ignore")

from swapforward import LongAudioPipeline, PanoramaPipeline  # noqa: E402
from swapforward.runtime.devices import resolve_device  # noqa: E402

PROMPT = "a photo of the dolomites"


def measure(device: torch.device, run: Callable[[], tuple], repeat: int = 1) -> tuple:
    """(wall seconds, peak memory GiB or None, (views, view evaluations, model calls, most views per call)) of a run:
    the fastest of `repeat` runs, which keeps the ratios meaningful on a shared machine."""
    walls = []
    for _ in range(max(1, repeat)):
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            host_peak(reset=True)
        start = time.perf_counter()
        counts = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else host_peak()
    return min(walls), peak, counts


def row(device: torch.device, name: str, run: Callable[[], tuple], repeat: int = 1) -> dict:
    """One table row: `run` measured by `measure`."""
    wall, peak, (views, evaluations, calls, per_call) = measure(device, run, repeat)
    return dict(name=name, wall=wall, peak=peak, views=views, evaluations=evaluations, calls=calls, per_call=per_call)


def host_peak(reset: bool = False) -> float | None:
    """This process's peak resident memory in GiB since the last reset (Linux's VmHWM), or None elsewhere."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak resident set size
            return None
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 2**20
    except (OSError, AttributeError):
        return None


def table(rows: list[dict], reference: str) -> str:
    base = next(r for r in rows if r["name"] == reference)
    lines = ["| run | views | view evaluations | model calls | views per call | wall (s) | peak memory (GiB) | "
             "wall / SaFa | evaluations / SaFa |", "| --- |" + " ---: |" * 8]
    for r in rows:
        peak = "-" if r["peak"] is None else f"{r['peak']:.2f}"
        lines.append(f"| {r['name']} | {r['views']} | {r['evaluations']} | {r['calls']} | {r['per_call']} | "
                     f"{r['wall']:.2f} | {peak} | "
                     f"{r['wall'] / base['wall']:.2f} | {r['evaluations'] / base['evaluations']:.2f} |")
    return "\n".join(lines)


def timing_lpips(method: str, device: torch.device, built: dict = {}) -> torch.nn.Module | None:  # noqa: B006
    """For SyncDiffusion, VGG LPIPS with random weights (the real one's cost, no download), built once, untimed."""
    if method != "syncd":
        return None
    if "lpips" not in built:
        import lpips

        built["lpips"] = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval().to(device)
    return built["lpips"]


def counting(unet: torch.nn.Module) -> list[int]:
    """Count the forward calls of a diffusers pipeline's U-Net (for diffusers' own MultiDiffusion)."""
    calls = [0]
    unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def panorama_run(pano: PanoramaPipeline, device: torch.device, method: str, overlap: float, *, height: int,
                 width: int, view: int, steps: int) -> Callable[[], tuple]:
    """A swapforward panorama from prompt to PNG file, as a timed run."""
    def run():
        out = pano(PROMPT, height=height, width=width, view_width=view, method=method, overlap=overlap,
                   num_inference_steps=steps, seed=0, progress_bar=False, lpips=timing_lpips(method, device))
        with tempfile.TemporaryDirectory() as tmp:
            out.save(os.path.join(tmp, "p.png"))
        return out.layout.num_views, out.info["view_evaluations"], out.model_calls, out.info["views_per_call"]
    return run


def diffusers_views(view: int | None = None):
    """diffusers' MultiDiffusion pipeline class: its defaults, or (with `view` pixels) the paper's MD views, windows
    of `view` pixels with a 128-pixel stride."""
    from diffusers import StableDiffusionPanoramaPipeline

    if view is None:
        return StableDiffusionPanoramaPipeline

    class PaperViews(StableDiffusionPanoramaPipeline):
        def get_views(self, panorama_height, panorama_width, window_size=64, stride=8, circular_padding=False):
            return super().get_views(panorama_height, panorama_width, view // 8, 16, circular_padding)

    return PaperViews


def diffusers_run(cls, base, view_batch_size: int | None, *, height: int, width: int,
                  steps: int) -> tuple[Callable[[], tuple], int]:
    """diffusers' own MultiDiffusion pipeline from prompt to PNG file (`view_batch_size` None: all views in one
    call), as a timed run; and its number of views."""
    pipe = cls(**base.components)
    pipe.set_progress_bar_config(disable=True)
    views = len(pipe.get_views(height, width))
    batch = view_batch_size or views
    calls = counting(pipe.unet)

    def run():
        calls[0] = 0
        image = pipe(PROMPT, height=height, width=width, num_inference_steps=steps, view_batch_size=batch,
                     generator=torch.Generator().manual_seed(0)).images[0]
        with tempfile.TemporaryDirectory() as tmp:
            image.save(os.path.join(tmp, "p.png"))
        return views, views * steps, calls[0], batch
    return run, views


def audio_run(long: LongAudioPipeline, device: torch.device, method: str, seconds: float, *, window: float,
              steps: int, overlap: float = 0.2, keep: dict | None = None) -> Callable[[], tuple]:
    """swapforward audio from prompt to WAV file, as a timed run; `keep` receives the last output."""
    def run():
        out = long("rain on a tin roof", audio_length_in_s=seconds, window_seconds=window, method=method,
                   overlap=overlap, num_inference_steps=steps, seed=0, progress_bar=False,
                   lpips=timing_lpips(method, device))
        with tempfile.TemporaryDirectory() as tmp:
            out.save(os.path.join(tmp, "a.wav"))
        if keep is not None:
            keep["out"] = out
        return out.layout.num_views, out.info["view_evaluations"], out.model_calls, out.info["views_per_call"]
    return run


def bench_panorama(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    if args.full:
        from architectures import sd2_base_pipeline

        base = sd2_base_pipeline(dtype, device)
    else:
        from tiny_pipelines import tiny_sd_pipeline

        base = tiny_sd_pipeline().to(device)
    base.set_progress_bar_config(disable=True)
    pano = PanoramaPipeline.from_pipe(base)
    size = dict(height=512, width=args.width)
    steps = args.steps or (50 if args.full else 10)

    def ours(method: str, overlap: float) -> Callable[[], tuple]:
        return panorama_run(pano, device, method, overlap, view=640, steps=steps, **size)

    paper, md_views = diffusers_run(diffusers_views(640), base, 1, steps=steps, **size)
    runs = [("SaFa (overlap 0.2)", ours("safa", 0.2)), ("SaFa* (0.2)", ours("safa-selfloop", 0.2)),
            ("MD (0.8)", ours("md", 0.8)), ("MD* (0.8)", ours("md-tri", 0.8)),
            ("diffusers MD, paper views, 1 view/call", paper),
            (f"diffusers MD, paper views, {md_views} views/call",
             diffusers_run(diffusers_views(640), base, None, steps=steps, **size)[0]),
            ("diffusers MD, its defaults (64 px stride 8), 1 view/call",
             diffusers_run(diffusers_views(), base, 1, steps=steps, **size)[0])]
    if args.baselines:
        runs += [("MAD (0.8)", ours("mad", 0.8)), ("SyncDiffusion (0.8)", ours("syncd", 0.8))]
        timing_lpips("syncd", device)
    ours("safa", 0.2)()  # warm-up
    rows = []
    for name, run in runs:
        rows.append(row(device, name, run, args.repeat))
        print(f"  {name}: {rows[-1]['wall']:.2f} s", file=sys.stderr)
    if args.compile:
        pano.compile()
        first, _, _ = measure(device, ours("safa", 0.2))
        rows.append(row(device, f"SaFa (0.2), compiled (first run {first:.1f} s)", ours("safa", 0.2), args.repeat))
    kind = "SD 2 base U-Net (866 M), random weights" if args.full else "tiny SD pipeline"
    print(f"\n### Panorama 512 x {args.width}, {steps} DDIM steps, {kind}, {device} {str(dtype).split('.')[-1]}\n")
    print(table(rows, "SaFa (overlap 0.2)"))


def bench_audio(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    if args.full:
        from architectures import audioldm_s_pipeline

        base, window, scale = audioldm_s_pipeline(dtype, device), 10.24, 1.0
    else:
        from tiny_pipelines import tiny_audioldm_pipeline

        base, window = tiny_audioldm_pipeline().to(device), 0.064
        scale = window / 10.24  # the same number of views as the full-size model at each length
    base.set_progress_bar_config(disable=True)
    long = LongAudioPipeline.from_pipe(base)
    steps = args.steps or (200 if args.full else 50)

    def ours(method: str, seconds: float, overlap: float = 0.2) -> Callable[[], tuple]:
        return audio_run(long, device, method, seconds * scale, window=window, steps=steps, overlap=overlap)

    ours("safa", 24)()  # warm-up
    kind = "AudioLDM-S architecture (185 M U-Net), random weights" if args.full else "tiny AudioLDM pipeline"
    curve = []
    for seconds in args.seconds:
        rows = []
        runs = [("SaFa", ours("safa", seconds))]
        if not args.safa_only:
            runs += [("SaFa*", ours("safa-selfloop", seconds)), ("MD", ours("md", seconds)),
                     ("MD*", ours("md-tri", seconds)), ("MD (overlap 0.8)", ours("md", seconds, 0.8))]
        if args.baselines:
            runs += [("MAD", ours("mad", seconds)), ("SyncDiffusion", ours("syncd", seconds))]
            timing_lpips("syncd", device)
        for name, run in runs:
            rows.append(row(device, name, run, args.repeat))
            print(f"  {seconds} s {name}: {rows[-1]['wall']:.2f} s", file=sys.stderr)
        safa = rows[0]
        curve.append((seconds, safa["wall"], safa["peak"], safa["views"], safa["per_call"]))
        label = f"{seconds} s" if args.full else f"{seconds * scale:.3f} s (as {seconds} s of 10.24 s windows)"
        print(f"\n### Audio, {label}, {steps} DDIM steps, overlap 0.2, {kind}, {device} {str(dtype).split('.')[-1]}\n")
        print(table(rows, "SaFa"))
    if args.compile:
        long.compile()
        graphs = "with CUDA graphs" if device.type == "cuda" else "without CUDA graphs"
        print(f"\n### SaFa with the denoiser compiled ({graphs})\n")
        print("| length (s, as 10.24 s windows) | first run, compiling (s) | wall (s) | eager wall (s) | "
              "eager / compiled |\n| ---: | ---: | ---: | ---: | ---: |")
        for seconds, eager, *_ in curve:
            first, _, _ = measure(device, ours("safa", seconds))
            wall, _, _ = measure(device, ours("safa", seconds), args.repeat)
            print(f"| {seconds} | {first:.2f} | {wall:.2f} | {eager:.2f} | {eager / wall:.2f} |")
    print("\n### SaFa: length against time and memory\n")
    print("| length (s, as 10.24 s windows) | audio (s) | views | views per call | wall (s) | real-time factor | "
          "peak memory (GiB) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for seconds, wall, peak, views, largest in curve:
        peak_text = "-" if peak is None else f"{peak:.2f}"
        factor = wall / (seconds * scale)
        print(f"| {seconds} | {seconds * scale:.3f} | {views} | {largest} | {wall:.2f} | {factor:.3f} | {peak_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["panorama", "audio"])
    parser.add_argument("--full", action="store_true", help="full-size architectures (use a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="default: the paper's with --full, fewer on CPU")
    parser.add_argument("--width", type=int, default=3200)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.24, 24, 96, 600])
    parser.add_argument("--baselines", action="store_true", help="also time MAD and SyncDiffusion")
    parser.add_argument("--compile", action="store_true", help="also time SaFa with the denoiser compiled")
    parser.add_argument("--safa-only", action="store_true", help="audio: time SaFa alone (the length curve)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is reported")
    parser.add_argument("--memory-gib", type=float, default=None,
                        help="cap this process's GPU memory, e.g. 24 to stand for a 24 GB card on a larger one")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if args.memory_gib and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_gib * 2**30 / total), device)
        print(f"GPU memory capped at {args.memory_gib} GiB", file=sys.stderr)
    torch.manual_seed(0)
    with torch.no_grad():  # not inference_mode: SyncDiffusion takes gradients
        (bench_panorama if args.kind == "panorama" else bench_audio)(args, device, dtype)


if __name__ == "__main__":
    main()
