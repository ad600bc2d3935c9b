"""The web app (`swapforward app`): long audio and panoramas from a browser, on the pipelines the CLI uses.

A `Studio` holds the loaded pipelines (each model is loaded once, on first use) and writes every result to its output
folder atomically; `build_app` lays it out with gradio, one tab per kind, with an input for every option of the
kind's specification (`swapforward.options`): the everyday ones in view, the method's under "More". A user mistake
is shown as one sentence; the seed of every result is reported, so any result can be made again.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
import time
from collections.abc import Callable
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
              progress: Progress | None = None, **values: Any) -> tuple[str, str, list[str], str]:
        """Generate audio; (sound file, spectrogram PNG, every take's file, one-line summary) of the first (or best)
        take. `values` are the audio options by field name (seconds, method, loop, steps, takes, loudness, ...);
        `progress(done, total)` is called after every denoising step."""
        if file_format not in AUDIO_FILE_FORMATS:
            raise SwapForwardError(f"file_format must be one of {', '.join(AUDIO_FILE_FORMATS)}, got {file_format!r}.")
        request, output = self.request("audio", prompt, values)
        check_ranking(request)
        start = time.perf_counter()
        result = self.pipeline("audio", model).generate(request, progress_bar=progress_bar,
                                                        callback=step_callback(progress, request))
        stem = self.output_dir / result_stem(request, result.info["seed"], self.model_id("audio", model))
        output = output.replace(out=stem.with_suffix(f".{file_format}"), spectrogram=stem.with_suffix(".png"))
        files = save_result(result, output, request)
        wall = time.perf_counter() - start
        summary = (f"{result.seconds:.2f} s of audio, seed {result.info['seed']}; {views_summary(result)}; "
                   f"{wall:.1f} s ({wall / result.seconds:.2f}x real time)" + takes_summary(result))
        picture = take_path(output.spectrogram, 0, len(files))
        return str(files[0]), str(picture), [str(f) for f in files], summary

    def panorama(self, prompt: str, model: str | None = None, progress_bar: bool = True,
                 progress: Progress | None = None, **values: Any) -> tuple[str, list[str], str]:
        """Generate a panorama; (PNG of the first or best take, every take's PNG, one-line summary)."""
        request, output = self.request("panorama", prompt, values)
        check_ranking(request)
        start = time.perf_counter()
        result = self.pipeline("panorama", model).generate(request, progress_bar=progress_bar,
                                                           callback=step_callback(progress, request))
        stem = result_stem(request, result.info["seed"], self.model_id("panorama", model))
        files = save_result(result, output.replace(out=self.output_dir / f"{stem}.png"), request)
        wall = time.perf_counter() - start
        w, h = result.image.size
        summary = f"{w} x {h}, seed {result.info['seed']}; {views_summary(result)}; {wall:.1f} s" + takes_summary(
            result)
        return str(files[0]), [str(f) for f in files], summary


    def playable(self, sound: str | Path) -> str:
        """A 16-bit PCM WAV copy of a result for the browser's player (every browser plays it, however short the
        clip; 24-bit FLAC and float WAV are not played everywhere), beside the result."""
        import soundfile as sf

        from ..files import write_atomic

        sound = Path(sound)
        preview = sound.with_name(f"{sound.stem}.play.wav")
        if not preview.exists():
            data, rate = sf.read(sound, always_2d=True, dtype="float32")
            write_atomic(preview, lambda tmp: sf.write(tmp, data, rate, subtype="PCM_16", format="WAV"))
        return str(preview)


Progress = Callable[[int, int], None]


def step_callback(progress: Progress | None, request: Request) -> Callable[[int, Any, Any], None] | None:
    """A pipeline step callback that reports (steps done, steps) to `progress`."""
    if progress is None:
        return None
    steps = request.num_inference_steps
    return lambda k, t, latents: progress(min(k + 1, steps), steps)


def viewer_html(path: str, width: int, height: int, angle: float | None = None, shown_height: int = 240) -> str:
    """A 360-degree viewer for a looped panorama, without scripts: the picture repeats round a strip that turns by
    itself, or stands still looking at `angle` degrees (0 is the left edge)."""
    period = width * shown_height / height
    url = f"/gradio_api/file={path}"
    if angle is None:
        motion = "animation: sf-turn 60s linear infinite;"
        position = "0px"
    else:
        motion, position = "", f"{-period * (angle % 360) / 360:.1f}px"
    return (f"<style>@keyframes sf-turn {{ from {{ background-position-x: 0px; }} to {{ background-position-x: "
            f"{-period:.1f}px; }} }}</style>"
            f"<div class='sf-360' style=\"height: {shown_height}px; background-image: url('{url}'); "
            f"background-repeat: repeat-x; background-size: auto 100%; background-position-x: {position}; "
            f"{motion}\"></div>")


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
    queue: the model runs on one device). Each tab shows the denoising steps as progress and has a cancel button;
    a session's takes are listed so that any two can be compared; a looped panorama turns in a 360-degree viewer."""
    try:
        import gradio as gr
    except ImportError:
        raise SwapForwardError("The web app needs gradio: pip install 'swapforward[app]'.") from None

    def refuse(error: SwapForwardError) -> None:
        """A user mistake: one sentence on the page and one line in the server's log, no traceback."""
        print(f"swapforward app: refused: {error}", file=sys.stderr, flush=True)
        raise gr.Error(str(error), print_exception=False) from None

    def remembered(history: list, files: list[str], play: Callable[[str], str]) -> tuple[list, Any, Any]:
        """The session's list of takes with this generation's added, and the two compare menus set to its newest."""
        number = len({label.split(".")[0] for label, _ in history}) + 1
        history = history + [[f"{number}.{i + 1} {Path(f).name}", play(f)] for i, f in enumerate(files)]
        labels = [label for label, _ in history]
        return (history, gr.Dropdown(choices=labels, value=labels[-1]),
                gr.Dropdown(choices=labels, value=labels[-2] if len(labels) > 1 else labels[-1]))

    def pick(label: str | None, history: list) -> str | None:
        return next((file for name, file in history if name == label), None)

    with gr.Blocks(title="swapforward") as demo:
        gr.Markdown("# swapforward\nArbitrarily long, loopable audio and panoramas from pretrained latent diffusion "
                    "models (SaFa and its baselines). Leave the seed at -1 for a random one; the summary says which.")
        for kind, title in (("audio", "Audio"), ("panorama", "Panorama")):
            with gr.Tab(title):
                history = gr.State([])
                with gr.Row():
                    with gr.Column():
                        options = app_options(kind)
                        inputs = {o.key: _component(gr, kind, o) for o in options if o.app == "main"}
                        with gr.Accordion("More", open=False):
                            inputs.update({o.key: _component(gr, kind, o) for o in options if o.app != "main"})
                            if kind == "audio":
                                inputs["file_format"] = gr.Radio(list(AUDIO_FILE_FORMATS), value="flac",
                                                                 label="file format", elem_id="audio-file_format")
                        with gr.Row():
                            run = gr.Button(f"Generate {kind}", variant="primary", elem_id=f"{kind}-generate")
                            cancel = gr.Button("Cancel", variant="stop", elem_id=f"{kind}-cancel")
                    with gr.Column():
                        if kind == "audio":
                            outputs = [gr.Audio(label="Audio (loops play round)", type="filepath"),
                                       gr.Image(label="Mel spectrogram", type="filepath")]
                        else:
                            outputs = [gr.Image(label="Panorama", type="filepath")]
                            viewer = gr.HTML(elem_id="panorama-360")
                            with gr.Row():
                                turning = gr.Checkbox(value=True, label="360 view turns by itself")
                                angle = gr.Slider(0, 360, value=0, step=1, label="look at (degrees)")
                            shown_picture = gr.State(None)
                        outputs.append(gr.File(label="Every take", file_count="multiple"))
                        outputs.append(gr.Textbox(label="Summary", interactive=False))
                        with gr.Accordion("Compare takes", open=False):
                            with gr.Row():
                                menus = [gr.Dropdown([], label=f"take {side}", elem_id=f"{kind}-compare-{side}")
                                         for side in ("A", "B")]
                            player = gr.Audio if kind == "audio" else gr.Image
                            players = [player(label=f"take {side}", type="filepath") for side in ("A", "B")]
                keys = list(inputs)

                def generate(history_now, *args, progress=gr.Progress(), kind=kind, keys=keys):  # noqa: B008
                    values = dict(zip(keys, args, strict=True))
                    report = lambda done, total: progress((done, total), desc="denoising", unit="steps")  # noqa: E731
                    try:
                        if kind == "audio":
                            sound, picture, files, summary = studio.audio(**values, progress=report)
                            shown = [studio.playable(sound), picture]
                            listed = remembered(history_now, files, studio.playable)
                            return (*shown, files, summary, *listed)
                        path, files, summary = studio.panorama(**values, progress=report)
                    except SwapForwardError as error:
                        refuse(error)
                    from PIL import Image

                    width, height = Image.open(path).size
                    looped = (path, width, height) if values.get("loop") else None
                    html = viewer_html(path, width, height) if looped else ""
                    return (path, html, looped, files, summary, *remembered(history_now, files, str))

                shown_outputs = outputs[:1] + ([viewer, shown_picture] if kind == "panorama" else outputs[1:2])
                event = run.click(generate, [history, *inputs.values()],
                                  [*shown_outputs, *outputs[-2:], history, *menus], api_name=kind,
                                  concurrency_id="gpu", concurrency_limit=1)
                cancel.click(None, None, None, cancels=[event], api_name=False)
                for menu, shown_player in zip(menus, players, strict=True):
                    menu.change(pick, [menu, history], shown_player, api_name=False)
                if kind == "audio":  # a seamless loop plays round and round, so its seam (or none) can be heard
                    inputs["loop"].change(lambda loop: gr.Audio(loop=loop), inputs["loop"], outputs[0],
                                          api_name=False)
                else:
                    def turn(picture: Any, moving: bool, degrees: float) -> str:
                        return "" if picture is None else viewer_html(*picture, angle=None if moving else degrees)

                    for control in (turning, angle):
                        control.change(turn, [shown_picture, turning, angle], viewer, api_name=False)
    return demo
