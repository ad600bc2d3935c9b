"""The web app (`swapforward app`): long audio and panoramas from a browser, on the pipelines the CLI uses.

A `Studio` holds the loaded pipelines (each model is loaded once, on first use) and writes every result to its
output folder atomically; `build_app` lays it out with gradio: one tab for audio (player, spectrogram picture,
download), one for panoramas. A user mistake is shown as one sentence; the seed of every result is reported, so
any result can be made again.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from .core.methods import METHODS
from .errors import SwapForwardError

MAX_SEED = 2**31 - 1


def slug(prompt: str, limit: int = 40) -> str:
    """A file-name-safe stem from a prompt: 'Rain on a tin roof!' -> 'rain-on-a-tin-roof'."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return words[:limit].rstrip("-") or "untitled"


def result_stem(prompt: str, method: str, seed: int, *settings: Any) -> str:
    """'rain-on-a-tin-roof-safa-5-3f9a1c': readable, and different whenever any setting differs, so that a result
    kept in the output folder is replaced only by the same result made again."""
    digest = hashlib.sha1(repr((prompt, method, seed, settings)).encode()).hexdigest()[:6]
    return f"{slug(prompt)}-{method}-{seed}-{digest}"


def whole_if_integral(value: Any) -> Any:
    """Browser number fields send floats: 200.0 -> 200, anything else unchanged (and checked later)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class Studio:
    """Loaded pipelines and an output folder: what the app's buttons call, usable without a browser too."""

    def __init__(
        self,
        audio_model: str,
        image_model: str,
        output_dir: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        scheduler: str = "paper",
        compile: bool = False,
    ):
        self.models = {"audio": audio_model, "panorama": image_model}
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="swapforward-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.load_options = {"device": device, "torch_dtype": dtype, "scheduler": scheduler, "compile": compile}
        self.pipelines: dict[tuple[str, str], Any] = {}

    def model_id(self, kind: str, model: str | None) -> str:
        """The model asked for, or the studio's default for `kind` when the field is empty."""
        return (model or "").strip() or self.models[kind]

    def pipeline(self, kind: str, model: str | None) -> Any:
        """The pipeline of `kind` for `model` (default: the studio's), loaded on first use."""
        from .audio import LongAudioPipeline
        from .panorama import PanoramaPipeline

        key = (kind, self.model_id(kind, model))
        if key not in self.pipelines:
            cls = LongAudioPipeline if kind == "audio" else PanoramaPipeline
            self.pipelines[key] = cls.from_pretrained(key[1], **self.load_options)
        return self.pipelines[key]

    @staticmethod
    def seed(seed: Any) -> int:
        """The seed to use: the one given, or a random one when it is empty or negative."""
        if seed is None or seed == "" or (isinstance(seed, (int, float)) and seed < 0):
            return random.randint(0, MAX_SEED)
        seed = whole_if_integral(seed)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed > MAX_SEED:
            raise SwapForwardError(
                f"seed must be a whole number up to {MAX_SEED} (or -1 for a random one), got {seed!r}."
            )
        return seed

    def audio(
        self,
        prompt: str,
        seconds: float = 24.0,
        method: str = "safa",
        loop: bool = False,
        steps: int = 200,
        guidance: float = 3.5,
        seed: Any = None,
        negative_prompt: str = "",
        file_format: str = "flac",
        model: str | None = None,
        window_seconds: float | None = None,
        progress_bar: bool = True,
    ) -> tuple[str, str, str]:
        """Generate audio; (sound file path, spectrogram PNG path, one-line summary). `window_seconds`: the view
        length, by default the model's training length."""
        from .audio import check_audio_request
        from .cli import views_summary

        if file_format not in ("flac", "wav"):
            raise SwapForwardError(f"file_format must be flac or wav, got {file_format!r}.")
        seed = self.seed(seed)
        steps = whole_if_integral(steps)
        window_seconds = window_seconds or None  # an empty browser field
        check_audio_request(prompt, seconds, window_seconds, method=method, num_inference_steps=steps,
                            guidance_scale=guidance)
        pipe = self.pipeline("audio", model)
        start = time.perf_counter()
        result = pipe(prompt, audio_length_in_s=seconds, window_seconds=window_seconds, method=method, loop=loop,
                      num_inference_steps=steps, guidance_scale=guidance, negative_prompt=negative_prompt or None,
                      seed=seed, progress_bar=progress_bar)
        stem = self.output_dir / result_stem(prompt, method, seed, float(seconds), loop, steps, float(guidance),
                                             negative_prompt, self.model_id("audio", model), window_seconds)
        sound, picture = stem.with_suffix(f".{file_format}"), stem.with_suffix(".png")
        result.save(sound)
        result.save_spectrogram(picture, title=f"{result.method}: {prompt}")
        wall = time.perf_counter() - start
        summary = (f"{result.seconds:.2f} s of audio, seed {seed}; {views_summary(result)}; "
                   f"{wall:.1f} s ({wall / result.seconds:.2f}x real time)")
        return str(sound), str(picture), summary

    def panorama(
        self,
        prompt: str,
        width: int = 3200,
        height: int = 512,
        method: str = "safa",
        loop: bool = False,
        steps: int = 50,
        guidance: float = 7.5,
        seed: Any = None,
        negative_prompt: str = "",
        model: str | None = None,
        progress_bar: bool = True,
    ) -> tuple[str, str]:
        """Generate a panorama; (PNG path, one-line summary)."""
        from .cli import views_summary
        from .panorama import check_panorama_request

        seed = self.seed(seed)
        width, height, steps = (whole_if_integral(v) for v in (width, height, steps))
        check_panorama_request(prompt, height, width, method=method, num_inference_steps=steps, guidance_scale=guidance)
        pipe = self.pipeline("panorama", model)
        start = time.perf_counter()
        result = pipe(prompt, height=height, width=width, method=method, loop=loop, num_inference_steps=steps,
                      guidance_scale=guidance, negative_prompt=negative_prompt or None, seed=seed,
                      progress_bar=progress_bar)
        stem = result_stem(prompt, method, seed, width, height, loop, steps, float(guidance), negative_prompt,
                           self.model_id("panorama", model))
        path = self.output_dir / f"{stem}.png"
        result.save(path)
        wall = time.perf_counter() - start
        return str(path), f"{width} x {height}, seed {seed}; {views_summary(result)}; {wall:.1f} s"


