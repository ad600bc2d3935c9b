"""The commands' own options: how a model is loaded, where results are written, saving and resuming a run, and the
analysis, evaluation, lab and app commands; and the Markdown table of every option."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import SwapForwardError
from .generation import AUDIO, PANORAMA, STREAM_OPTIONS
from .spec import Option, Spec

#: dtypes by name (aliases included); "auto" is float16 on CUDA, else float32.
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
               "bfloat16": "bfloat16", "bf16": "bfloat16"}


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


#: Where `swapforward stream` sends the stream, and how it is saved, resumed and served.
STREAM_OUTPUT = Spec("stream output", (
    Option("out", "str", None, "Where the stream goes: - for standard output (a WAV stream, | ffplay -nodisp -), or "
           "a file that grows as it plays: .wav, .flac, .ogg, .opus or .mp3.", short="-o", optional=True, app="",
           metavar="FILE|-", unset="none: give a file, or - for standard output"),
    Option("format", "choice", "wav", "What --out - writes: a WAV stream (16-bit, a header for unknown length) or "
           "raw 16-bit little-endian PCM.", choices=("wav", "raw"), app=""),
    Option("sample_rate", "int", None, "Resample a file to this rate as it is written (default: the model's; "
           "Opus: 48000).", minimum=1, maximum=192000, optional=True, app="", unset="the model's; Opus: 48000"),
    Option("save_state", "path", None, "After every block, write the stream's state to FILE, so that --resume FILE "
           "continues it to the same samples.", optional=True, app="", metavar="FILE"),
    Option("resume", "path", None, "Continue the stream saved in FILE by --save-state (the same settings).",
           optional=True, app="", metavar="FILE"),
    Option("serve", "bool", False, "Serve the live stream over HTTP instead: a page with a player, the audio at "
           "/stream.wav, control at /control (JSON), status at /status.", app=""),
    Option("host", "str", "127.0.0.1", "With --serve: the address to listen on (0.0.0.0 for every interface).",
           app=""),
    Option("port", "int", 8765, "With --serve: the port.", minimum=1, maximum=65535, app=""),
    Option("ahead", "float", 20.0, "With --serve: the most seconds the stream runs ahead of playback (real-time "
           "pacing; at least one block is always made ahead).", minimum=0, maximum=86400, app=""),
), rules=(_known_rate,))


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
    Option("stream", "bool", False, "Only the stream table: how a block continues the last, 16 chained blocks per "
           "candidate (256 streams, or 64 streams of 8 blocks with --quick).", app=""),
    Option("beyond", "bool", False, "Only the worlds beyond the spectrum: styles that differ in their spectrum, in "
           "loudness over time (rates, transients), in how the channels co-vary, in all three, or as real sounds do; "
           "every method against issue 39's targets (256 canvases, or 64 with --quick).", app=""),
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
    for option in STREAM_OPTIONS:  # `stream` (Python) and `swapforward stream` only
        default = option.default_for("audio")
        rows.append(f"| `{option.name}` | `{option.flag}` | `{default}` | - | {option.allowed()} | streams | "
                    f"{option.help} |")
    return "\n".join(rows)
