"""The web app (`swapforward app`): long audio and panoramas from a browser, on the pipelines the CLI uses.

A `Studio` holds the loaded pipelines (each model is loaded once, on first use) and writes every result to its output
folder atomically; `build_app` lays it out with gradio, one tab per kind, with an input for every option of the
kind's specification (`swapforward.options`): the everyday ones in view, the method's under "More". A user mistake
is shown as one sentence; the seed of every result is reported, so any result can be made again.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core.methods import METHODS
from ..errors import SwapForwardError
from ..options import LOAD, OUTPUT, RANDOM_SEED, Option, Request
from ..prompts import words
from ..registry import KINDS
from .common import check_ranking, load_model, save_result, take_path
from .summary import views_summary

#: What the app's fields show before the user types (the spec's defaults otherwise).
SHOWN = {
    "audio": {"prompt": "rain on a tin roof, distant thunder", "negative_prompt": "low quality", "seed": RANDOM_SEED},
    "panorama": {"prompt": "a photo of the dolomites", "height": 512, "seed": RANDOM_SEED},
}
AUDIO_FILE_FORMATS = ("flac", "wav", "mp3", "ogg")


def slug(prompt: str, limit: int = 40) -> str:
    """A file-name-safe stem from a prompt: 'Rain on a tin roof!' -> 'rain-on-a-tin-roof'."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return words[:limit].rstrip("-") or "untitled"


def result_stem(request: Request, seed: int, model: str) -> str:
    """'rain-on-a-tin-roof-safa-5-3f9a1c': readable, and different whenever any setting differs, so that a result
    kept in the output folder is replaced only by the same result made again."""
    settings = sorted((k, v) for k, v in request.items() if k != "seed")
    digest = hashlib.sha1(repr((settings, seed, model)).encode()).hexdigest()[:6]
    return f"{slug(words(request.prompt))}-{request.method}-{seed}-{digest}"


def app_options(kind: str) -> list[Option]:
    """The options the app shows for `kind`, in their order on the page: the spec's everyday ones, then under "More"
    the rest of them (none is left out), how the file is written, and the model."""
    options = [o for o in (*KINDS[kind].spec.options, *OUTPUT[kind].options) if o.app] + [LOAD["model"]]
    return [o for o in options if o.app == "main"] + [o for o in options if o.app != "main"]


class Studio:
    """Loaded pipelines and an output folder: what the app's buttons call, usable without a browser too."""

    def __init__(
        self,
        audio_model: str,
        image_model: str,
        output_dir: str | Path | None = None,
        load: Request | None = None,
        **load_options: Any,
    ):
        self.models = {"audio": audio_model, "panorama": image_model}
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="swapforward-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.load = load if load is not None else LOAD.check(load_options)
        self.pipelines: dict[tuple[str, str], Any] = {}

    def model_id(self, kind: str, model: str | None) -> str:
        """The model asked for, or the studio's default for `kind` when the field is empty."""
        return (model or "").strip() or self.models[kind]

    def pipeline(self, kind: str, model: str | None) -> Any:
        """The pipeline of `kind` for `model` (default: the studio's), loaded on first use."""
        key = (kind, self.model_id(kind, model))
        if key not in self.pipelines:
            self.pipelines[key] = load_model(KINDS[kind], self.load.replace(model=key[1]))
        return self.pipelines[key]

    def request(self, kind: str, prompt: str, values: dict[str, Any]) -> tuple[Request, Request]:
        """The checked request and file options from the app's fields (an empty seed field asks for a random seed;
        a filled timeline box takes the prompt's place)."""
        writing = {o.key for o in OUTPUT[kind].options}
        output = OUTPUT[kind].check({"out": "unused", **{k: v for k, v in values.items() if k in writing}}, "app")
        values = {k: v for k, v in values.items() if k not in writing and (v is not None or k == "seed")}
        if values.get("seed") in (None, ""):
            values["seed"] = RANDOM_SEED
        if (values.get("timeline") or "").strip():
            prompt = None
        return KINDS[kind].spec.check({**values, "prompt": prompt}, "app"), output

    def audio(self, prompt: str, file_format: str = "flac", model: str | None = None, progress_bar: bool = True,
              **values: Any) -> tuple[str, str, list[str], str]:
        """Generate audio; (sound file, spectrogram PNG, every take's file, one-line summary) of the first (or best)
        take. `values` are the audio options by field name (seconds, method, loop, steps, takes, loudness, ...)."""
        if file_format not in AUDIO_FILE_FORMATS:
            raise SwapForwardError(f"file_format must be one of {', '.join(AUDIO_FILE_FORMATS)}, got {file_format!r}.")
        request, output = self.request("audio", prompt, values)
        check_ranking(request)
        start = time.perf_counter()
        result = self.pipeline("audio", model).generate(request, progress_bar=progress_bar)
        stem = self.output_dir / result_stem(request, result.info["seed"], self.model_id("audio", model))
        output = output.replace(out=stem.with_suffix(f".{file_format}"), spectrogram=stem.with_suffix(".png"))
        files = save_result(result, output, request)
        wall = time.perf_counter() - start
        summary = (f"{result.seconds:.2f} s of audio, seed {result.info['seed']}; {views_summary(result)}; "
                   f"{wall:.1f} s ({wall / result.seconds:.2f}x real time)" + takes_summary(result))
        picture = take_path(output.spectrogram, 0, len(files))
        return str(files[0]), str(picture), [str(f) for f in files], summary

    def panorama(self, prompt: str, model: str | None = None, progress_bar: bool = True,
                 **values: Any) -> tuple[str, list[str], str]:
        """Generate a panorama; (PNG of the first or best take, every take's PNG, one-line summary)."""
        request, output = self.request("panorama", prompt, values)
        check_ranking(request)
        start = time.perf_counter()
        result = self.pipeline("panorama", model).generate(request, progress_bar=progress_bar)
        stem = result_stem(request, result.info["seed"], self.model_id("panorama", model))
        files = save_result(result, output.replace(out=self.output_dir / f"{stem}.png"), request)
        wall = time.perf_counter() - start
        w, h = result.image.size
        summary = f"{w} x {h}, seed {result.info['seed']}; {views_summary(result)}; {wall:.1f} s" + takes_summary(
            result)
        return str(files[0]), [str(f) for f in files], summary


