"""The option machinery: an `Option` declares one value (name, type, default, range or choices, help, the methods
that use it), a `Spec` checks a request of them once (`Spec.check`, every bad value one sentence naming it as the
user wrote it) and returns a `Request`; each value type is one small `OptionType` (how text and Python values become
it, how it is said in words, its command-line metavar, the app's widget).

Plain frozen dataclasses, not pydantic: the checks are a few lines each, the messages must be one sentence naming
the value the way the user typed it (`--seconds`, a job's `seconds`, the API's `audio_length_in_s`), and this package
must import nothing heavy, so that the command line answers `--help` and bad flags without loading torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.methods import METHODS
from ..errors import SwapForwardError
from ..io.inputs import parse_spans
from ..prompts import Segment, parse_lines, to_segments

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
    unset: str | dict[str, str] = ""
    """What leaving an optional value out means, in a few words (the app shows it in the empty field); by kind when
    the kinds differ."""
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
        return TYPES[self.type].words(self)

    @property
    def shown_metavar(self) -> str:
        """How the command line's help shows the value."""
        return "|".join(self.choice_names()) if self.choice_names() else TYPES[self.type].metavar

    def unset_for(self, kind: str) -> str:
        """`unset` for requests of `kind`."""
        return self.unset.get(kind, "") if isinstance(self.unset, dict) else self.unset

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
        return TYPES[self.type].convert(self, value, label, text)


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


def _number_words(option: Option) -> str:
    noun = "a whole number" if option.type == "int" else "a finite number"
    if option.type == "float" and (option.minimum, option.maximum) == (0, 1):
        return f"{noun} between 0 and 1" + (" (exclusive)" if option.above and option.below else "")
    bounds = []
    if option.minimum is not None:
        bounds.append(f"{'>' if option.above else '>='} {_num(option.minimum)}")
    if option.maximum is not None:
        bounds.append(f"{'<' if option.below else '<='} {_num(option.maximum)}")
    return " ".join([noun, " and ".join(bounds)]) if bounds else noun


@dataclass(frozen=True)
class OptionType:
    """One type of value: how text (command line, jobs, app) and Python values become it, how it is said in words,
    the command line's metavar and the kind of widget the app gives it."""

    name: str
    convert: Callable[[Option, Any, str, bool], Any]
    """(option, value, label, value is text) -> the value, or one sentence saying what is allowed."""
    words: Callable[[Option], str]
    metavar: str
    widget: str
    """number, checkbox, text, lines (several lines of text) or file."""


def _said(words: str) -> Callable[[Option], str]:
    return lambda option: words


TYPES: dict[str, OptionType] = {t.name: t for t in (
    OptionType("float", _float, _number_words, "NUMBER", "number"),
    OptionType("int", _int, _number_words, "INTEGER", "number"),
    OptionType("seed", _seed, _said(f"a whole number from 0 to 2^64-1, or {RANDOM_SEED} for a random one"), "SEED",
               "number"),
    OptionType("bool", _bool, _said("true or false"), "", "checkbox"),
    OptionType("str", _str, _said("text"), "TEXT", "text"),
    OptionType("choice", _choice, _said("one of the choices"), "TEXT", "text"),
    OptionType("path", _path, _said("a file path"), "PATH", "text"),
    OptionType("prompt", _prompt, _said("text, or a list of (start, prompt[, negative prompt]) segments"), "TEXT",
               "text"),
    OptionType("timeline", _timeline, _said("one 'START PROMPT[ | NEGATIVE]' per line"), "FILE", "lines"),
    OptionType("media", _media, _said("a file (or, in Python, an array)"), "FILE", "file"),
    OptionType("spans", _spans, _said("START:END spans (m:ss or seconds; pixels for panoramas), separated by commas"),
               "START:END,...", "text"),
    OptionType("position", _position, _said("pixels from the left, or left, center or right"), "PX|left|center|right",
               "text"),
)}


def listed(names: list[str] | tuple[str, ...]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


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
