"""The web app (`swapforward app`): long audio and panoramas from a browser, on the pipelines the CLI uses.

A `Studio` holds the loaded pipelines (each model is loaded once, on first use) and writes every result to its output
folder atomically; `build_app` lays it out with gradio, one tab per kind, with an input for every option of the
kind's specification (`swapforward.options`): the everyday ones in view, the method's under "More". A user mistake
is shown as one sentence; the seed of every result is reported, so any result can be made again.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.methods import METHODS
from ..errors import SwapForwardError
from ..options import LOAD, OUTPUT, TYPES, Option, Request
from ..prompts import words
from .common import check_loudness, check_ranking, load_model, save_result, take_path
from .registry import KINDS
from .summary import views_summary

#: Examples in the prompt fields; every other field shows its option's default (the seed: its -1 for the front ends),
#: or is empty with what empty means written in it.
SHOWN = {
    "audio": {"prompt": "rain on a tin roof, distant thunder"},
    "panorama": {"prompt": "a photo of the dolomites"},
}
AUDIO_FILE_FORMATS = ("flac", "wav", "mp3", "ogg", "opus")

#: The page's sections, in order, and the fields each holds; a field that is not "main" folds into its section's
#: "more" part. Every option the app shows belongs to exactly one section.
SECTIONS = (
    ("What to make", ("prompt", "negative_prompt", "init_audio", "init_image", "timeline", "transition", "like",
                      "like_offset", "init_at", "keep", "fill", "keep_fade", "splice", "crossfade", "feather",
                      "repaint_resample", "repaint_jump")),
    ("Length and loop", ("seconds", "bpm", "bars", "width", "height", "loop", "beats_per_bar", "window_seconds",
                         "view_width")),
    ("Method and quality", ("method", "steps", "guidance", "overlap", "r_guide", "reference_phase",
                            "envelope_share", "swap_interval", "tail_shift", "mad_ratio", "sync_weight", "sync_decay",
                            "sync_ratio", "eta", "view_batch_size")),
    ("Output", ("takes", "seed", "file_format", "rank", "sample_rate", "loudness", "model")),
)

#: Starting points for common jobs: the fields each sets (the others keep what the user typed).
PRESETS = {
    "audio": {
        "Ambience bed: a 2-minute seamless loop": {
            "prompt": "gentle rain on leaves, distant birds, calm forest ambience", "seconds": 120, "bpm": None,
            "bars": None, "loop": True, "method": "safa"},
        "Music loop: 8 bars at 120 BPM": {
            "prompt": "lo-fi hip hop beat with warm electric piano", "seconds": None, "bpm": 120, "bars": 8,
            "beats_per_bar": 4, "loop": True, "method": "safa"},
        "Extend my clip: continue it to 60 s (add your clip above)": {
            "seconds": 60, "bpm": None, "bars": None, "loop": False, "init_at": 0.0, "method": "safa"},
        "Try it fast: 2 s in seconds on a CPU (the tiny models of scripts/tiny_models.py)": {
            "seconds": 2, "bpm": None, "bars": None, "loop": True, "method": "safa", "window_seconds": 0.064,
            "steps": 4},
    },
    "panorama": {
        "360-degree panorama": {"width": 4096, "loop": True, "method": "safa"},
        "Wide landscape": {"width": 3200, "loop": False, "method": "safa"},
        "Extend my picture to a wide landscape (add your picture above)": {
            "width": 3200, "loop": False, "init_at": "center", "method": "safa"},
    },
}


class Cancelled(Exception):
    """The user pressed Cancel: the run stopped at a step boundary and wrote nothing."""


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


#: The audio file's format: the app's own field (the command line takes it from --out's extension).
FILE_FORMAT = Option("file_format", "choice", "flac", "Format of the written file: FLAC (24-bit), WAV (float), MP3, "
                     "Ogg Vorbis or Opus (48 kHz).", choices=AUDIO_FILE_FORMATS, app="main")


def app_options(kind: str) -> list[Option]:
    """The options the app shows for `kind`, in their order on the page: section by section (`SECTIONS`), each
    section's everyday ones, then its folded ones. None is left out: an option without a section is an error."""
    options = [o for o in (*KINDS[kind].spec.options, *OUTPUT[kind].options) if o.app] + [LOAD["model"]]
    if kind == "audio":
        options.append(FILE_FORMAT)
    placed = {key: (i, j) for i, (_, keys) in enumerate(SECTIONS) for j, key in enumerate(keys)}
    missing = [o.key for o in options if o.key not in placed]
    if missing:
        raise KeyError(f"the app has no section for {missing}")
    return sorted(options, key=lambda o: (placed[o.key][0], o.app != "main", placed[o.key][1]))


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
        self._busy = threading.Lock()  # one generation at a time: the next waits for a cancelled one to stop
        self._stop = threading.Event()
        self._steps = (0, 0)  # (steps done, steps) of the running generation, for what Cancel says
        self.owner: str | None = None
        """The page session whose generation runs (a closed tab cancels its own run only)."""
        self.live: Any = None
        """The Live tab's broadcast (frontends/live.py), served at /live/stream.wav; one at a time."""

    def cancel(self) -> bool:
        """Ask the running generation to stop after its current step (it then raises `Cancelled` and writes
        nothing); False when none is running."""
        if not self._busy.locked():
            return False
        self._stop.set()
        return True

    @contextmanager
    def _running(self, owner: str | None = None) -> Iterator[None]:
        """Hold the studio for one generation (started by the page session `owner`); a cancelled one frees the
        device's cached memory."""
        with self._busy:
            self._stop.clear()
            self.owner = owner
            try:
                yield
            except Cancelled:
                release_device_memory()
                raise
            finally:
                self.owner = None

    def cancel_for(self, owner: str | None) -> bool:
        """Cancel the running generation if the page session `owner` started it (its tab was closed)."""
        return owner is not None and self.owner == owner and self.cancel()

    def _interrupt(self) -> None:
        """Before every model call: stop a cancelled run there, within one view batch."""
        if self._stop.is_set():
            done, steps = self._steps
            raise Cancelled(f"cancelled in step {min(done + 1, steps)} of {steps}; nothing was written")

    def _hook(self, progress: Progress | None, request: Request) -> Callable[[int, Any, Any], None]:
        """The step callback: report (steps done, steps) and stop when Cancel was pressed."""
        steps = request.num_inference_steps
        self._steps = (0, steps)

        def on_step(k: int, t: Any, latents: Any) -> None:
            self._steps = (k + 1, steps)
            if self._stop.is_set():
                raise Cancelled(f"cancelled after step {min(k + 1, steps)} of {steps}; nothing was written")
            if progress is not None:
                progress(min(k + 1, steps), steps)

        return on_step

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
        a filled timeline box takes the prompt's place; the hidden settings of methods other than the chosen one are
        left out, as the page hides them)."""
        spec = KINDS[kind].spec
        writing = {o.key for o in OUTPUT[kind].options}
        output = OUTPUT[kind].check({"out": "unused", **{k: v for k, v in values.items() if k in writing}}, "app")
        method = values.get("method") or spec["method"].default_for(kind)
        hidden = {o.key for o in spec.options if o.methods and method not in o.methods}
        values = {k: v for k, v in values.items() if k not in writing | hidden and v is not None}
        if (values.get("timeline") or "").strip():
            prompt = None
        return spec.check({**values, "prompt": prompt}, "app"), output

    def audio(self, prompt: str, file_format: str = "flac", model: str | None = None, progress_bar: bool = True,
              progress: Progress | None = None, owner: str | None = None,
              **values: Any) -> tuple[str, str, list[str], str]:
        """Generate audio; (sound file, spectrogram PNG, every take's file, one-line summary) of the first (or best)
        take. `values` are the audio options by field name (seconds, method, loop, steps, takes, loudness, ...);
        `progress(done, total)` is called after every denoising step."""
        file_format = FILE_FORMAT.convert(file_format, "app")
        request, output = self.request("audio", prompt, values)
        check_loudness(request, output, "loudness")
        check_ranking(request)
        with self._running(owner):
            start = time.perf_counter()
            pipe = self.pipeline("audio", model)
            request = pipe.resolve(request)
            result = pipe.generate(request, progress_bar=progress_bar, callback=self._hook(progress, request),
                                   interrupt=self._interrupt)
            stem = self.output_dir / result_stem(request, result.info["seed"], self.model_id("audio", model))
            output = output.replace(out=stem.with_suffix(f".{file_format}"), spectrogram=stem.with_suffix(".png"))
            files = save_result(result, output, request)
        wall = time.perf_counter() - start
        summary = (f"{result.seconds:.2f} s of audio, seed {result.info['seed']}; {views_summary(result)}; "
                   f"{wall:.1f} s ({wall / result.seconds:.2f}x real time)" + takes_summary(result))
        picture = take_path(output.spectrogram, 0, len(files))
        return str(files[0]), str(picture), [str(f) for f in files], summary

    def panorama(self, prompt: str, model: str | None = None, progress_bar: bool = True,
                 progress: Progress | None = None, owner: str | None = None,
                 **values: Any) -> tuple[str, list[str], str]:
        """Generate a panorama; (PNG of the first or best take, every take's PNG, one-line summary)."""
        request, output = self.request("panorama", prompt, values)
        check_ranking(request)
        with self._running(owner):
            start = time.perf_counter()
            pipe = self.pipeline("panorama", model)
            request = pipe.resolve(request)
            result = pipe.generate(request, progress_bar=progress_bar, callback=self._hook(progress, request),
                                   interrupt=self._interrupt)
            stem = result_stem(request, result.info["seed"], self.model_id("panorama", model))
            files = save_result(result, output.replace(out=self.output_dir / f"{stem}.png"), request)
        wall = time.perf_counter() - start
        w, h = result.image.size
        summary = f"{w} x {h}, seed {result.info['seed']}; {views_summary(result)}; {wall:.1f} s" + takes_summary(
            result)
        return str(files[0]), [str(f) for f in files], summary


    def live_start(self, prompt: str, model: str | None = None, ahead: float = 20.0, **values: Any) -> str:
        """Start a live stream of `prompt` (the stream's options by field name), replacing the one playing; a
        summary line. Its audio is at /live/stream.wav on the app's own server."""
        from ..options import STREAM
        from .live import Broadcast

        values = {k: v for k, v in values.items() if v is not None}
        request = STREAM.check({**values, "prompt": prompt}, "app")
        pipe = self.pipeline("audio", model)
        stream = pipe.open_stream(request, progress_bar=False)
        self.live_stop()
        self.live = Broadcast(stream, ahead).start()
        return (f"live: {stream.request.method}, seed {stream.seed}, a block adds {stream.block_seconds:.2f} s; "
                f"press play")

    def live_change(self, prompt: str) -> str:
        """Change the live stream's prompt from its next block on."""
        if self.live is None or self.live.done:
            raise SwapForwardError("No live stream is playing; press Start first.")
        reply = self.live.control({"prompt": prompt})
        return f"from {reply['from_seconds']:.1f} s: {reply['prompt']}"

    def live_stop(self) -> str:
        """Stop the live stream (its listeners hear what was made, then the end)."""
        live, self.live = self.live, None
        if live is None:
            return "Nothing is playing."
        live.close()
        return f"stopped after {live.seconds:.1f} s"

    def playable(self, sound: str | Path) -> str:
        """A 16-bit PCM WAV copy of a result for the browser's player (every browser plays it, however short the
        clip; 24-bit FLAC and float WAV are not played everywhere), beside the result."""
        import soundfile as sf

        from ..io.files import write_atomic

        sound = Path(sound)
        preview = sound.with_name(f"{sound.stem}.play.wav")
        if not preview.exists():
            data, rate = sf.read(sound, always_2d=True, dtype="float32")
            write_atomic(preview, lambda tmp: sf.write(tmp, data, rate, subtype="PCM_16", format="WAV"))
        return str(preview)


Progress = Callable[[int, int], None]


def eta_report(progress: Any) -> Progress:
    """gradio's progress for (steps done, steps), with the time left estimated from the steps done so far."""
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        left = elapsed / done * (total - done) if done else None
        eta = "" if left is None else f", about {left:.0f} s left"
        progress((done, total), desc=f"denoising{eta}", unit="steps")

    return report


def release_device_memory() -> None:
    """Give a stopped run's cached device memory back, so the next run (or another program) can have it."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def take_label(number: int, index: int, file: str) -> str:
    """'2.1 seed 8 · rain-md': the generation and take, then the seed, so that a narrow menu still shows which."""
    stem = Path(file).stem.split(".")[0]
    head, seed, _ = re.sub(r"_\d+$", "", stem).rsplit("-", 2)
    return f"{number}.{index + 1} seed {seed} · {head}"


def equivalent_command(kind: str, values: dict[str, Any], seed: int, files: list[str], model: str) -> str:
    """The command line that makes the same result as the app's `values` (fields left at their defaults are left
    out; the seed is the one used; a timeline is written to a file first)."""
    options = {o.key: o for o in app_options(kind)}
    words = ["swapforward", kind, shlex.quote(str(values.get("prompt") or ""))]
    before = ""
    for key, raw in values.items():
        option = options.get(key)
        if option is None or key in ("prompt", "seed", "file_format", "model") or raw is None or raw == "":
            continue
        value = option.convert(raw, "app")
        if value is None or value == option.default_for(kind):
            continue
        if option.type == "bool":
            words.append(option.flag if value else f"--no-{option.flag[2:]}")
        elif option.type == "timeline":
            before = f"cat > timeline.txt <<'EOF'\n{str(raw).strip()}\nEOF\n"
            words += [option.flag, "timeline.txt"]
        else:
            text = f"{value:g}" if isinstance(value, float) else str(raw if isinstance(raw, str) else value)
            words += [option.flag, shlex.quote(text)]
    takes = len(files)
    out = Path(files[0]).name if takes == 1 else re.sub(r"_0(\.\w+)$", r"\1", Path(files[0]).name)
    words += ["--seed", str(seed), "--model", shlex.quote(model), "-o", shlex.quote(out)]
    if kind == "audio":
        words += ["--spectrogram", shlex.quote(str(Path(out).with_suffix(".png")))]
    return before + " ".join(words)


def _component(gr: Any, kind: str, option: Option, visible: bool = True) -> Any:
    """The gradio input of one option, labelled by its field name and described by its help. A number without a
    fixed default is a text field left empty, with what empty means written in it (a browser sends an empty number
    field as 0, which is not the default)."""
    value = SHOWN[kind].get(option.key, option.default_for(kind, "app"))
    common = dict(label=option.key.replace("_", " "), info=option.describe(kind), elem_id=f"{kind}-{option.key}",
                  visible=visible)
    if option.name == "model":
        return gr.Textbox(value="", placeholder="(the studio's default)", **common)
    widget = TYPES[option.type].widget
    if widget == "checkbox":
        return gr.Checkbox(value=bool(value), **common)
    if option.name == "method":
        return gr.Dropdown([(m.summary, m.name) for m in METHODS.values()], value=value, **common)
    if option.key == "file_format":
        return gr.Radio(list(option.choice_names()), value=value, **common)
    if option.choice_names():
        return gr.Dropdown(list(option.choice_names()), value=value, **common)
    if widget == "number" and value is not None:
        return gr.Number(value=value, precision=0 if option.type != "float" else None, **common)
    if widget == "file":
        kind_of = gr.Audio if kind == "audio" else gr.Image
        return kind_of(value=None, type="filepath", label=common["label"], elem_id=common["elem_id"])
    if widget == "lines":
        return gr.Textbox(value="", lines=4, placeholder="0:00 light rain on leaves\n0:30 thunderstorm", **common)
    placeholder = f"empty: {option.unset_for(kind)}" if option.unset_for(kind) else "empty: the default"
    return gr.Textbox(value="" if value is None else str(value), placeholder=placeholder, **common)


def method_visibility(method: str, options: list[Option]) -> list[bool]:
    """Which of `options` the page shows for `method`: a method's own settings only when it is chosen."""
    return [not o.methods or method in o.methods for o in options]


def preset_values(kind: str, name: str, keys: list[str]) -> list[Any]:
    """The fields a preset sets, as the page's inputs take them (None: leave the field as it is)."""
    preset = PRESETS[kind].get(name, {})
    options = {o.key: o for o in app_options(kind)}
    shown = {}
    for key, value in preset.items():
        option = options[key]
        text_field = option.type in ("float", "int") and option.default_for(kind) is None
        shown[key] = ("" if value is None else str(value)) if text_field else value
    return [shown.get(key, SKIP) for key in keys]


SKIP = object()
"""A field a preset leaves as the user set it."""


def build_app(studio: Studio) -> Any:
    """The gradio Blocks of the app, a tab per kind calling `studio`, one generation at a time (the buttons share one
    queue: the model runs on one device). Each tab groups its fields (what to make, length and loop, method and
    quality, output), offers presets for common jobs, shows the denoising steps as progress, has a Cancel that stops
    the run within a step, and gives the run's equivalent command line; a session's takes are listed so that any two
    can be compared; a looped panorama turns in a 360-degree viewer."""
    try:
        import gradio as gr
    except ImportError:
        raise SwapForwardError("The web app needs gradio: pip install 'swapforward[app]'.") from None

    def remembered(history: list, files: list[str], play: Callable[[str], str]) -> tuple[list, Any, Any]:
        """The session's list of takes with this generation's added, and the two compare menus set to its newest."""
        number = len({label.split(" ")[0].split(".")[0] for label, _ in history}) + 1
        history = history + [[take_label(number, i, f), play(f)] for i, f in enumerate(files)]
        labels = [label for label, _ in history]
        return (history, gr.Dropdown(choices=labels, value=labels[-1]),
                gr.Dropdown(choices=labels, value=labels[-2] if len(labels) > 1 else labels[-1]))

    def pick(label: str | None, history: list) -> str | None:
        return next((file for name, file in history if name == label), None)

    with gr.Blocks(title="swapforward") as demo:
        gr.Markdown("# swapforward\nArbitrarily long, loopable audio and panoramas from pretrained latent diffusion "
                    "models (SaFa and its baselines). Empty fields take their defaults; the seed -1 draws one and the "
                    "summary says which, so any result can be made again.")
        for kind, title in (("audio", "Audio"), ("panorama", "Panorama")):
            with gr.Tab(title):
                history = gr.State([])
                options = app_options(kind)
                inputs: dict[str, Any] = {}
                with gr.Row():
                    with gr.Column():
                        preset = gr.Dropdown(["(none)", *PRESETS[kind]], value="(none)", label="preset",
                                             info="Start from a common job; change any field after.",
                                             elem_id=f"{kind}-preset")
                        shown = dict(zip((o.key for o in options),
                                         method_visibility(inputs_default_method(kind), options), strict=True))
                        for section, keys in SECTIONS:
                            placed = [o for o in options if o.key in keys]
                            with gr.Group(elem_id=f"{kind}-{slug(section)}"):
                                gr.Markdown(f"**{section}**")
                                for o in (o for o in placed if o.app == "main"):
                                    inputs[o.key] = _component(gr, kind, o, shown[o.key])
                                with gr.Accordion(f"more: {section.lower()}", open=False):
                                    for o in (o for o in placed if o.app != "main"):
                                        inputs[o.key] = _component(gr, kind, o, shown[o.key])
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
                        outputs.append(gr.Textbox(label="Summary", interactive=False, elem_id=f"{kind}-summary"))
                        command = gr.Code(label="The same run on the command line", language="shell",
                                          interactive=False, elem_id=f"{kind}-command")
                        with gr.Accordion("Compare takes", open=False):
                            with gr.Row():
                                menus = [gr.Dropdown([], label=f"take {side}", elem_id=f"{kind}-compare-{side}")
                                         for side in ("A", "B")]
                            player = gr.Audio if kind == "audio" else gr.Image
                            players = [player(label=f"take {side}", type="filepath") for side in ("A", "B")]
                keys = list(inputs)
                shown_outputs = outputs[:1] + ([viewer, shown_picture] if kind == "panorama" else outputs[1:2])
                targets = [*shown_outputs, *outputs[-2:], command, history, *menus]
                results = len(targets)

                def generate(history_now, *args, request=None, progress=gr.Progress(),  # noqa: B008
                             kind=kind, keys=keys, results=results):
                    values = dict(zip(keys, args, strict=True))
                    report = eta_report(progress)
                    model = studio.model_id(kind, values.get("model"))
                    owner = getattr(request, "session_hash", None)
                    if studio._busy.locked():
                        gr.Info("Another generation is running on this machine (one at a time); yours starts when "
                                "it ends.")
                    try:
                        if kind == "audio":
                            sound, picture, files, summary = studio.audio(**values, progress=report, owner=owner)
                            line = equivalent_command(kind, values, seed_of(summary), files, model)
                            return (studio.playable(sound), picture, files, summary, line,
                                    *remembered(history_now, files, studio.playable))
                        path, files, summary = studio.panorama(**values, progress=report, owner=owner)
                    except SwapForwardError as error:  # one sentence; the earlier results stay on the page
                        print(f"swapforward app: refused: {error}", file=sys.stderr, flush=True)
                        gr.Warning(str(error))
                        return notice(f"Refused: {error}", results)
                    except Cancelled as stop:
                        return notice(f"Cancelled: {stop}.", results)
                    from PIL import Image

                    width, height = Image.open(path).size
                    looped = (path, width, height) if values.get("loop") else None
                    html = viewer_html(path, width, height) if looped else ""
                    line = equivalent_command(kind, values, seed_of(summary), files, model)
                    return (path, html, looped, files, summary, line, *remembered(history_now, files, str))

                def stop(kind=kind):
                    stopping = studio.cancel()
                    return (f"Cancelled: the {kind} run stops before its next model call and writes nothing."
                            if stopping else "Nothing is running.")

                generate.__annotations__["request"] = gr.Request  # gradio passes the page session by this type
                event = run.click(generate, [history, *inputs.values()], targets, api_name=kind,
                                  concurrency_id="gpu", concurrency_limit=2)  # the second waits in the studio, told why
                cancel.click(stop, None, outputs[-1], cancels=[event], api_name=f"cancel_{kind}",
                             concurrency_limit=None)
                toggled = [o for o in options if o.methods]
                inputs["method"].change(
                    lambda method, toggled=toggled: [gr.update(visible=v) for v in method_visibility(method, toggled)],
                    inputs["method"], [inputs[o.key] for o in toggled], api_name=False)
                preset.change(
                    lambda name, kind=kind, keys=keys: [gr.skip() if v is SKIP else v
                                                        for v in preset_values(kind, name, keys)],
                    preset, list(inputs.values()), api_name=False)
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
        live_tab(gr, studio)

        def closed(request: Any = None) -> None:
            studio.cancel_for(getattr(request, "session_hash", None))  # a closed tab's run stops within a batch

        closed.__annotations__["request"] = gr.Request
        demo.unload(closed)
    return demo


#: The Live tab's fields: the stream's options a listener changes most, with what they start at.
LIVE_FIELDS = (("method", "md-envelope"), ("steps", None), ("block_views", 2), ("window_seconds", None),
               ("seed", -1), ("model", ""))


def live_tab(gr: Any, studio: Studio) -> None:
    """The Live tab: Start makes an endless stream that plays in the page within one block (its audio is served
    at /live/stream.wav by `serve_app`), Change sends a new prompt that arrives with the next block, Stop ends it."""
    from ..options import STREAM

    with gr.Tab("Live"):
        gr.Markdown("An endless stream, made block by block while it plays: press **Start**, then play. Type a new "
                    "prompt and press **Change**: it takes over from the next block. The stream stays at most 20 s "
                    "ahead of what you hear.")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="prompt", value=SHOWN["audio"]["prompt"], elem_id="live-prompt")
                fields = {}
                with gr.Accordion("more", open=False):
                    for key, value in LIVE_FIELDS:
                        option = STREAM[key] if key != "model" else LOAD["model"]
                        common = dict(label=key.replace("_", " "), info=option.describe("audio"),
                                      elem_id=f"live-{key}")
                        if key == "method":
                            fields[key] = gr.Dropdown([(m.summary, m.name) for m in METHODS.values()], value=value,
                                                      **common)
                        else:
                            fields[key] = gr.Textbox(value="" if value is None else str(value),
                                                     placeholder=f"empty: {option.unset_for('audio') or 'the default'}",
                                                     **common)
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="live-start")
                    change = gr.Button("Change", elem_id="live-change")
                    halt = gr.Button("Stop", variant="stop", elem_id="live-stop")
            with gr.Column():
                player = gr.HTML(elem_id="live-player")
                status = gr.Textbox(label="Live", interactive=False, elem_id="live-status")

        def begin(text: str, *values: Any) -> tuple[str, str]:
            given = {k: (v if v != "" else None) for k, v in zip(fields, values, strict=True)}
            model = given.pop("model")
            try:
                line = studio.live_start(text, model=model, **given)
            except SwapForwardError as error:
                return "", f"Refused: {error}"
            return (f'<audio id="live-audio" controls autoplay src="/live/stream.wav?at={time.time():.3f}">'
                    f"</audio>"), line

        def swap(text: str) -> str:
            try:
                return studio.live_change(text)
            except SwapForwardError as error:
                return f"Refused: {error}"

        start.click(begin, [prompt, *fields.values()], [player, status], api_name="live_start")
        change.click(swap, prompt, status, api_name="live_change")
        halt.click(lambda: ("", studio.live_stop()), None, [player, status], api_name="live_stop")