def build_app(studio: Studio) -> Any:
    """The gradio Blocks of the app, with an audio tab and a panorama tab calling `studio`, one generation at a time
    (both buttons share one queue: the model runs on one device)."""
    try:
        import gradio as gr
    except ImportError:
        raise SwapForwardError("The web app needs gradio: pip install 'swapforward[app]'.") from None

    def shown(run):
        """Run a studio call with gradio's progress bar; a user mistake becomes one sentence in the page."""

        def call(*args, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio injects it by default value
            try:
                return run(*args)
            except SwapForwardError as error:
                raise gr.Error(str(error)) from None

        return call

    methods = [(method.summary, method.name) for method in METHODS.values()]  # (shown, sent)
    with gr.Blocks(title="swapforward") as demo:
        gr.Markdown("# swapforward\nArbitrarily long, loopable audio and panoramas from pretrained latent diffusion "
                    "models (SaFa and its baselines). Leave the seed at -1 for a random one; the summary says which.")
        with gr.Tab("Audio"):
            with gr.Row():
                with gr.Column():
                    a_prompt = gr.Textbox(label="Prompt", value="rain on a tin roof, distant thunder")
                    a_negative = gr.Textbox(label="Negative prompt", value="low quality")
                    a_seconds = gr.Number(label="Length (s)", value=24, minimum=0)
                    a_method = gr.Dropdown(methods, value="safa", label="Method")
                    a_loop = gr.Checkbox(label="Seamless loop", value=False)
                    with gr.Accordion("More", open=False):
                        a_steps = gr.Number(label="Steps", value=200, precision=0)
                        a_guidance = gr.Number(label="Guidance scale", value=3.5)
                        a_format = gr.Radio(["flac", "wav"], value="flac", label="File format")
                        a_model = gr.Textbox(label="Model (hub id or folder)", value=studio.models["audio"])
                        a_window = gr.Number(label="View length (s); empty: the model's", value=None)
                    a_seed = gr.Number(label="Seed", value=-1, precision=0)
                    a_run = gr.Button("Generate audio", variant="primary")
                with gr.Column():
                    a_sound = gr.Audio(label="Audio", type="filepath")
                    a_picture = gr.Image(label="Mel spectrogram", type="filepath")
                    a_summary = gr.Textbox(label="Summary", interactive=False)
            a_run.click(shown(studio.audio), [a_prompt, a_seconds, a_method, a_loop, a_steps, a_guidance, a_seed,
                                              a_negative, a_format, a_model, a_window],
                        [a_sound, a_picture, a_summary],
                        api_name="audio", concurrency_id="gpu", concurrency_limit=1)
        with gr.Tab("Panorama"):
            with gr.Row():
                with gr.Column():
                    p_prompt = gr.Textbox(label="Prompt", value="a photo of the dolomites")
                    p_negative = gr.Textbox(label="Negative prompt", value="")
                    p_width = gr.Number(label="Width (px)", value=3200, precision=0)
                    p_height = gr.Number(label="Height (px)", value=512, precision=0)
                    p_method = gr.Dropdown(methods, value="safa", label="Method")
                    p_loop = gr.Checkbox(label="360 degrees (right edge continues into the left)", value=False)
                    with gr.Accordion("More", open=False):
                        p_steps = gr.Number(label="Steps", value=50, precision=0)
                        p_guidance = gr.Number(label="Guidance scale", value=7.5)
                        p_model = gr.Textbox(label="Model (hub id or folder)", value=studio.models["panorama"])
                    p_seed = gr.Number(label="Seed", value=-1, precision=0)
                    p_run = gr.Button("Generate panorama", variant="primary")
                with gr.Column():
                    p_image = gr.Image(label="Panorama", type="filepath")
                    p_summary = gr.Textbox(label="Summary", interactive=False)
            p_run.click(shown(studio.panorama), [p_prompt, p_width, p_height, p_method, p_loop, p_steps, p_guidance,
                                                 p_seed, p_negative, p_model], [p_image, p_summary],
                        api_name="panorama", concurrency_id="gpu", concurrency_limit=1)
    return demo
