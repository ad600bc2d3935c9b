"""The generation options: the audio and panorama requests (every option of a pipeline call, the joint-diffusion
options both kinds share) and the rules that relate them, checked before any model loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..core.methods import METHODS, REFERENCE_PHASES, get_method
from ..errors import SwapForwardError
from ..io.inputs import clip_info, image_size
from ..prompts import settle
from .spec import RANDOM_SEED, Option, Rule, Spec, listed

#: The length of audio when neither seconds nor bars are given (the paper's 24 s loops).
DEFAULT_SECONDS = 24.0


def _prompt_rule(kind: str, extent: str) -> Rule:
    """The prompt (text or segments) or the timeline, one of them, settled against the output's `extent` option:
    starts checked, equal neighbours merged, a single segment becoming a plain prompt."""

    def rule(values: dict[str, Any], label: Callable[[str], str]) -> None:
        prompt, timeline = values["prompt"], values.pop("timeline")
        if prompt is not None and timeline is not None:
            raise SwapForwardError(f"Give either {label('prompt')} or {label('timeline')}, not both.")
        prompt = prompt if timeline is None else timeline
        if prompt is None:
            raise SwapForwardError("The prompt is empty; describe what to generate.")
        if isinstance(prompt, str):
            values["prompt"] = prompt
            return
        where = label("timeline" if timeline is not None else "prompt")
        segments = settle(list(prompt), kind, float(values[extent]), values["loop"], where)
        if len(segments) == 1:
            values["prompt"] = segments[0].prompt
            values["negative_prompt"] = segments[0].negative_prompt or values["negative_prompt"]
            return
        if get_method(values["method"]).one_prompt:
            takes = listed([m.name for m in METHODS.values() if not m.one_prompt])
            raise SwapForwardError(
                f"A {where} with several prompts works with {takes}; {values['method']} conditions every view alike."
            )
        values["prompt"] = tuple(segments)

    return rule


def _audio_input(values: dict[str, Any], label: Callable[[str], str]) -> None:
    """An input clip's kept spans on the output (default: all of it; with fill, all but those spans, and an output
    as long as the clip), and the clips' readability, checked before any model loads."""
    clip = values["init_audio"]
    if values["reference_audio"] is not None:
        _check_reference_method(values["method"], label("reference_audio"))
        clip_info(values["reference_audio"], label("reference_audio"), values["init_sample_rate"])
    if clip is None:
        for name in ("keep", "fill"):
            if values[name] is not None:
                raise SwapForwardError(f"{label(name)} keeps parts of an input clip; give {label('init_audio')} too.")
        return
    at, duration = values["init_at"], clip_info(clip, label("init_audio"), values["init_sample_rate"])
    values["init_seconds"] = duration
    if values["fill"] is None:
        values["keep"] = values["keep"] or [(at, at + duration)]
        return
    if values["keep"] is not None:
        raise SwapForwardError(f"Give {label('keep')} or {label('fill')}, not both.")
    for start, end in values["fill"]:
        if end > duration + 1e-9:
            raise SwapForwardError(f"{label('fill')} span {start:g}:{end:g} reaches past the end of "
                                   f"{label('init_audio')}, which lasts {duration:g} s.")
    if values["audio_length_in_s"] is None and values["bpm"] is None:
        values["audio_length_in_s"] = at + duration
    edges = [0.0] + [x for span in values["fill"] for x in span] + [duration]
    values["keep"] = [(at + a, at + b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b > a]


def _audio_input_fits(values: dict[str, Any], label: Callable[[str], str]) -> None:
    if values["init_audio"] is None:
        return
    seconds, at, duration = values["audio_length_in_s"], values["init_at"], values["init_seconds"]
    if at + duration > seconds + 1e-6:
        raise SwapForwardError(
            f"{label('init_audio')} lasts {duration:g} s from {at:g} s, past the end of the output ({seconds:g} s); "
            f"ask for a longer output or an earlier {label('init_at')}."
        )
    for start, end in values["keep"]:
        if start < at - 1e-6 or end > at + duration + 1e-6:
            raise SwapForwardError(f"{label('keep')} span {start:g}:{end:g} lies outside the input clip, which is at "
                                   f"{at:g} to {at + duration:g} s of the output.")


def _image_input(values: dict[str, Any], label: Callable[[str], str]) -> None:
    """An input picture's readability and fit, and its kept spans, checked before any model loads."""
    if values["reference_image"] is not None:
        _check_reference_method(values["method"], label("reference_image"))
        image_size(values["reference_image"], label("reference_image"))
    picture = values["init_image"]
    if picture is None:
        if values["keep"] is not None:
            raise SwapForwardError(f"{label('keep')} keeps parts of an input picture; give {label('init_image')} too.")
        return
    height, width = image_size(picture, label("init_image"))
    if values["height"] is not None:
        width = round(width * values["height"] / height)  # it is resized to the panorama's height
    if width > values["width"]:
        raise SwapForwardError(f"{label('init_image')} is {width} px wide at the panorama's height, wider than the "
                               f"panorama ({values['width']} px); ask for a wider panorama.")
    if isinstance(values["init_at"], float) and values["init_at"] + width > values["width"] and not values["loop"]:
        raise SwapForwardError(f"{label('init_image')} at {values['init_at']:g} px reaches past the panorama's right "
                               f"edge ({values['width']} px); place it further left or use loop.")
    for start, end in values["keep"] or []:
        if end > values["width"]:
            raise SwapForwardError(f"{label('keep')} span {start:g}:{end:g} lies outside the panorama "
                                   f"({values['width']} px).")


def _audio_length(values: dict[str, Any], label: Callable[[str], str]) -> None:
    """The length: given in seconds, or made of bars at a tempo (exactly bars x beats x 60 / bpm seconds)."""
    bpm, bars = values["bpm"], values["bars"]
    if (bpm is None) != (bars is None):
        raise SwapForwardError(f"Give {label('bpm')} and {label('bars')} together (the length is bars of beats at the "
                               f"tempo).")
    if bpm is None:
        if values["audio_length_in_s"] is None:
            values["audio_length_in_s"] = DEFAULT_SECONDS
        return
    if values["audio_length_in_s"] is not None:
        raise SwapForwardError(f"Give either {label('audio_length_in_s')} or {label('bpm')} and {label('bars')}, "
                               f"not both.")
    seconds = bars * values["beats_per_bar"] * 60.0 / bpm
    if seconds > 86400:
        raise SwapForwardError(f"{bars} bars at {bpm:g} bpm last {seconds:.0f} s; at most 86400 s (a day) can be made.")
    values["audio_length_in_s"] = seconds


def _check_reference_method(method: str, label: str) -> None:
    if not get_method(method).reference:
        having = [m.name for m in METHODS.values() if m.reference]
        raise SwapForwardError(f"{label} guides the reference view, which only {listed(having)} "
                               f"{'has' if len(having) == 1 else 'have'}; use --method {having[0]}.")


def _panorama_overlap(values: dict[str, Any], label: Callable[[str], str]) -> None:
    """The method's own panorama overlap (the paper's Table 3: 0.2 for SaFa, 0.8 for the baselines)."""
    if values["overlap"] is None:
        values["overlap"] = get_method(values["method"]).panorama_overlap


def _method_options(options: tuple[Option, ...], kind: str) -> Rule:
    """A method-specific option set (to other than its default) for a method that does not use it: one sentence."""

    def rule(values: dict[str, Any], label: Callable[[str], str]) -> None:
        method = values["method"]
        for option in options:
            if (option.per_method and values[option.name] != option.default_for(kind)
                    and method not in option.methods):
                raise SwapForwardError(f"{label(option.name)} is used by {listed(option.methods)} only; method "
                                       f"{method} ignores it (leave it out or change the method).")

    return rule


def check_multiple(label: str, value: int, multiple: int) -> None:
    """Refuse a size that is not a multiple of `multiple` pixels, naming the nearest ones allowed."""
    if value % multiple:
        lower, upper = value - value % multiple, value - value % multiple + multiple
        nearest = f"{lower} or {upper}" if lower else f"{upper}"
        raise SwapForwardError(f"{label}={value} is not a multiple of {multiple}; use {nearest}.")


def _panorama_sizes(values: dict[str, Any], label: Callable[[str], str]) -> None:
    for name in ("height", "width", "view_width"):
        if values[name] is not None:
            check_multiple(label(name), values[name], 8)
    if values["view_width"] is not None and values["view_width"] > values["width"]:
        raise SwapForwardError(
            f"{label('view_width')}={values['view_width']} is wider than the panorama ({label('width')}="
            f"{values['width']}); use a view width <= {values['width']} or a wider panorama."
        )


PROMPT = Option("prompt", "prompt", None, "What to generate: text, or (start, prompt) segments along the output.",
                optional=True, app="main", cli_label="--prompt-at")  # required by a rule, unless a timeline is given
NEGATIVE_PROMPT = Option("negative_prompt", "str", None, "What to steer away from (every segment without its own).",
                         optional=True, app="main", unset="none")
TIMELINE = Option("timeline", "timeline", None, "Prompts along the output, one 'START PROMPT[ | NEGATIVE]' per line "
                  "(audio: m:ss; panoramas: pixels or fractions of the width); the command line reads it from a file.",
                  optional=True, cli_file=True)
TRANSITION = Option("transition", "choice", "blend", "How a view across a timeline boundary is conditioned: blend "
                    "(the segments' text embeddings mixed by its share of each) or cut (the segment at its centre).",
                    choices=("blend", "cut"))

#: RePaint's resampling around kept regions (Lugmayr et al., 2022): off by default, it multiplies the model calls.
REPAINT_OPTIONS = (
    Option("repaint_resample", "int", 0, "RePaint: times to go back and redo each stretch of steps, so a kept region's "
           "boundary blends better (each time costs those steps again; DDIM only).", minimum=0, maximum=20),
    Option("repaint_jump", "int", 1, "RePaint: how many steps each resampling goes back.", minimum=1, maximum=1000),
)

#: The joint-diffusion options every kind shares, in the order the help lists them.
METHOD_OPTIONS = (
    Option("method", "choice", "safa", "Joint-diffusion method.", choices=lambda: tuple(METHODS), short="-m",
           app="main"),
    Option("loop", "bool", False, "Make the output a seamless loop (panoramas: 360 degrees).", app="main"),
    Option("overlap", "float", {"audio": 0.2, "panorama": None},
           "Overlap rate of adjacent views (panoramas default to the paper's: 0.2 for SaFa/SaFa*, else 0.8).",
           minimum=0, maximum=1, above=True, below=True, optional=True,
           unset="the method's: 0.2 for SaFa/SaFa*, else 0.8"),
    Option("r_guide", "float", 0.3, "Fraction of the steps that follow the reference view (safa: the "
           "Reference-Guided Latent Swap of Eq. 10; md-envelope: its spectral envelope).",
           minimum=0, maximum=1, per_method=True),
    Option("envelope_share", "float", 0.25, "md-envelope: how far, in log, each guided step moves every view's "
           "spectral envelope toward the reference's (1: all the way).", minimum=0, maximum=1, above=True,
           per_method=True),
    Option("swap_interval", "int", 1, "Swap interval w of Eq. 9, in latent frames or columns.", minimum=1,
           maximum=4096, per_method=True),
    Option("tail_shift", "int", 0, "SaFa+: each overlap's last N latent frames come from the right view.",
           minimum=0, maximum=4096, per_method=True),
    Option("num_inference_steps", "int", None, "Denoising steps (default: the model's; the README's Models "
           "table lists them).", field="steps", minimum=1, maximum=10000, app="main", optional=True,
           unset={"audio": "the model's: 200 for AudioLDM, 8 for distilled Stable Audio 3",
                  "panorama": "the model's: 50 for SD, 28 for FLUX.1 dev, 4 for distilled FLUX"}),
    Option("guidance_scale", "float", None, "Classifier-free guidance scale (default: the model's; 1 turns "
           "guidance off).", field="guidance", minimum=-1000, maximum=1000, optional=True,
           unset={"audio": "the model's: 3.5 for AudioLDM, 1 (off) for distilled models",
                  "panorama": "the model's: 7.5 for SD, 1 (off) for distilled models"}),
    Option("eta", "float", 0.0, "DDIM's eta (0: deterministic).", minimum=0, maximum=1),
    Option("view_batch_size", "int", None,
           "Views per model call (default: as many as fit in the GPU's free memory; 8 on the CPU).",
           minimum=1, maximum=100000, optional=True, unset="as many as fit"),
    Option("seed", "seed", None, "Random seed for reproducible output; -1 draws one and reports it (the default of "
           "the command line, jobs and the app).", minimum=RANDOM_SEED, optional=True, app="main",
           unset="-1: a random one, reported", entry_default=RANDOM_SEED),
    Option("mad_ratio", "float", 0.3, "MAD: fraction of the steps with self-attention over the whole canvas.",
           minimum=0, maximum=1, per_method=True),
    Option("sync_weight", "float", 20.0, "SyncDiffusion: weight of the LPIPS gradient step.", minimum=0,
           maximum=1e6, per_method=True),
    Option("sync_decay", "float", 0.95, "SyncDiffusion: decay of the weight per step.", minimum=0, maximum=1,
           per_method=True),
    Option("sync_ratio", "float", 1.0, "SyncDiffusion: fraction of the steps with the gradient step.", minimum=0,
           maximum=1, per_method=True),
    Option("reference_phase", "choice", "middle", "Which middle frames of each view the reference-guided swap "
           "replaces: counted from each view's first middle frame (middle: Eq. 10 read literally), the same frames "
           "in every view (local; the same as middle in the paper's geometry, where every overlap is even), or "
           "complementary frames in neighbouring views (alternate: the least copying between neighbours). The lab "
           "(docs/lab.md) favours middle over local: as consistent within one standard error, less copying. "
           "Panoramas swap whole rows, where the phase makes no difference.", choices=REFERENCE_PHASES,
           per_method=True),
)

AUDIO = Spec(
    "audio",
    (
        PROMPT,
        NEGATIVE_PROMPT,
        Option("audio_length_in_s", "float", None, f"Length of the output in seconds (default {DEFAULT_SECONDS:g}, or "
               "the bars at the tempo when bpm and bars are given).", field="seconds", short="-s", minimum=0,
               above=True, maximum=86400, optional=True, app="main",
               unset=f"{DEFAULT_SECONDS:g} s, or the bars at the tempo"),
        Option("bpm", "float", None, "Tempo in beats per minute: with bars, the output lasts exactly those bars "
               "(a loop is resampled as a circle to the exact sample count).", minimum=0, above=True, maximum=999,
               optional=True, app="main", unset="none: the length is in seconds"),
        Option("bars", "int", None, "Number of bars (with bpm).", minimum=1, maximum=10000, optional=True, app="main",
               unset="none: the length is in seconds"),
        Option("beats_per_bar", "int", 4, "Beats in a bar (with bpm and bars).", minimum=1, maximum=64),
        Option("window_seconds", "float", None, "View length in seconds (default: the model's training length).",
               minimum=0, above=True, maximum=86400, optional=True, unset="the model's training length"),
        TIMELINE,
        TRANSITION,
        Option("num_waveforms_per_prompt", "int", 1, "Takes: several results, seeds seed, seed+1, ..., made together "
               "where memory allows.", field="takes", minimum=1, maximum=64, app="main"),
        Option("rank", "choice", "none", "Order the takes by CLAP similarity to the prompt (best first).",
               choices=("none", "clap")),
        Option("init_audio", "media", None, "Your own clip to start from: kept in the output (continue it, fill a gap, "
               "loop it).", optional=True, app="main"),
        Option("init_sample_rate", "int", None, "The sample rate of an init_audio or reference_audio given as an "
               "array (Python).", minimum=1, maximum=384000, optional=True, app=""),
        Option("init_at", "float", 0.0, "Where the clip starts in the output, in seconds (rounded to a latent frame).",
               minimum=0, maximum=86400),
        Option("keep", "spans", None, "Spans of the output (seconds) that keep the clip; default: all of it.",
               optional=True),
        Option("fill", "spans", None, "Spans of the clip to regenerate (the output then has the clip's length).",
               optional=True),
        Option("keep_fade", "float", 0.1, "Seconds at a kept span's edges that blend into the generation while "
               "denoising (the last step keeps the span exactly).", minimum=0, maximum=60),
        Option("splice", "bool", True, "Write the kept spans with the clip's own samples (else the decoded latent)."),
        Option("crossfade", "float", 0.02, "Seconds of equal-power crossfade from the clip into the generation, "
               "inside a kept span's edge.", minimum=0, maximum=10),
        Option("reference_audio", "media", None, "Sounds like this: a clip whose latent is the reference view of the "
               "reference guidance (safa: the reference-guided swap; md-envelope: its envelope).", field="like",
               optional=True),
        Option("like_offset", "float", 0.0, "Where in a clip longer than a view the reference excerpt starts (s).",
               minimum=0, maximum=86400),
        *REPAINT_OPTIONS,
        *METHOD_OPTIONS,
    ),
    rules=(_audio_input, _audio_length, _audio_input_fits, _prompt_rule("audio", "audio_length_in_s"),
           _method_options(METHOD_OPTIONS, "audio")),
)


#: The continuation a stream's blocks use (pipelines/continuation.py); the lab's stream table chose the defaults.
CONTINUATIONS = ("trajectory", "replace")

#: A stream's own options (`LongAudioPipeline.stream`, `swapforward stream`), besides the audio request's.
STREAM_OPTIONS = (
    Option("block_views", "int", 2, "Stream: views per block; the first audio comes after one block, and each block "
           "adds its views' length less one overlap.", minimum=1, maximum=64, app="main"),
    Option("continuation", "choice", "trajectory", "Stream: how a block continues the last: its first frames follow "
           "the previous block's own trajectory at every step (trajectory), or its final latent re-noised (replace, "
           "the kept-clip way; the lab shows it forgets the style).", choices=CONTINUATIONS),
    Option("stream_reference", "choice", "shared", "Stream: the reference view of safa and md-envelope starts from "
           "the same noise in every block (shared: one style while the prompt stays) or from new noise (fresh).",
           choices=("shared", "fresh")),
)


def _stream_request(values: dict[str, Any], label: Callable[[str], str]) -> None:
    """What a stream cannot do, one sentence each; no length means endless (checked against a day for a timeline)."""
    for name, why in (("loop", "a stream never ends, so it has no end to join to its start"),
                      ("num_waveforms_per_prompt", "a stream is one take"), ("rank", "a stream is one take"),
                      ("bpm", "a stream's length is in seconds or endless"), ("init_audio", "a stream starts from "
                       "noise; generate from the clip with the audio command instead")):
        value, default = values[name], AUDIO[name].default_for("audio")
        if value is not None and not (isinstance(value, (bool, int, float, str)) and value == default):
            raise SwapForwardError(f"{label(name)} does not apply to a stream: {why}.")
    values["endless"] = values["audio_length_in_s"] is None
    if values["endless"]:
        values["audio_length_in_s"] = 86400.0


PANORAMA = Spec(
    "panorama",
    (
        PROMPT,
        NEGATIVE_PROMPT,
        Option("width", "int", 3200, "Panorama width in pixels.", short="-W", minimum=8, maximum=1_000_000,
               app="main"),
        Option("height", "int", None, "Height in pixels (default: the model's native size).", short="-H",
               minimum=8, maximum=100_000, optional=True, app="main", unset="the model's native size"),
        Option("view_width", "int", None, "View width in pixels (default: the model's native size; the paper: 640).",
               minimum=8, maximum=100_000, optional=True, unset="the model's native size"),
        TIMELINE,
        TRANSITION,
        Option("num_images_per_prompt", "int", 1, "Takes: several results, seeds seed, seed+1, ..., made together "
               "where memory allows.", field="takes", minimum=1, maximum=64, app="main"),
        Option("rank", "choice", "none", "Order the takes by CLIP score against the prompt (best first).",
               choices=("none", "clip")),
        Option("init_image", "media", None, "Your own picture to extend into a panorama (resized to its height).",
               optional=True, app="main"),
        Option("init_at", "position", "center", "Where the picture goes: pixels from the left, or left, center or "
               "right (rounded to 8 px)."),
        Option("keep", "spans", None, "Spans of the panorama (pixels) that keep the picture; default: all of it.",
               optional=True),
        Option("keep_fade", "float", 16.0, "Pixels at a kept span's edges that blend into the generation while "
               "denoising (the last step keeps the span exactly).", minimum=0, maximum=4096),
        Option("splice", "bool", True, "Write the kept spans with the picture's own pixels (else the decoded latent)."),
        Option("feather", "float", 16.0, "Pixels of feathered blend from the picture into the generation, inside a "
               "kept span's edge.", minimum=0, maximum=4096),
        Option("reference_image", "media", None, "Looks like this: a picture whose latent is the reference view of the "
               "reference guidance (safa: the reference-guided swap; md-envelope: its envelope).", field="like",
               optional=True),
        *REPAINT_OPTIONS,
        *METHOD_OPTIONS,
    ),
    rules=(_panorama_sizes, _image_input, _prompt_rule("panorama", "width"), _panorama_overlap,
           _method_options(METHOD_OPTIONS, "panorama")),
)

#: The stream's method: md-envelope with a shared reference keeps one style without copying (docs/lab.md, Streams).
STREAM_METHOD = replace(AUDIO["method"], default="md-envelope")

#: A stream: the audio request's options (its own default method) and the stream's, the stream's rule first.
STREAM = Spec("audio", (*(STREAM_METHOD if o.name == "method" else o for o in AUDIO.options), *STREAM_OPTIONS),
              rules=(_stream_request, *AUDIO.rules))

#: The generation requests by kind.
SPECS = {"audio": AUDIO, "panorama": PANORAMA}
