"""Every option of a request, declared once: name, type, default, range or choices, help, and the methods using it.

From these declarations, and nowhere else, come the one validation of a request (`Spec.check`, run once per
generation before any model work, every bad value one sentence), the command line's flags, the batch jobs' fields
and the web app's inputs. Adding an option means adding one `Option` below (and using it in the pipeline).

Plain frozen dataclasses, not pydantic: the checks are a few lines each, the messages must be one sentence naming
the value the way the user typed it (`--seconds`, a job's `seconds`, the API's `audio_length_in_s`), and this module
must import nothing heavy, so that the command line answers `--help` and bad flags without loading torch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.methods import METHODS, REFERENCE_PHASES, get_method
from .errors import SwapForwardError
from .io.inputs import clip_info, image_size, parse_spans
from .prompts import Segment, parse_lines, settle, to_segments

#: The length of audio when neither seconds nor bars are given (the paper's 24 s loops).
DEFAULT_SECONDS = 24.0
#: dtypes by name (aliases included); "auto" is float16 on CUDA, else float32.
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
               "bfloat16": "bfloat16", "bf16": "bfloat16"}

#: Seeds run from 0 to 2**64 - 1 (what torch.Generator takes); -1 asks for a random one, reported with the result.
MAX_SEED = 2**64 - 1
RANDOM_SEED = -1

#: Where a request comes from decides how options are named in messages and whether values arrive as text.
SOURCES = ("api", "cli", "job", "app")

@dataclass(frozen=True)
class Option:
    """One option: how it is named, typed, bounded and explained, and where it applies."""

    name: str
    """The pipelines' keyword argument (diffusers' names: num_inference_steps, guidance_scale, ...)."""
    type: str
    """float, int, bool, str, choice, seed or path."""
    default: Any
    """The default, or {kind: default} where audio and panoramas differ."""
    help: str
    field: str = ""
    """The command line's flag (--field) and the batch jobs' and app's field, when shorter than `name`."""
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    """The minimum itself is not allowed."""
    below: bool = False
    """The maximum itself is not allowed."""
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    """The allowed values, or a function giving them when asked (the methods: a method may be registered later)."""
    optional: bool = False
    """None is allowed: the default is decided later (the model's size, free memory, a random seed)."""
    per_method: bool = False
    """Only some methods use it: those that list it in their `Method.options`."""
    short: str = ""
    app: str = "more"
    """Where the web app shows it: "main", "more" (folded away), or "" (not in the app)."""
    metavar: str = ""
    cli_file: bool = False
    """On the command line the flag names a file whose text is the value (--timeline FILE)."""
    cli_label: str = ""
    """How command-line messages name it when that is not its flag (the prompt: an argument or --prompt-at)."""
    unset: str = ""
    """What leaving an optional value out means, in a few words (the app shows it in the empty field)."""
    entry_default: Any = None
    """The default of requests from the command line, jobs and the app, where it differs from the API's (the seed:
    -1, drawn and reported, so that any take can be made again; the API takes a generator or draws from torch's)."""

    @property
    def key(self) -> str:
        """The field name (command line, batch jobs, app)."""
        return self.field or self.name

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def label(self, source: str) -> str:
        """How a message names the option: as the user wrote it."""
        return {"api": self.name, "cli": self.cli_label or self.flag}.get(source, self.key)

    def default_for(self, kind: str, source: str = "api") -> Any:
        """The default of requests of `kind` from `source` (the front ends may have their own: `entry_default`)."""
        if source != "api" and self.entry_default is not None:
            return self.entry_default
        return self.default.get(kind) if isinstance(self.default, dict) else self.default

    def choice_names(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods that use the option; empty: every method."""
        if not self.per_method:
            return ()
        return tuple(m.name for m in METHODS.values() if self.name in m.options)

    def allowed(self) -> str:
        """What values are allowed, in words, for help texts and messages."""
        if self.choice_names():
            return "one of " + ", ".join(self.choice_names())
        if self.type == "seed":
            return f"a whole number from 0 to 2^64-1, or {RANDOM_SEED} for a random one"
        if self.type == "bool":
            return "true or false"
        if self.type in ("str", "path"):
            return "text" if self.type == "str" else "a file path"
        if self.type == "prompt":
            return "text, or a list of (start, prompt[, negative prompt]) segments"
        if self.type == "timeline":
            return "one 'START PROMPT[ | NEGATIVE]' per line"
        if self.type == "media":
            return "a file (or, in Python, an array)"
        if self.type == "spans":
            return "START:END spans (m:ss or seconds; pixels for panoramas), separated by commas"
        if self.type == "position":
            return "pixels from the left, or left, center or right"
        noun = "a whole number" if self.type == "int" else "a finite number"
        if self.type == "float" and (self.minimum, self.maximum) == (0, 1):
            return f"{noun} between 0 and 1" + (" (exclusive)" if self.above and self.below else "")
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.above else '>='} {_num(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.below else '<='} {_num(self.maximum)}")
        return " ".join([noun, " and ".join(bounds)]) if bounds else noun

    def describe(self, kind: str, default: Any = None, show_default: bool = True) -> str:
        """One line of help: what it does, which methods use it, its default."""
        default = self.default_for(kind) if default is None else default
        parts = [self.help if self.help.endswith("...") else self.help.removesuffix(".")]
        if self.methods:
            parts.append(f"{', '.join(self.methods)} only")
        if show_default and default is not None and self.type != "bool":
            parts.append(f"default {default}")
        return "; ".join(parts) + "."

    def convert(self, value: Any, source: str = "api") -> Any:
        """`value` checked and converted, or one sentence saying what is allowed. Text is parsed from every
        source but the API, where Python values are expected."""
        label = self.label(source)
        text = isinstance(value, str) and source != "api"
        if value is None or (text and value.strip() == "" and self.type != "str"):
            if self.optional:
                return None
            raise SwapForwardError(f"{label} needs a value: {self.allowed()}.")
        converter = _CONVERTERS[self.type]
        return converter(self, value, label, text)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _bad(option: Option, label: str, value: Any) -> SwapForwardError:
    return SwapForwardError(f"{label} must be {option.allowed()}, got {value!r}.")


def _bounded(option: Option, label: str, value: Any, number: float) -> None:
    low, high = option.minimum, option.maximum
    if (low is not None and (number < low or (option.above and number == low))) or (
        high is not None and (number > high or (option.below and number == high))
    ):
        raise _bad(option, label, value)


def _float(option: Option, value: Any, label: str, text: bool) -> float:
    if isinstance(value, bool):
        raise _bad(option, label, value)
    try:
        number = float(value.strip()) if text else float(value)
    except (TypeError, ValueError, OverflowError):
        raise _bad(option, label, value) from None
    if not math.isfinite(number) or (isinstance(value, str) and not text):
        raise _bad(option, label, value)
    _bounded(option, label, value, number)
    return number


def _int(option: Option, value: Any, label: str, text: bool) -> int:
    if isinstance(value, bool):
        raise _bad(option, label, value)
    number: Any = value
    if text:
        try:
            number = int(value.strip())
        except ValueError:
            raise _bad(option, label, value) from None
    elif isinstance(value, float) and value.is_integer():  # browsers and JSON send 200.0
        number = int(value)
    if not hasattr(number, "__index__") or isinstance(number, str):
        raise _bad(option, label, value)
    _bounded(option, label, value, int(number))
    return int(number)


def _seed(option: Option, value: Any, label: str, text: bool) -> int:
    number = _int(option, value, label, text)
    if number != RANDOM_SEED and not 0 <= number <= MAX_SEED:
        raise _bad(option, label, value)
    return number


def _bool(option: Option, value: Any, label: str, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if text and value.strip().lower() in ("1", "true", "yes", "y", "on"):
        return True
    if text and value.strip().lower() in ("0", "false", "no", "n", "off"):
        return False
    raise _bad(option, label, value)


def _str(option: Option, value: Any, label: str, text: bool) -> str | None:
    if not isinstance(value, str):
        raise _bad(option, label, value)
    if value.strip():
        return value
    if option.optional:
        return None
    raise SwapForwardError(f"{label} is empty; give some text.")


def _prompt(option: Option, value: Any, label: str, text: bool) -> str | tuple[Segment, ...] | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        return tuple(to_segments(value, label, text=True))
    raise _bad(option, label, value)


def _timeline(option: Option, value: Any, label: str, text: bool) -> tuple[Segment, ...] | None:
    if isinstance(value, str):
        return tuple(parse_lines(value, label)) if value.strip() else None
    if isinstance(value, (list, tuple)):
        return tuple(to_segments(value, label, text=True))
    raise _bad(option, label, value)


def _media(option: Option, value: Any, label: str, text: bool) -> Any:
    if isinstance(value, (str, os.PathLike)):
        if not str(value).strip():
            raise _bad(option, label, value)
        return Path(value).expanduser()
    if hasattr(value, "shape") or hasattr(value, "size") and hasattr(value, "mode"):  # arrays, tensors, PIL images
        return value
    raise _bad(option, label, value)


def _spans(option: Option, value: Any, label: str, text: bool) -> list[tuple[float, float]]:
    if not isinstance(value, (str, list, tuple)):
        raise _bad(option, label, value)
    return parse_spans(value, label)


def _position(option: Option, value: Any, label: str, text: bool) -> float | str:
    if isinstance(value, str) and value.strip().lower() in ("left", "center", "centre", "right"):
        return value.strip().lower().replace("centre", "center")
    return _float(option, value, label, text)


def _choice(option: Option, value: Any, label: str, text: bool) -> str:
    if isinstance(value, str) and value.strip().lower() in option.choice_names():
        return value.strip().lower()
    raise SwapForwardError(f"Unknown {label} {value!r}; use one of: {', '.join(option.choice_names())}.")


def _path(option: Option, value: Any, label: str, text: bool) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise _bad(option, label, value)
    return Path(value).expanduser()


_CONVERTERS: dict[str, Callable[[Option, Any, str, bool], Any]] = {
    "float": _float, "int": _int, "seed": _seed, "bool": _bool, "str": _str, "choice": _choice, "path": _path,
    "prompt": _prompt, "timeline": _timeline, "media": _media, "spans": _spans, "position": _position,
}


class Request(Mapping[str, Any]):
    """A checked request: every option of its spec by name, read as `request.r_guide` or `request["r_guide"]`."""

    def __init__(self, kind: str, values: dict[str, Any]):
        self._kind, self._values = kind, dict(values)

    @property
    def spec_kind(self) -> str:
        """Which spec checked it (audio, panorama, load, ...); options are read by name, `kind` included."""
        return self._kind

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Request:
        return Request(self._kind, {**self._values, **changes})

    def __repr__(self) -> str:
        return f"Request({self._kind!r}, {self._values!r})"


Rule = Callable[[dict[str, Any], Callable[[str], str]], None]


@dataclass(frozen=True)
class Spec:
    """The options of one kind of request, and the rules that relate them (checked after each option alone)."""

    kind: str
    options: tuple[Option, ...]
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self) -> None:
        keys = [o.key for o in self.options] + [o.name for o in self.options if o.field]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate option names in the {self.kind} spec")

    def __getitem__(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name or o.key == name)

    def names(self) -> list[str]:
        return [o.name for o in self.options]

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default_for(self.kind) for o in self.options}

    def check(self, values: Mapping[str, Any], source: str = "api") -> Request:
        """Every value checked once (missing ones take their defaults); one sentence for the first bad one.

        `values` are keyed by option name (API) or field name (command line, jobs, app); unknown keys are refused.
        """
        by_key = {o.name if source == "api" else o.key: o for o in self.options}
        unknown = [k for k in values if k not in by_key]
        if unknown:
            known = ", ".join(sorted(by_key))
            raise SwapForwardError(f"Unknown option {unknown[0]!r} for {self.kind}; known: {known}.")
        checked = {}
        for key, option in by_key.items():
            default = option.default_for(self.kind)
            if option.type == "path" and default is not None:
                default = Path(default)
            checked[option.name] = option.convert(values[key], source) if key in values else default
            if checked[option.name] is None and option.entry_default is not None:  # an empty field: its source's
                checked[option.name] = option.default_for(self.kind, source)
        for rule in self.rules:
            rule(checked, lambda name: self[name].label(source))
        return Request(self.kind, checked)


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


def listed(names: list[str] | tuple[str, ...]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def _check_reference_method(method: str, label: str) -> None:
    if not get_method(method).reference:
        having = [m.name for m in METHODS.values() if m.reference]
        raise SwapForwardError(f"{label} guides the reference swap, which only {listed(having)} "
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
    Option("r_guide", "float", 0.3, "Fraction of the steps with the Reference-Guided Latent Swap (Eq. 10).",
           minimum=0, maximum=1, per_method=True),
    Option("swap_interval", "int", 1, "Swap interval w of Eq. 9, in latent frames or columns.", minimum=1,
           maximum=4096, per_method=True),
    Option("tail_shift", "int", 0, "SaFa+: each overlap's last N latent frames come from the right view.",
           minimum=0, maximum=4096, per_method=True),
    Option("num_inference_steps", "int", None, "Denoising steps (default: the model's; the README's Models "
           "table lists them).", field="steps", minimum=1, maximum=10000, app="main", optional=True,
           unset="the model's: 200 for AudioLDM, 50 for SD, 8 for distilled Stable Audio 3"),
    Option("guidance_scale", "float", None, "Classifier-free guidance scale (default: the model's; 1 turns "
           "guidance off).", field="guidance", minimum=-1000, maximum=1000, optional=True,
           unset="the model's: 3.5 for audio, 7.5 for SD, 1 (off) for distilled models"),
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
    Option("reference_phase", "choice", "local", "Which middle frames of each view the reference-guided swap "
           "replaces: the same frames in every view (local; the same as middle in the paper's geometry), counted "
           "from each view's first middle frame (middle, Eq. 10 read literally), or complementary frames in "
           "neighbouring views (alternate: less copying between neighbours; see docs/lab.md). Panoramas swap whole "
           "rows, where the phase makes no difference.", choices=REFERENCE_PHASES, per_method=True),
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
               "reference-guided swap (safa).", field="like", optional=True),
        Option("like_offset", "float", 0.0, "Where in a clip longer than a view the reference excerpt starts (s).",
               minimum=0, maximum=86400),
        *REPAINT_OPTIONS,
        *METHOD_OPTIONS,
    ),
    rules=(_audio_input, _audio_length, _audio_input_fits, _prompt_rule("audio", "audio_length_in_s"),
           _method_options(METHOD_OPTIONS, "audio")),
)

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
               "reference-guided swap (safa).", field="like", optional=True),
        *REPAINT_OPTIONS,
        *METHOD_OPTIONS,
    ),
    rules=(_panorama_sizes, _image_input, _prompt_rule("panorama", "width"), _panorama_overlap,
           _method_options(METHOD_OPTIONS, "panorama")),
)

#: Schedulers by name -> diffusers class; "paper" is DDIM for DDPM-type models, "default" the model's own.
SCHEDULER_CLASSES = {"ddim": "DDIMScheduler", "dpm": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler",
                     "unipc": "UniPCMultistepScheduler"}
SCHEDULER_CHOICES = ("paper", "default", *SCHEDULER_CLASSES)
#: The model each kind loads when none is named.
DEFAULT_MODELS = {"audio": "cvssp/audioldm-s-full-v2", "panorama": "stabilityai/stable-diffusion-2-base"}
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _device_name(values: dict[str, Any], label: Callable[[str], str]) -> None:
    if not DEVICE_PATTERN.fullmatch(values["device"]):
        raise SwapForwardError(f"Unknown {label('device')} {values['device']!r}; use auto, cpu, mps, cuda or cuda:N.")


#: How a model is loaded: the same for the command line, batch jobs (per job) and the app (per studio).
LOAD = Spec(
    "load",
    (
        Option("model", "str", None, "Hugging Face hub id or local folder (default per kind).", optional=True),
        Option("scheduler", "choice", "paper", "paper (DDIM; SD 3 keeps flow matching), default (the model's own), "
               "ddim, dpm, euler or unipc.", choices=SCHEDULER_CHOICES, app=""),
        Option("device", "str", "auto", "auto (CUDA, then MPS, then CPU), cpu, mps, cuda or cuda:N.", app=""),
        Option("dtype", "choice", "auto", "auto (float16 on CUDA, else float32), float32, float16 or bfloat16.",
               choices=("auto", *DTYPE_NAMES), app=""),
        Option("compile", "bool", False, "torch.compile the denoiser (CUDA graphs on a GPU): pays for long runs and "
               "batches, costs a compile first.", app=""),
    ),
    rules=(_device_name,),
)

SPECS = {"audio": AUDIO, "panorama": PANORAMA}

#: Sample rates a file may be written at.
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


def _known_rate(values: dict[str, Any], label: Callable[[str], str]) -> None:
    if values["sample_rate"] is not None and values["sample_rate"] not in SAMPLE_RATES:
        raise SwapForwardError(f"{label('sample_rate')} must be one of {', '.join(map(str, SAMPLE_RATES))} Hz, got "
                               f"{values['sample_rate']}.")


SIDECAR = Option("sidecar", "bool", False, "Also write the settings that made each file to FILE.json beside it.",
                 app="")

#: Where a command line run or a batch job writes its result, and how.
OUTPUT = {
    "audio": Spec("audio output", (
        Option("out", "path", "swapforward.wav", "Output file: .wav (float32), .flac (24-bit), .mp3, .ogg (Vorbis) "
               "or .opus, by extension; takes are numbered name_0, name_1, ...", short="-o", app=""),
        Option("spectrogram", "path", None, "Also write a PNG of the mel spectrogram with the views marked.",
               optional=True, app=""),
        Option("sample_rate", "int", None, "Resample the file to this rate (e.g. 44100 or 48000; default: the "
               "model's; Opus: 48000).", minimum=1, maximum=192000, optional=True, unset="the model's; Opus: 48000"),
        Option("loudness", "float", None, "Bring each file to this integrated loudness in LUFS (e.g. -14), "
               "never clipping: the true peak stays at -1 dBTP.", minimum=-70, maximum=0, optional=True,
               unset="as generated"),
        SIDECAR,
    ), rules=(_known_rate,)),
    "panorama": Spec("panorama output", (
        Option("out", "path", "panorama.png", "Output file: .png, .jpg or .webp, by extension; takes are numbered "
               "name_0, name_1, ...", short="-o", app=""),
        SIDECAR,
    )),
}


#: Saving a long run's state and resuming it (pipelines/resume.py): the command line's, and `generate`'s arguments.
RUN = Spec("run", (
    Option("save_state", "path", None, "Write the run's state to FILE every --save-every steps, so that --resume FILE "
           "can finish it after an interruption (a preempted machine, a crash).", optional=True, app="",
           metavar="FILE"),
    Option("save_every", "int", 10, "Steps between two writes of --save-state.", minimum=1, maximum=100000, app=""),
    Option("resume", "path", None, "Continue the run saved in FILE by --save-state, with the same settings: the "
           "result is the uninterrupted run's, bit for bit.", optional=True, app="", metavar="FILE"),
))


#: The CLAP checkpoints the evaluation offers: transformers ports of LAION-CLAP, HTSAT-tiny without and with feature
#: fusion, and the larger HTSAT-base general and music-and-speech ones.
CLAP_MODELS = ("clap-htsat-unfused", "clap-htsat-fused", "larger-clap-general", "larger-clap-music-and-speech")


def _kind_choice(help_text: str) -> Option:
    return Option("kind", "choice", "audio", help_text, choices=("audio", "panorama"), app="")


#: The other commands' options, declared and checked the same way.
ANALYZE = Spec("analyze", (
    _kind_choice("What to analyse: audio or panorama."),
    Option("out_dir", "path", "analysis", "Folder for analysis.png, .csv and .json.", short="-o", app=""),
    Option("every", "int", 10, "Record the latent every this many steps.", minimum=1, maximum=10000, app=""),
))

EVALUATE = Spec("eval", (
    _kind_choice("What the folder holds: audio or panorama."),
    Option("reference", "path", None, "Folder of reference clips or images.", optional=True, app=""),
    Option("prompt", "str", None, "The prompt, for the CLAP / CLIP score.", optional=True, app=""),
    Option("out", "path", "metrics.json", "JSON report.", short="-o", app=""),
    Option("markdown", "path", None, "Also a Markdown table.", optional=True, app=""),
    Option("window_seconds", "float", 10.0, "Audio crop length in seconds.", minimum=0, above=True, maximum=3600,
           app=""),
    Option("overlap", "float", 0.2, "Overlap rate of successive audio crops (Table 2).", minimum=0, maximum=1,
           below=True, app=""),
    Option("step_seconds", "float", None, "A fixed crop step in seconds instead (Table 5: 8).", minimum=0,
           above=True, maximum=3600, optional=True, app=""),
    Option("crop", "int", None, "Panorama crop size in pixels (default: the height).", minimum=8, maximum=100_000,
           optional=True, app=""),
    Option("reference_model", "str", None, "Without --reference: make the reference set with this base model.",
           optional=True, app=""),
    Option("reference_samples", "int", 500, "Size of a generated reference set.", minimum=2, maximum=1_000_000,
           app=""),
    Option("clap_model", "choice", "clap-htsat-unfused", "CLAP checkpoint for the CLAP score and Intra-CLAP "
           "(transformers ports of LAION-CLAP; the paper does not say which it used).",
           choices=CLAP_MODELS, app=""),
    Option("clap_normalize", "choice", "none", "Scale each crop before CLAP: as written (none) or to a peak of 1 "
           "(peak); published evaluations differ.", choices=("none", "peak"), app=""),
))

LAB = Spec("lab", (
    Option("quick", "bool", False, "A smaller run of the main rows (25 steps, 128 styles canvases): 16 s on two idle "
           "CPU cores, about a minute when they are busy.", app=""),
    Option("out_dir", "path", "lab", "Folder for lab.md, lab.json and lab.png.", short="-o", app=""),
    Option("scheduler", "choice", "ddim", "The sampler: DDIM with epsilon or v prediction, or flow matching (Euler, "
           "SD 3 style).", choices=("ddim", "ddim-v", "flow"), app=""),
    Option("steps", "int", None, "Denoising steps (default 50, or 25 with --quick).", minimum=1, maximum=1000,
           optional=True, app=""),
    Option("samples", "int", None, "Canvases sampled in the styles world (default 512, or 128 with --quick).",
           minimum=2, maximum=100_000, optional=True, app=""),
    Option("seed", "int", 0, "Seed of the styles world's samples and the kept clip.", minimum=0, maximum=2**63 - 1,
           app=""),
))

SERVE = Spec("app", (
    Option("audio_model", "str", DEFAULT_MODELS["audio"], "Default audio model (hub id or folder).", app=""),
    Option("image_model", "str", DEFAULT_MODELS["panorama"], "Default image model (hub id or folder).", app=""),
    Option("host", "str", "127.0.0.1", "Address to listen on; 0.0.0.0 for every interface.", app=""),
    Option("port", "int", 7860, "Port to listen on.", minimum=1, maximum=65535, app=""),
    Option("share", "bool", False, "Also open a temporary public gradio.live link.", app=""),
    Option("output_dir", "path", None, "Folder that keeps every result (default: a new temporary folder).",
           optional=True, app=""),
))


def markdown_table() -> str:
    """Every option of both kinds, as a Markdown table: the README's, and `swapforward options`."""
    rows = ["| API argument | flag / job field | audio default | panorama default | allowed | used by | what |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    seen: dict[str, Option] = {}
    for spec in (AUDIO, PANORAMA):
        for option in spec.options:
            seen.setdefault(option.name, option)
    for name, option in seen.items():
        defaults = []
        for spec in (AUDIO, PANORAMA):
            known = any(o.name == name for o in spec.options)
            value = spec[name].default_for(spec.kind) if known else "-"
            defaults.append("none" if value is None else f"`{value}`" if value != "-" else "-")
        flag = "`PROMPT` (argument), `prompt`" if name == "prompt" else f"`{option.flag}`" + (
            f", `{option.short}`" if option.short else "") + (f", `{option.key}`" if option.field else "")
        allowed = {spec.kind: spec[name].allowed() for spec in (AUDIO, PANORAMA) if name in spec.names()}
        allowed_text = "; ".join(f"{kind}: {words}" for kind, words in allowed.items()) if len(
            set(allowed.values())) > 1 else option.allowed()
        rows.append(f"| `{name}` | {flag} | {defaults[0]} | {defaults[1]} | {allowed_text} | "
                    f"{', '.join(option.methods) or 'all'} | {option.help} |")
    return "\n".join(rows)