def takes_summary(result: Any) -> str:
    """'; 3 takes, seeds 5, 6, 7' for several takes (in their order, best first when ranked)."""
    takes = result.takes or [result]
    return "" if len(takes) == 1 else f"; {len(takes)} takes, seeds {', '.join(str(t.info['seed']) for t in takes)}"


def _component(gr: Any, kind: str, option: Option) -> Any:
    """The gradio input of one option, labelled by its field name and described by its help."""
    value = SHOWN[kind].get(option.name, option.default_for(kind))
    common = dict(label=option.key.replace("_", " "), info=option.describe(kind), elem_id=f"{kind}-{option.key}")
    if option.name == "model":
        return gr.Textbox(value=None, placeholder="(the studio's default)", **common)
    if option.type == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if option.name == "method":
        return gr.Dropdown([(m.summary, m.name) for m in METHODS.values()], value=value, **common)
    if option.choices:
        return gr.Dropdown(list(option.choices), value=value, **common)
    if option.type in ("float", "int", "seed"):
        return gr.Number(value=value, precision=0 if option.type != "float" else None, **common)
    if option.type == "media":
        kind_of = gr.Audio if kind == "audio" else gr.Image
        return kind_of(value=None, type="filepath", label=common["label"], elem_id=common["elem_id"])
    if option.type in ("spans", "position"):
        return gr.Textbox(value=None if value is None else str(value), **common)
    if option.type == "timeline":
        return gr.Textbox(value=value, lines=4, placeholder="0:00 light rain on leaves\n0:30 thunderstorm", **common)
    return gr.Textbox(value=value, **common)


def build_app(studio: Studio) -> Any:
    """The gradio Blocks of the app, a tab per kind calling `studio`, one generation at a time (the buttons share one
    queue: the model runs on one device)."""
    try:
        import gradio as gr
    except ImportError:
        raise SwapForwardError("The web app needs gradio: pip install 'swapforward[app]'.") from None

    def shown(run, keys: list[str]):
        """Call a studio method with the fields by name and gradio's progress bar; a mistake is one sentence."""

        def call(*args, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio injects it by default value
            try:
                return run(**dict(zip(keys, args, strict=True)))
            except SwapForwardError as error:
                raise gr.Error(str(error)) from None

        return call

    with gr.Blocks(title="swapforward") as demo:
        gr.Markdown("# swapforward\nArbitrarily long, loopable audio and panoramas from pretrained latent diffusion "
                    "models (SaFa and its baselines). Leave the seed at -1 for a random one; the summary says which.")
        for kind, title in (("audio", "Audio"), ("panorama", "Panorama")):
            with gr.Tab(title):
                with gr.Row():
                    with gr.Column():
                        options = app_options(kind)
                        inputs = {o.key: _component(gr, kind, o) for o in options if o.app == "main"}
                        with gr.Accordion("More", open=False):
                            inputs.update({o.key: _component(gr, kind, o) for o in options if o.app != "main"})
                            if kind == "audio":
                                inputs["file_format"] = gr.Radio(list(AUDIO_FILE_FORMATS), value="flac",
                                                                 label="file format", elem_id="audio-file_format")
                        run = gr.Button(f"Generate {kind}", variant="primary")
                    with gr.Column():
                        if kind == "audio":
                            outputs = [gr.Audio(label="Audio (loops play round)", type="filepath"),
                                       gr.Image(label="Mel spectrogram", type="filepath")]
                        else:
                            outputs = [gr.Image(label="Panorama", type="filepath")]
                        outputs.append(gr.File(label="Every take", file_count="multiple"))
                        outputs.append(gr.Textbox(label="Summary", interactive=False))
                method = studio.audio if kind == "audio" else studio.panorama
                run.click(shown(method, list(inputs)), list(inputs.values()), outputs, api_name=kind,
                          concurrency_id="gpu", concurrency_limit=1)
                if kind == "audio":  # a seamless loop plays round and round, so its seam (or none) can be heard
                    inputs["loop"].change(lambda loop: gr.Audio(loop=loop), inputs["loop"], outputs[0],
                                          api_name=False)
    return demo
