"""The `swapforward` command line: `swapforward audio PROMPT --seconds 60 --out rain.wav`."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from .core.methods import METHODS, get_method
from .errors import SwapForwardError

DEFAULT_AUDIO_MODEL = "cvssp/audioldm-s-full-v2"
DEFAULT_IMAGE_MODEL = "stabilityai/stable-diffusion-2-base"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Arbitrarily long, loopable audio and panoramas from pretrained latent diffusion models (SaFa and baselines).",
)


def quiet_libraries() -> None:
    """Keep the libraries' warnings and download chatter out of the terminal; our own messages say what matters."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def fail(message: str) -> None:
    """A user mistake: one sentence on stderr, exit status 2, no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line and exit status 2, and an interrupt into 130; nothing half-written."""
    try:
        yield
    except SwapForwardError as error:
        fail(str(error))
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing was written.", err=True)
        raise typer.Exit(code=130) from None


def load(pipeline_cls: Any, model: str, device: str, dtype: str, scheduler: str, compile: bool = False) -> Any:
    """The pipeline, with device, dtype and scheduler names checked (before any download) by `from_pretrained`."""
    return pipeline_cls.from_pretrained(model, device=device, torch_dtype=dtype, scheduler=scheduler, compile=compile)


def views_summary(result: Any) -> str:
    """'6 views (+1 reference for 15 of 50 steps), looping; 115 model calls'."""
    info = result.info
    guided = f" (+1 reference for {info['guide_steps']} of {info['steps']} steps)" if info["guide_steps"] else ""
    looping = ", looping" if result.layout.loop else ""
    views = f"{result.layout.num_views} view{'s' if result.layout.num_views > 1 else ''}"
    return f"{views}{guided}{looping}; {result.model_calls} model calls"


# Options both commands share.
METHOD = typer.Option("safa", "--method", "-m", help=f"One of: {', '.join(METHODS)}.")
NEGATIVE = typer.Option(None, "--negative-prompt", help="What to steer away from.")
R_GUIDE = typer.Option(0.3, "--r-guide", help="Fraction of steps with reference guidance (SaFa), in [0, 1].")
SWAP_INTERVAL = typer.Option(1, "--swap-interval", help="Swap interval w of Eq. 9, in latent frames/columns.")
TAIL_SHIFT = typer.Option(0, "--tail-shift", help="SaFa+: each overlap's last N latent frames from the right view.")
VIEW_BATCH = typer.Option(
    None, "--view-batch-size", help="Views per model call (default: as many as fit in GPU memory; 8 on CPU)."
)
SEED = typer.Option(None, "--seed", help="Random seed for reproducible output.")
SEED_ZERO = typer.Option(0, "--seed", help="Random seed (the same for every method).")
SCHEDULER = typer.Option(
    "paper",
    "--scheduler",
    help="paper (DDIM; SD 3 keeps flow matching), default (the model's), ddim, dpm, euler, unipc.",
)
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
MAD_RATIO = typer.Option(0.3, "--mad-ratio", help="MAD: fraction of steps with attention over the whole canvas.")
SYNC_WEIGHT = typer.Option(20.0, "--sync-weight", help="SyncDiffusion: gradient step weight.")
SYNC_DECAY = typer.Option(0.95, "--sync-decay", help="SyncDiffusion: weight decay per step.")
SYNC_RATIO = typer.Option(1.0, "--sync-ratio", help="SyncDiffusion: fraction of steps with the gradient step.")
DTYPE = typer.Option("auto", "--dtype", help="auto (fp16 on CUDA, else fp32), float32, float16, bfloat16.")
COMPILE = typer.Option(
    False, "--compile/--no-compile",
    help="torch.compile the denoiser (CUDA graphs on a GPU): pays for long runs and batches, costs a compile first.",
)


