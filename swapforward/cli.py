"""The `swapforward` command line: `swapforward audio PROMPT --seconds 60 --out rain.wav`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .core.methods import METHODS
from .errors import SwapForwardError

DEFAULT_AUDIO_MODEL = "cvssp/audioldm-s-full-v2"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Arbitrarily long, loopable audio from pretrained latent diffusion models (SaFa and baselines).",
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


@app.command()
def audio(
    prompt: str = typer.Argument(..., help="What the audio should sound like."),
    out: Path = typer.Option(Path("swapforward.wav"), "--out", "-o", help="Output file: .wav or .flac."),
    seconds: float = typer.Option(24.0, "--seconds", "-s", help="Length of the output in seconds."),
    method: str = typer.Option("safa", "--method", "-m", help=f"One of: {', '.join(METHODS)}."),
    model: str = typer.Option(DEFAULT_AUDIO_MODEL, "--model", help="Hugging Face hub id or local folder."),
    window_seconds: Optional[float] = typer.Option(
        None, "--window-seconds", help="View length; default: the model's training length (10.24 s)."
    ),
    steps: int = typer.Option(200, "--steps", help="Denoising steps."),
    guidance: float = typer.Option(3.5, "--guidance", help="Classifier-free guidance scale."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to steer away from."),
    overlap: float = typer.Option(0.2, "--overlap", help="Overlap rate of adjacent views, in (0, 1)."),
    r_guide: float = typer.Option(0.3, "--r-guide", help="Fraction of steps with reference guidance (SaFa)."),
    swap_interval: int = typer.Option(1, "--swap-interval", help="Swap interval w of Eq. 9, in latent frames."),
    tail_shift: int = typer.Option(0, "--tail-shift", help="SaFa+: shift each overlap's tail this many frames."),
    loop: bool = typer.Option(False, "--loop/--no-loop", help="Make the output a seamless loop."),
    view_batch_size: Optional[int] = typer.Option(None, "--view-batch-size", help="Views per model call."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed for reproducible output."),
    spectrogram: Optional[Path] = typer.Option(
        None, "--spectrogram", help="Also write a PNG of the mel spectrogram with the views marked."
    ),
    scheduler: str = typer.Option("default", "--scheduler", help="default (the model's), ddim, dpm, euler, unipc."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp16 on CUDA, else fp32), float32, float16, bfloat16."),
) -> None:
    """Generate long audio from a text prompt and write it as WAV or FLAC."""
    from .audio import LongAudioPipeline, check_audio_request
    from .files import AUDIO_FORMATS, IMAGE_FORMATS, check_output_path
    from .runtime import make_scheduler, resolve_device, resolve_dtype

    quiet_libraries()
    try:
        check_audio_request(
            prompt, seconds, window_seconds, method, overlap, r_guide,
            swap_interval, tail_shift, steps, guidance, view_batch_size, seed,
        )
        check_output_path(out, AUDIO_FORMATS)
        if spectrogram is not None:
            check_output_path(spectrogram, IMAGE_FORMATS)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        pipe = LongAudioPipeline.from_pretrained(model, device=torch_device, torch_dtype=torch_dtype)
        if scheduler != "default":
            pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
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
        )
        result.save(out)
        if spectrogram is not None:
            result.save_spectrogram(spectrogram, title=f"{result.method}: {prompt}")
        wall = time.perf_counter() - start
    except SwapForwardError as error:
        fail(str(error))
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing was written.", err=True)
        raise typer.Exit(code=130) from None
    layout = result.layout
    info = result.info
    guided = f" (+1 reference for {info['guide_steps']} of {info['steps']} steps)" if info["guide_steps"] else ""
    typer.echo(
        f"{out}: {result.seconds:.2f} s of {result.method} audio at {result.sample_rate} Hz from "
        f"{layout.num_views} views{guided}{', looping' if layout.loop else ''}; {result.model_calls} model calls, "
        f"{wall:.1f} s wall, real-time factor {wall / result.seconds:.2f}"
    )
    if abs(result.seconds - seconds) > 0.5 / result.sample_rate:
        typer.echo(f"note: the loop's length was rounded to {result.seconds:.3f} s (whole latent frames).")


@app.command()
def methods() -> None:
    """List the joint-diffusion methods."""
    for method in METHODS.values():
        typer.echo(f"{method.name:15s} {method.summary}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
