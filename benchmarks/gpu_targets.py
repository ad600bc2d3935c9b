"""The GPU measurements behind the README's speed and memory table, in one process and one device call.

    python benchmarks/gpu_targets.py --out gpu-results          # full-size architectures, fp16, on the GPU
    python benchmarks/gpu_targets.py --tiny --out /tmp/dry      # the same sections on tiny pipelines (a CPU dry run)

Sections, in order of importance, each printed as Markdown and appended to OUT/report.md as soon as it is done;
a section that would not finish before `--deadline` seconds is skipped and says so:
1. panorama: SaFa 512 x 3200 (SD 2 base U-Net, 50 steps) against MD and diffusers' StableDiffusionPanoramaPipeline at
   its defaults and at the paper's views, from prompt to PNG file;
2. audio: SaFa (overlap 0.2) against MD at overlap 0.8 with the AudioLDM-S architecture at 200 steps, 24 s, 96 s and
   10 minutes (MD's 10 minutes at fewer steps, said in the table), from prompt to WAV file;
3. memory: 10 minutes of SaFa under 24 GB and 8 GB caps (peak memory, the views per call the free-memory sizing
   picked), and an out-of-memory halving provoked by a free-memory reading 1 TiB too high;
4. compile: SaFa with the denoiser compiled (CUDA graphs) against the eager runs of section 2: compile time, warm
   wall time, and the largest difference of the final latents.
Each section also times one denoiser call of one view with guidance, the figure that scales the results to
another card.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable

import torch

sys.path[:0] = [os.path.dirname(__file__), os.path.join(os.path.dirname(__file__), os.pardir, "tests")]
warnings.filterwarnings("ignore")

from compare import audio_run, diffusers_run, diffusers_views, measure, panorama_run, row, table  # noqa: E402

import swapforward.runtime.denoiser  # noqa: E402
from swapforward import LongAudioPipeline, PanoramaPipeline  # noqa: E402
from swapforward.runtime.memory import DeviceMemory  # noqa: E402


class Report:
    """Markdown sections printed and appended to OUT/report.md as they finish, with a deadline for the whole run."""

    def __init__(self, out: str, deadline: float):
        os.makedirs(out, exist_ok=True)
        self.path = os.path.join(out, "report.md")
        self.end = time.perf_counter() + deadline

    def left(self) -> float:
        return self.end - time.perf_counter()

    def write(self, text: str) -> None:
        print(text, flush=True)
        with open(self.path, "a") as f:
            f.write(text + "\n")


def call_ms(module: torch.nn.Module, make_input: Callable[[], dict], repeat: int = 20) -> float:
    """Milliseconds per denoiser call (CUDA events or wall time), after three warm-up calls."""
    kwargs = make_input()
    for _ in range(3):
        module(**kwargs)
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        module(**kwargs)
    sync()
    return (time.perf_counter() - start) / repeat * 1e3


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free_cuda() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def panorama(args, report: Report, device, dtype, state: dict) -> None:
    if args.tiny:
        from tiny_pipelines import tiny_sd_pipeline

        base, steps, kind = tiny_sd_pipeline().to(device), args.steps or 2, "tiny SD"
    else:
        from architectures import sd2_base_pipeline

        base, steps, kind = sd2_base_pipeline(dtype, device), 50, "SD 2 base U-Net (866 M), random weights"
    base.set_progress_bar_config(disable=True)
    pano = PanoramaPipeline.from_pipe(base)
    size = dict(height=512, width=3200)
    unet = base.unet
    lat = dict(sample=torch.randn(2, 4, 64, 80, device=device, dtype=dtype), timestep=torch.tensor(500, device=device),
               encoder_hidden_states=torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype))
    with torch.no_grad():
        one = call_ms(unet, lambda: lat)
    ours = {name: panorama_run(pano, device, method, overlap, view=640, steps=steps, **size)
            for name, method, overlap in [("SaFa (overlap 0.2)", "safa", 0.2), ("MD (0.8)", "md", 0.8)]}
    paper_all, md_views = diffusers_run(diffusers_views(640), base, None, steps=steps, **size)
    runs = [*ours.items(), (f"diffusers MD, paper views, {md_views} views/call", paper_all),
            ("diffusers MD, paper views, 1 view/call (its default batch)",
             diffusers_run(diffusers_views(640), base, 1, steps=steps, **size)[0]),
            ("diffusers MD, its defaults (64 px window, stride 8), 1 view/call",
             diffusers_run(diffusers_views(), base, 1, steps=steps, **size)[0])]
    panorama_run(pano, device, "safa", 0.2, view=640, steps=3, **size)()  # warm-up
    rows = []
    for name, run in runs:
        rows.append(row(device, name, run))
        print(f"  {name}: {rows[-1]['wall']:.2f} s", file=sys.stderr, flush=True)
    report.write(f"\n### Panorama 512 x 3200, {steps} DDIM steps, {kind}, {device_name(device)}, "
                 f"{str(dtype).split('.')[-1]}\n\nOne U-Net call, one 512 x 640 view with guidance (batch 2): "
                 f"{one:.1f} ms\n\n{table(rows, 'SaFa (overlap 0.2)')}")
    del pano, base, runs, ours
    free_cuda()


def audio_pipeline(args, device, dtype) -> tuple[LongAudioPipeline, float, float, str]:
    if args.tiny:
        from tiny_pipelines import tiny_audioldm_pipeline

        base, window = tiny_audioldm_pipeline().to(device), 0.064
        return LongAudioPipeline.from_pipe(base), window, window / 10.24, "tiny AudioLDM"
    from architectures import audioldm_s_pipeline

    base = audioldm_s_pipeline(dtype, device)
    base.set_progress_bar_config(disable=True)
    return LongAudioPipeline.from_pipe(base), 10.24, 1.0, "AudioLDM-S architecture (185 M U-Net), random weights"


def loaded_audio(args, device, dtype, state: dict) -> tuple[LongAudioPipeline, float, float, str]:
    """The audio pipeline, built once per process and shared by the sections."""
    if "long" not in state:
        state.update(zip(("long", "window", "scale", "kind"), audio_pipeline(args, device, dtype), strict=True))
    return state["long"], state["window"], state["scale"], state["kind"]


def audio(args, report: Report, device, dtype, state: dict) -> None:
    long, window, scale, kind = loaded_audio(args, device, dtype, state)
    steps = args.steps or 200
    unet = long.pipe.unet
    frames = 256 if not args.tiny else 16
    bins = long.adapter.latent_shape(1)[-1]
    lat = dict(sample=torch.randn(2, unet.config.in_channels, frames, bins, device=device, dtype=dtype),
               timestep=torch.tensor(500, device=device), encoder_hidden_states=None,
               class_labels=torch.randn(2, unet.config.projection_class_embeddings_input_dim, device=device,
                                        dtype=dtype))
    with torch.no_grad():
        one = call_ms(unet, lambda: lat)
    state["eager"] = {}

    def run(method: str, seconds: float, overlap: float, n_steps: int, keep: dict | None = None):
        return audio_run(long, device, method, seconds * scale, window=window, steps=n_steps, overlap=overlap,
                         keep=keep)

    run("safa", 24, 0.2, 3)()  # warm-up
    text = [f"\n### Audio, {steps} DDIM steps, {kind}, {device_name(device)}, {str(dtype).split('.')[-1]}\n",
            f"One U-Net call, one 10.24 s view with guidance (batch 2): {one:.1f} ms\n"]
    curve = []
    plan = [(24, steps), (96, steps), (600, steps)]
    for seconds, n_steps in plan:
        keep: dict = {}
        rows = [row(device, f"SaFa, {n_steps} steps", run("safa", seconds, 0.2, n_steps, keep))]
        state["eager"][seconds] = (rows[0]["wall"], keep["out"].latents.float().cpu())
        md_steps = n_steps if seconds < 600 else max(1, n_steps // 4)
        if md_steps != n_steps:
            rows.append(row(device, f"SaFa, {md_steps} steps", run("safa", seconds, 0.2, md_steps)))
        rows.append(row(device, f"MD (overlap 0.8), {md_steps} steps", run("md", seconds, 0.8, md_steps)))
        base = rows[-2]["name"]
        for r in rows:
            print(f"  {seconds} s {r['name']}: {r['wall']:.2f} s", file=sys.stderr, flush=True)
        curve.append((seconds, rows[0]))
        text.append(f"\n#### {seconds} s (ratios to the row '{base}')\n\n{table(rows, base)}")
        if report.left() < 60:
            text.append("\n(deadline: longer lengths skipped)")
            break
    text.append("\n#### SaFa, length against time\n\n| length (s) | views | views per call | wall (s) | "
                "real-time factor | peak memory (GiB) |\n| ---: | ---: | ---: | ---: | ---: | ---: |")
    for seconds, r in curve:
        peak = "-" if r["peak"] is None else f"{r['peak']:.2f}"
        text.append(f"| {seconds} | {r['views']} | {r['per_call']} | {r['wall']:.2f} | "
                    f"{r['wall'] / (seconds * scale):.4f} | {peak} |")
    report.write("\n".join(text))


def memory(args, report: Report, device, dtype, state: dict) -> None:
    """10 minutes under 24 GB and 8 GB caps, and an out-of-memory halving on the real card."""
    if device.type != "cuda":
        report.write("\n### Memory caps\n\nskipped: no CUDA device")
        return
    long, window, scale, _ = loaded_audio(args, device, dtype, state)
    steps = 20
    total = torch.cuda.get_device_properties(device).total_memory
    lines = [f"\n### 10 minutes under a memory cap ({device_name(device)})\n",
             "| cap (GiB) | views | views per call | model calls | wall (s) | peak allocated (GiB) | result |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for cap, method, overlap, n_steps in ((24, "safa", 0.2, steps), (8, "safa", 0.2, steps), (8, "md", 0.8, 3)):
        free_cuda()
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 2**30 / total), device)
        keep: dict = {}
        try:
            wall, peak, (views, _, calls, per_call) = measure(device, audio_run(
                long, device, method, 600 * scale, window=window, steps=n_steps, overlap=overlap, keep=keep))
            finite = bool(torch.isfinite(torch.as_tensor(keep["out"].audio)).all())
            lines.append(f"| {cap} | {views} | {per_call} | {calls} | {wall:.2f} | {peak:.2f} | {method} "
                         f"({n_steps} steps): {keep['out'].audio.shape[-1]} samples, finite: {finite} |")
        except Exception as error:  # noqa: BLE001 - the table records what failed
            lines.append(f"| {cap} | - | - | - | - | {torch.cuda.max_memory_allocated() / 2**30:.2f} | "
                         f"failed: {type(error).__name__}: {str(error)[:200]} |")
    report.write("\n".join(lines))

    # Halving: under the 8 GB cap, tell the sizing that 1 TiB is free, so its first batch cannot fit.
    sizes: list[int] = []
    adapter = long.adapter
    denoise = adapter.denoise

    def counted(x, t, cond, scale_):
        sizes.append(x.shape[0])
        return denoise(x, t, cond, scale_)

    class Lying:
        @staticmethod
        def of(dev):
            real = DeviceMemory.of(dev)
            return DeviceMemory(start=real.start, peak=real.peak, free=lambda: 2**40)

    adapter.denoise = counted
    swapforward.runtime.denoiser.DeviceMemory = Lying
    free_cuda()
    torch.cuda.set_per_process_memory_fraction(8 * 2**30 / total, device)
    try:
        wall, peak, (views, _, calls, per_call) = measure(
            device, audio_run(long, device, "md", 600 * scale, window=window, steps=3, overlap=0.8))
        outcome = (f"finished: {views} views, {calls} model calls, largest call attempted {per_call} views, "
                   f"peak {peak:.2f} GiB, {wall:.1f} s")
    except Exception as error:  # noqa: BLE001
        outcome = f"failed: {type(error).__name__}: {str(error)[:300]}"
    finally:
        adapter.denoise = denoise
        swapforward.runtime.denoiser.DeviceMemory = DeviceMemory
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    attempts = [s for i, s in enumerate(sizes) if i == 0 or s != sizes[i - 1]]
    report.write(f"\nOut-of-memory halving under the 8 GB cap (MD at overlap 0.8, 10 minutes, 3 steps, free memory "
                 f"reported as 1 TiB): batch sizes attempted in order {attempts[:12]}; {outcome}")
    free_cuda()


def compiled(args, report: Report, device, dtype, state: dict) -> None:
    """Eager against compiled at the same batches (all views in one call, so only compiling differs)."""
    long, window, scale, _ = loaded_audio(args, device, dtype, state)
    steps = args.steps or 200
    seconds = args.compile_seconds

    def run(n_steps: int, keep: dict, batch: int | None = 64):
        def go():
            out = long("rain on a tin roof", audio_length_in_s=seconds * scale, window_seconds=window,
                       num_inference_steps=n_steps, seed=0, progress_bar=False, view_batch_size=batch)
            keep["out"] = out
            return out.layout.num_views, out.info["view_evaluations"], out.model_calls, out.info["views_per_call"]
        return go

    eager: dict = {}
    eager_short: dict = {}
    eager_default, _, _ = measure(device, audio_run(long, device, "safa", seconds * scale, window=window,
                                                    steps=steps), repeat=2)
    eager_wall, _, _ = measure(device, run(steps, eager), repeat=2)
    measure(device, run(10, eager_short))
    long.compile()
    short: dict = {}
    first, _, _ = measure(device, run(10, short))
    warm: dict = {}
    wall, _, _ = measure(device, run(steps, warm), repeat=2)

    def diff(a: dict, b: dict) -> str:
        x, y = a["out"].latents.float(), b["out"].latents.float()
        return f"{(x - y).abs().max().item():.3g} (of {y.abs().max().item():.3g})"

    graphs = "CUDA graphs (mode reduce-overhead)" if device.type == "cuda" else "no CUDA graphs (CPU)"
    report.write(
        f"\n### SaFa {seconds} s with the denoiser compiled, {graphs}, all views in one call\n\n"
        f"| | wall (s) |\n| --- | ---: |\n| eager, default batching, {steps} steps | {eager_default:.2f} |\n"
        f"| eager, one call per step, {steps} steps | {eager_wall:.2f} |\n"
        f"| compiled, first run (10 steps, compiling its shapes) | {first:.2f} |\n"
        f"| compiled, warm, {steps} steps | {wall:.2f} |\n| eager / compiled | {eager_wall / wall:.2f} |\n\n"
        f"Largest difference of the final latents, compiled against eager: after 10 steps {diff(short, eager_short)}, "
        f"after {steps} steps {diff(warm, eager)}."
    )


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu-results")
    parser.add_argument("--deadline", type=float, default=520, help="seconds for the whole run")
    parser.add_argument("--tiny", action="store_true", help="tiny pipelines (a dry run of every section)")
    parser.add_argument("--steps", type=int, default=None, help="override the steps (dry runs)")
    parser.add_argument("--sections", default="panorama,audio,memory,compile")
    parser.add_argument("--compile-seconds", type=float, default=96, help="the length the compile section runs")
    args = parser.parse_args()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    report = Report(args.out, args.deadline)
    import diffusers

    report.write(f"# swapforward GPU measurements, {time.strftime('%Y-%m-%d')}\n\n{device_name(device)}, torch "
                 f"{torch.__version__}, diffusers {diffusers.__version__}")
    torch.manual_seed(0)
    state: dict = {}
    # Minimum seconds each section needs to be worth starting.
    needs = {"panorama": 150, "audio": 90, "memory": 30, "compile": 100}
    chosen = args.sections.split(",")
    for name in chosen:
        if report.left() < needs[name] and not args.tiny:
            report.write(f"\n### {name}\n\nskipped: {report.left():.0f} s left before the deadline")
            continue
        start = time.perf_counter()
        try:
            with torch.no_grad():
                section = {"panorama": panorama, "audio": audio, "memory": memory, "compile": compiled}[name]
                section(args, report, device, dtype, state)
        except Exception:  # noqa: BLE001 - one failed section must not lose the others
            report.write(f"\n### {name}\n\nfailed:\n```\n{traceback.format_exc()[-3000:]}\n```")
        print(f"[{name}: {time.perf_counter() - start:.0f} s; {report.left():.0f} s left]", file=sys.stderr,
              flush=True)


if __name__ == "__main__":
    main()