@app.command()
def audio(
    prompt: str = typer.Argument(..., help="What the audio should sound like."),
    out: Path = typer.Option(Path("swapforward.wav"), "--out", "-o", help="Output file: .wav or .flac."),
    seconds: float = typer.Option(24.0, "--seconds", "-s", help="Length of the output in seconds."),
    method: str = METHOD,
    model: str = typer.Option(DEFAULT_AUDIO_MODEL, "--model", help="Hugging Face hub id or local folder."),
    window_seconds: Optional[float] = typer.Option(
        None, "--window-seconds", help="View length; default: the model's training length (10.24 s)."
    ),
    steps: int = typer.Option(200, "--steps", help="Denoising steps."),
    guidance: float = typer.Option(3.5, "--guidance", help="Classifier-free guidance scale."),
    negative_prompt: Optional[str] = NEGATIVE,
    overlap: float = typer.Option(0.2, "--overlap", help="Overlap rate of adjacent views, in (0, 1)."),
    r_guide: float = R_GUIDE,
    swap_interval: int = SWAP_INTERVAL,
    tail_shift: int = TAIL_SHIFT,
    loop: bool = typer.Option(False, "--loop/--no-loop", help="Make the output a seamless loop."),
    view_batch_size: Optional[int] = VIEW_BATCH,
    seed: Optional[int] = SEED,
    spectrogram: Optional[Path] = typer.Option(
        None, "--spectrogram", help="Also write a PNG of the mel spectrogram with the views marked."
    ),
    mad_ratio: float = MAD_RATIO,
    sync_weight: float = SYNC_WEIGHT,
    sync_decay: float = SYNC_DECAY,
    sync_ratio: float = SYNC_RATIO,
    scheduler: str = SCHEDULER,
    device: str = DEVICE,
    dtype: str = DTYPE,
    compile: bool = COMPILE,
) -> None:
    """Generate long audio from a text prompt and write it as WAV or FLAC."""
    from .audio import LongAudioPipeline, check_audio_request
    from .files import AUDIO_FORMATS, IMAGE_FORMATS, check_output_path

    quiet_libraries()
    baseline = dict(mad_ratio=mad_ratio, sync_weight=sync_weight, sync_decay=sync_decay, sync_ratio=sync_ratio)
    with user_errors():
        check_audio_request(
            prompt, seconds, window_seconds, method, overlap, r_guide, swap_interval, tail_shift, steps, guidance,
            view_batch_size, seed, **baseline,
        )
        check_output_path(out, AUDIO_FORMATS)
        if spectrogram is not None:
            check_output_path(spectrogram, IMAGE_FORMATS)
        pipe = load(LongAudioPipeline, model, device, dtype, scheduler, compile)
        start = time.perf_counter()
        result = pipe(
            prompt,
            audio_length_in_s=seconds,
            window_seconds=window_seconds,
            method=method,
            loop=loop,
            num_inference_steps=steps,
            guidance_scale=guidance,
            negative_prompt=negative_prompt,
            overlap=overlap,
            r_guide=r_guide,
            swap_interval=swap_interval,
            tail_shift=tail_shift,
            view_batch_size=view_batch_size,
            seed=seed,
            **baseline,
        )
        result.save(out)
        if spectrogram is not None:
            result.save_spectrogram(spectrogram, title=f"{result.method}: {prompt}")
        wall = time.perf_counter() - start
    typer.echo(
        f"{out}: {result.seconds:.2f} s of {result.method} audio at {result.sample_rate} Hz from "
        f"{views_summary(result)}, {wall:.1f} s wall, real-time factor {wall / result.seconds:.2f}"
    )
    if abs(result.seconds - seconds) > 0.5 / result.sample_rate:
        typer.echo(f"note: the loop's length was rounded to {result.seconds:.3f} s (whole latent frames).")