def serve_app(studio: Studio, demo: Any, host: str, port: int, share: bool = False) -> None:
    """Serve the app until Ctrl-C: gradio's page and, beside it, the Live tab's audio and control routes
    (/live/stream.wav, /live/status, /live/control). A share link is gradio's own server, without live audio."""
    import gradio as gr

    if share:
        demo.launch(server_name=host, server_port=port, share=True, allowed_paths=[str(studio.output_dir)])
        return
    from fastapi import FastAPI

    from .live import routes, run_server

    server = FastAPI()
    server.router.routes.extend(routes(lambda: studio.live, "/live"))
    server = gr.mount_gradio_app(server, demo, path="/", allowed_paths=[str(studio.output_dir)])
    try:
        run_server(server, host, port)
    finally:
        studio.live_stop()


def inputs_default_method(kind: str) -> str:
    return KINDS[kind].spec["method"].default_for(kind)


def seed_of(summary: str) -> int:
    """The seed a summary reports ('..., seed 5; ...')."""
    return int(re.search(r"seed (\d+)", summary).group(1))


def notice(message: str, results: int) -> tuple:
    """Outputs that leave every earlier result as it is and put `message` in the summary box."""
    import gradio as gr

    outputs = [gr.skip()] * results
    outputs[-5] = message  # the summary box comes before the command line, the history and the two menus
    return tuple(outputs)