@app.command()
def panorama(
    prompt: str = typer.Argument(..., help="What the panorama should show."),
    out: Path = typer.Option(Path("panorama.png"), "--out", "-o", help="Output file: .png, .jpg or .webp."),
    width: int = typer.Option(3200, "--width", "-W", help="Panorama width in pixels."),
    height: Optional[int] = typer.Option(None, "--height", "-H", help="Height in pixels; default: the model's."),
    view_width: Optional[int] = typer.Option(
        None, "--view-width", help="View width in pixels; default: the model's native size (the paper: 640)."
    ),
    method: str = METHOD,
    model: str = typer.Option(DEFAULT_IMAGE_MODEL, "--model", help="Hugging Face hub id or local folder."),
    steps: int = typer.Option(50, "--steps", help="Denoising steps."),
    guidance: float = typer.Option(7.5, "--guidance", help="Classifier-free guidance scale."),
    negative_prompt: Optional[str] = NEGATIVE,
    overlap: Optional[float] = typer.Option(
        None, "--overlap", help="Overlap rate of adjacent views; default 0.2 for SaFa, 0.8 for MD (the paper's)."
    ),
    r_guide: float = R_GUIDE,
    swap_interval: int = SWAP_INTERVAL,
    tail_shift: int = TAIL_SHIFT,
    loop: bool = typer.Option(False, "--loop/--no-loop", help="360 degrees: the right edge continues into the left."),
    view_batch_size: Optional[int] = VIEW_BATCH,
    seed: Optional[int] = SEED,
    mad_ratio: float = MAD_RATIO,
    sync_weight: float = SYNC_WEIGHT,
    sync_decay: float = SYNC_DECAY,
    sync_ratio: float = SYNC_RATIO,
    scheduler: str = SCHEDULER,
    device: str = DEVICE,
    dtype: str = DTYPE,
    compile: bool = COMPILE,
) -> None:
    """Generate a wide (or 360-degree) panorama from a text prompt and write it as PNG, JPEG or WebP."""
    from .files import check_output_path
    from .panorama import PANORAMA_FORMATS, PanoramaPipeline, check_panorama_request

    quiet_libraries()
    baseline = dict(mad_ratio=mad_ratio, sync_weight=sync_weight, sync_decay=sync_decay, sync_ratio=sync_ratio)
    with user_errors():
        check_panorama_request(
            prompt, height, width, view_width, method, overlap, r_guide, swap_interval, tail_shift, steps, guidance,
            view_batch_size, seed, **baseline,
        )
        check_output_path(out, PANORAMA_FORMATS)
        pipe = load(PanoramaPipeline, model, device, dtype, scheduler, compile)
        start = time.perf_counter()
        result = pipe(
            prompt,
            height=height,
            width=width,
            view_width=view_width,
            method=method,
            loop=loop,
            overlap=overlap,
            r_guide=r_guide,
            swap_interval=swap_interval,
            tail_shift=tail_shift,
            num_inference_steps=steps,
            guidance_scale=guidance,
            negative_prompt=negative_prompt,
            view_batch_size=view_batch_size,
            seed=seed,
            **baseline,
        )
        result.save(out)
        wall = time.perf_counter() - start
    w, h = result.image.size
    typer.echo(f"{out}: {w} x {h} {result.method} panorama from {views_summary(result)}, {wall:.1f} s wall")


@app.command()
def batch(
    jobs: Path = typer.Argument(..., help="Jobs file: JSON Lines (.jsonl) or CSV (.csv), one job per line."),
    dtype: str = DTYPE,
    compile: bool = COMPILE,
) -> None:
    """Run many jobs, skipping those whose output exists; under `accelerate launch` each process takes its share.

    Fields: prompt and out (required), kind (audio or panorama), model, seconds, window_seconds, width, height,
    view_width, method, seed, loop, steps, guidance, negative_prompt, overlap, r_guide, swap_interval, tail_shift,
    view_batch_size, mad_ratio.
    """
    from tqdm.auto import tqdm

    from .batch import load_jobs, process_slot, run_jobs

    quiet_libraries()
    with user_errors():
        all_jobs, invalid = load_jobs(jobs)
    rank, world, device = process_slot()
    tag = f"[{rank + 1}/{world}] " if world > 1 else ""
    for index, reason in invalid:
        if index % world == rank:
            typer.echo(f"{tag}job {index} FAILED: {reason}", err=True)
    mine = [job for job in all_jobs if job.index % world == rank]
    bar = tqdm(total=len(mine), desc=f"{tag}jobs", unit="job")

    def on_job(job: Any, status: str, detail: str) -> None:
        bar.update(1)
        line = f"{tag}job {job.index} {status if status != 'failed' else 'FAILED'}: {job.out} ({detail})"
        (tqdm.write(line, file=sys.stderr) if status == "failed" else tqdm.write(line))

    with user_errors(), bar:
        report = run_jobs(all_jobs, rank, world, device=device, dtype=dtype, compile=compile, on_job=on_job)
    mine_invalid = [i for i, _ in invalid if i % world == rank]
    counts = [len(report.done), len(report.skipped), len(report.failed) + len(mine_invalid)]
    typer.echo(f"{tag}{counts[0]} done, {counts[1]} skipped, {counts[2]} failed")
    if world > 1:  # wait for every process, so that no failure stops another's jobs, then agree on the total
        counts = gather_counts(counts)
        if rank == 0:
            typer.echo(f"all processes: {counts[0]} done, {counts[1]} skipped, {counts[2]} failed")
    if counts[2]:
        raise typer.Exit(code=1)


def gather_counts(counts: list[int]) -> list[int]:
    """Sum per-process counts over all processes (gloo, so it also works on CPU), which waits for all of them."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    total = torch.tensor(counts)
    dist.all_reduce(total)
    dist.destroy_process_group()
    return total.tolist()


@app.command()
def analyze(
    prompt: str = typer.Argument(..., help="What to generate while recording the latents."),
    out_dir: Path = typer.Option(Path("analysis"), "--out-dir", "-o", help="Folder for analysis.png, .csv, .json."),
    kind: str = typer.Option("audio", "--kind", help="audio or panorama."),
    model: Optional[str] = typer.Option(None, "--model", help="Hub id or local folder (default per kind)."),
    methods_: list[str] = typer.Option(["safa", "safa-selfloop", "md", "md-tri"], "--method", "-m",
                                       help="Methods to compare (repeat the option)."),
    seconds: float = typer.Option(24.0, "--seconds", help="Audio length."),
    window_seconds: Optional[float] = typer.Option(None, "--window-seconds", help="Audio view length."),
    width: int = typer.Option(3200, "--width", help="Panorama width."),
    height: Optional[int] = typer.Option(None, "--height", help="Panorama height."),
    view_width: Optional[int] = typer.Option(None, "--view-width", help="Panorama view width."),
    overlap: float = typer.Option(0.2, "--overlap", help="The same overlap for every method, so regions match."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (default: 200 audio, 50 panorama)."),
    every: int = typer.Option(10, "--every", help="Record the latent every this many steps."),
    seed: int = SEED_ZERO,
    scheduler: str = SCHEDULER,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """The paper's Fig. 2(b): the overlaps' Fourier spectrum against the non-overlap reference, per method."""
    from .analysis import analyze as run_analysis
    from .audio import LongAudioPipeline
    from .panorama import PanoramaPipeline

    quiet_libraries()
    with user_errors():
        if kind not in ("audio", "panorama"):
            raise SwapForwardError(f"kind must be audio or panorama, got {kind!r}.")
        if every < 1:
            raise SwapForwardError(f"every must be a whole number >= 1, got {every}.")
        if out_dir.exists() and not out_dir.is_dir():
            raise SwapForwardError(f"Cannot write into {str(out_dir)!r}: it is a file.")
        for method in methods_:
            get_method(method)
        if kind == "audio":
            pipe = load(LongAudioPipeline, model or DEFAULT_AUDIO_MODEL, device, dtype, scheduler)
            call = dict(audio_length_in_s=seconds, window_seconds=window_seconds, num_inference_steps=steps or 200)
        else:
            pipe = load(PanoramaPipeline, model or DEFAULT_IMAGE_MODEL, device, dtype, scheduler)
            call = dict(width=width, height=height, view_width=view_width, num_inference_steps=steps or 50)
        result = run_analysis(pipe, prompt, list(methods_), every=every, overlap=overlap, seed=seed, **call)
        paths = result.save(out_dir, title=f"{kind}: {prompt}")
    last = result.steps[-1]
    for method, by_step in result.curves.items():
        gap = by_step[last]["overlap"][-1] - by_step[last]["reference"][-1]
        typer.echo(f"{method:15s} overlap - reference at pi after step {last}: {gap:+.3f}")
    typer.echo("wrote " + ", ".join(paths))


@app.command()
def weights(
    only: list[str] = typer.Option([], "--only", help="Fetch only these checkpoints (repeat the option)."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="Cache folder (default: $SWAPFORWARD_WEIGHTS or "
                                                             "~/.cache/swapforward/weights)."),
) -> None:
    """Download every checkpoint the evaluation metrics need into one cache folder."""
    from .evaluation.weights import CHECKPOINTS, fetch

    with user_errors():
        for name in only:
            if name not in CHECKPOINTS:
                raise SwapForwardError(f"Unknown checkpoint {name!r}; known: {', '.join(CHECKPOINTS)}.")
        try:
            fetch(list(only) or None, folder, log=typer.echo)
        except OSError as error:
            raise SwapForwardError(f"Could not download the weights ({error}); check the network.") from None


@app.command(name="eval")
def evaluate(
    generated: Path = typer.Argument(..., help="Folder of generated long outputs (audio files or panoramas)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Folder of reference clips or images."),
    kind: str = typer.Option("audio", "--kind", help="audio or panorama."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="The prompt, for the CLAP / CLIP score."),
    out: Path = typer.Option(Path("metrics.json"), "--out", "-o", help="JSON report."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Also a Markdown table."),
    window_seconds: float = typer.Option(10.0, "--window-seconds", help="Audio crop length."),
    overlap: float = typer.Option(0.2, "--overlap", help="Overlap of successive audio crops (Table 2)."),
    step_seconds: Optional[float] = typer.Option(None, "--step-seconds", help="Fixed crop step instead (Table 5: 8)."),
    crop: Optional[int] = typer.Option(None, "--crop", help="Panorama crop size (default: the height)."),
    reference_model: Optional[str] = typer.Option(
        None, "--reference-model", help="Without --reference: generate the reference set with this base model."
    ),
    reference_samples: int = typer.Option(500, "--reference-samples", help="Size of a generated reference set."),
    device: str = DEVICE,
) -> None:
    """Compute the paper's metrics for a folder of outputs and write a JSON (and Markdown) report.

    The reference set is a folder (--reference) or the base model's own one-view outputs for the same prompt
    (--reference-model, written to reference/ beside the report and reused on later runs).
    """
    from .evaluation import evaluate as ev
    from .evaluation.features import default_audio_extractors, default_image_extractors
    from .files import check_output_path
    from .runtime import resolve_device

    quiet_libraries()
    with user_errors():
        if kind not in ("audio", "panorama"):
            raise SwapForwardError(f"kind must be audio or panorama, got {kind!r}.")
        check_output_path(out, {".json": "JSON"})
        if markdown_out is not None:
            check_output_path(markdown_out, {".md": "Markdown"})
        torch_device = str(resolve_device(device))
        suffixes = ev.AUDIO_SUFFIXES if kind == "audio" else ev.IMAGE_SUFFIXES
        files = ev.list_files(generated, suffixes)
        references = ev.list_files(reference, suffixes) if reference is not None else None
        if references is None and reference_model is not None:
            if not prompt:
                raise SwapForwardError("Generating a reference set needs the --prompt it was made for.")
            if reference_samples < 2:
                raise SwapForwardError(f"reference-samples must be at least 2, got {reference_samples}.")
            from .audio import LongAudioPipeline
            from .panorama import PanoramaPipeline

            base = load(LongAudioPipeline if kind == "audio" else PanoramaPipeline, reference_model, device, "auto",
                        "paper")
            references = ev.generate_reference(
                base, kind, prompt, out.parent / "reference", reference_samples,
                size=window_seconds if kind == "audio" else crop,
                progress=lambda done, total: typer.echo(f"reference {done}/{total}", err=True),
            )
        if kind == "audio":
            result = ev.evaluate_audio(files, references, default_audio_extractors(torch_device), prompt,
                                       window_seconds, overlap, step_seconds)
        else:
            result = ev.evaluate_panoramas(files, references, default_image_extractors(torch_device), prompt, crop)
        results = {generated.name: result}
        ev.write_reports(results, out, markdown_out)
    typer.echo(ev.markdown(results), nl=False)


@app.command(name="app")
def web_app(
    audio_model: str = typer.Option(DEFAULT_AUDIO_MODEL, "--audio-model", help="Default audio model (hub id, folder)."),
    image_model: str = typer.Option(DEFAULT_IMAGE_MODEL, "--image-model", help="Default image model (hub id, folder)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every interface."),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
    share: bool = typer.Option(False, "--share/--no-share", help="Also open a temporary public gradio.live link."),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", help="Folder that keeps every result (default: a new temporary folder)."
    ),
    scheduler: str = SCHEDULER,
    device: str = DEVICE,
    dtype: str = DTYPE,
    compile: bool = COMPILE,
) -> None:
    """Serve the web app: long audio and panoramas from a browser (needs `pip install 'swapforward[app]'`)."""
    from .app import Studio, build_app
    from .runtime import check_scheduler_name, resolve_device, resolve_dtype

    quiet_libraries()
    with user_errors():
        if not 1 <= port <= 65535:
            raise SwapForwardError(f"port must be between 1 and 65535, got {port}.")
        check_scheduler_name(scheduler)
        resolve_dtype(dtype, resolve_device(device))
        if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
            raise SwapForwardError(f"--output-dir {str(output_dir)!r} is a file, not a folder.")
        studio = Studio(audio_model, image_model, output_dir, device=device, dtype=dtype, scheduler=scheduler,
                        compile=compile)
        demo = build_app(studio)
    typer.echo(f"results are kept in {studio.output_dir}")
    demo.launch(server_name=host, server_port=port, share=share, allowed_paths=[str(studio.output_dir)])


@app.command()
def methods() -> None:
    """List the joint-diffusion methods."""
    for method in METHODS.values():
        typer.echo(f"{method.name:15s} {method.summary}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
