"""The `swapforward` command line: `swapforward audio PROMPT --seconds 60 --out rain.wav`.

The flags of every option of a request are made from the option specification (`swapforward.options`), where each
one's name, help, default and checks are declared once. Their values arrive as text and are checked by the spec, so
a bad value gets the spec's one sentence. Torch, diffusers and transformers are imported only when a model is
needed: `--help`, `methods` and a bad flag answer at once.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.methods import METHODS
from ..errors import SwapForwardError
from ..io.files import check_output_folder, check_output_path
from ..options import (
    ANALYZE,
    AUDIO,
    EVALUATE,
    LAB,
    LOAD,
    OUTPUT,
    PANORAMA,
    RUN,
    SERVE,
    SPECS,
    STREAM,
    STREAM_OUTPUT,
    Option,
    Request,
    Spec,
)
from ..prompts import describe, words
from ..runtime.signals import Interrupted, deferred
from .common import (
    LONG_RUN_SECONDS,
    check_fits,
    check_loudness,
    check_outputs,
    check_ranking,
    in_their_words,
    load_model,
    memory_estimate,
    quiet_libraries,
    request_takes,
    save_result,
)
from .registry import KINDS, Kind
from .summary import seed_summary, views_summary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Arbitrarily long, loopable audio and panoramas from pretrained latent diffusion models (SaFa and baselines).",
)


def fail(message: str) -> None:
    """A user mistake: one sentence on stderr (from the first process only under torchrun), exit status 2."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line and exit status 2, and an interrupt into 130; nothing half-written."""
    try:
        yield
    except SwapForwardError as error:
        fail(str(error))
    except KeyboardInterrupt as stop:
        typer.echo(f"interrupted ({getattr(stop, 'name', 'SIGINT')}); nothing was written.", err=True)
        raise typer.Exit(code=getattr(stop, "status", 130)) from None


def flag(option: Option, kind: str, default: Any = None) -> inspect.Parameter:
    """The command-line parameter of `option`: a text flag the spec checks (a switch for booleans)."""
    shown = option.describe(kind, default)
    if option.type == "bool":
        info = typer.Option(None, f"{option.flag}/--no-{option.flag[2:]}", help=shown)
        annotation: Any = Optional[bool]
    else:
        names = [option.flag, option.short] if option.short else [option.flag]
        info = typer.Option(None, *names, help=shown, metavar=option.shown_metavar, show_default=False)
        annotation = Optional[str]
    return inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


#: What joins the two values of `--prompt-at START PROMPT` into the one value typer parses.
PAIR = "\x1f"


class PairedPromptCommand(typer.core.TyperCommand):
    """A command whose `--prompt-at` takes two values, START and PROMPT, and may be repeated (typer's options take
    one value when repeated): each pair is joined before parsing and split again by `prompt_pairs`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        joined, i = [], 0
        while i < len(args):
            if args[i] == "--prompt-at" and i + 2 < len(args) and not args[i + 2].startswith("--"):
                joined += ["--prompt-at", f"{args[i + 1]}{PAIR}{args[i + 2]}"]
                i += 3
            else:
                joined.append(args[i])
                i += 1
        return super().parse_args(ctx, joined)


def prompt_pairs(values: list[str] | None) -> list[tuple[str, str]] | None:
    """The (START, PROMPT) pairs of the repeated `--prompt-at`."""
    if not values:
        return None
    pairs = []
    for value in values:
        start, separator, prompt = value.partition(PAIR)
        if not separator:
            raise SwapForwardError(f"--prompt-at takes two values, START and PROMPT, got only {start!r}.")
        pairs.append((start, prompt))
    return pairs


def command(name: str, flags: Sequence[inspect.Parameter], cls: type | None = None) -> Callable[[Callable], Callable]:
    """Register `func(given, **explicit)` as the command `name`, with its own parameters plus `flags`; `given` holds
    the flags the user typed (as text), keyed by field name."""

    def decorate(func: Callable) -> Callable:
        hints = typing.get_type_hints(func)
        explicit = [p.replace(annotation=hints.get(p.name, p.annotation))
                    for p in list(inspect.signature(func).parameters.values())[1:]]
        keys = {p.name for p in flags}

        def run(**values: Any) -> Any:
            given = {k: v for k, v in values.items() if k in keys and v is not None}
            return func(given, **{k: v for k, v in values.items() if k not in keys})

        params = explicit + list(flags)
        run.__signature__ = inspect.Signature(params)
        run.__annotations__ = {p.name: p.annotation for p in params}
        run.__name__, run.__doc__ = func.__name__, func.__doc__
        app.command(name=name, cls=cls)(run)
        return func

    return decorate


def pick(given: Mapping[str, Any], spec: Spec, source: str = "cli") -> Request:
    """`spec`'s share of the typed values, checked by it (flags that name a file hand the spec its text)."""
    values = {}
    for option in spec.options:
        if option.key in given:
            values[option.key] = read_flag_file(option, given[option.key]) if option.cli_file else given[option.key]
    return spec.check(values, source)


def read_flag_file(option: Option, path: str) -> str:
    try:
        text = Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SwapForwardError(f"Cannot read {option.flag} {path!r}: {reason}.") from None
    if not text.strip():
        raise SwapForwardError(f"{option.flag} {path!r} is empty; write {option.allowed()}.")
    return text


def load_flags(kind: Kind | None = None, model: bool = False) -> list[inspect.Parameter]:
    """The flags of how a model is loaded (--model with a kind, whose default model it shows, or with `model`)."""
    return [flag(o, "load", kind.default_model if o.name == "model" and kind else None)
            for o in LOAD.options if o.name != "model" or kind is not None or model]


def generation_flags(kind: Kind) -> list[inspect.Parameter]:
    """Every flag of `swapforward audio|panorama`: the request's options, how to load the model, where to write."""
    request = [flag(o, kind.name) for o in kind.spec.options if o.name != "prompt"]
    output = [flag(o, kind.name) for o in OUTPUT[kind.name].options]
    return request + load_flags(kind) + output + [flag(o, kind.name) for o in RUN.options]


def summary(kind: Kind, result: Any, out: Path, wall: float) -> str:
    """The line a finished generation prints."""
    seed = seed_summary(result)
    tail = (f", {seed}" if seed else "") + timeline_summary(kind, result)
    if kind.name == "audio":
        import soundfile as sf

        rate = sf.info(str(out)).samplerate  # the file's rate: --sample-rate and Opus resample the result
        return (f"{out}: {result.seconds:.2f} s of {result.method} audio at {rate} Hz from "
                f"{views_summary(result)}, {wall:.1f} s wall, real-time factor {wall / result.seconds:.2f}" + tail)
    w, h = result.image.size
    return f"{out}: {w} x {h} {result.method} panorama from {views_summary(result)}, {wall:.1f} s wall" + tail


def timeline_summary(kind: Kind, result: Any) -> str:
    """'; timeline: 0:00 rain -> 0:30 storm', or '' for one prompt."""
    segments = result.segments
    from ..prompts import Segment

    return f"; timeline: {describe([Segment(*s) for s in segments], kind.name)}" if segments else ""


def generate(kind: Kind, prompt: str | None, prompt_at: list[str] | None, given: dict[str, Any]) -> None:
    """Check everything, load the model, generate, write, and print one summary line."""
    with user_errors():
        prompt_at = prompt_pairs(prompt_at)
        if prompt_at and prompt is not None:
            raise SwapForwardError("Give the prompt either as the argument or with --prompt-at, not both.")
        request = pick({**given, "prompt": list(prompt_at) if prompt_at else prompt}, kind.spec)
        load = pick(given, LOAD)
        output = pick(given, OUTPUT[kind.name])
        takes = request_takes(request)
        check_outputs(kind, output, takes)
        if kind.name == "audio":
            check_loudness(request, output)
        check_ranking(request)
        check_fits(kind, request, lambda name: kind.spec[name].label("cli"))
        run = pick(given, RUN)
        if run.resume is not None and not run.resume.is_file():
            raise SwapForwardError(f"Cannot resume from {str(run.resume)!r}: no such file.")
        if run.save_state is not None:
            check_output_path(run.save_state, None)
        from ..runtime import distributed

        shared = distributed.join_from_environment()  # under torchrun: one piece, its views shared by the processes
        long_run = kind.name == "audio" and request.audio_length_in_s >= LONG_RUN_SECONDS
        note = f" ({memory_estimate(kind, request)})" if long_run else ""
        announce = (lambda line: typer.echo(line + note, err=True)) if distributed.is_first() else None
        pipe = load_model(kind, load, device=distributed.process_device(load.device) if shared else None,
                          announce=announce)
        start = time.perf_counter()
        try:
            result = pipe.generate(request, progress_bar=True, save_state=run.save_state, save_every=run.save_every,
                                   resume_from=run.resume)
        except SwapForwardError as error:
            raise in_their_words(error, kind, "cli") from None
        except (RuntimeError, OSError) as error:
            failure = distributed.peer_failure(error) if shared else None
            if failure is None:
                raise
            typer.echo(f"error: {failure}", err=True)
            raise typer.Exit(code=1) from None
        if not distributed.is_first():
            return  # the first process writes the file and prints
        paths: list[Path] = []
        try:
            with deferred():  # a signal while writing waits until every file of the result is written
                paths = save_result(result, output, request)
        except Interrupted as stop:
            typer.echo(f"interrupted ({stop.name}) while writing; the output was written whole: {paths[0]}", err=True)
            raise typer.Exit(code=stop.status) from None
        wall = time.perf_counter() - start
    typer.echo(summary(kind, result, paths[0], wall))
    if len(paths) > 1:
        typer.echo("takes: " + "; ".join(take_line(path, take) for path, take in zip(paths, result.takes, strict=True)))
    stretch = result.info.get("time_stretch", 1.0)
    if stretch != 1.0:
        typer.echo(f"note: the loop's {result.info['decoded_samples']} samples of whole latent frames were resampled "
                   f"as a circle to exactly {result.audio.shape[-1]} ({(stretch - 1) * 100:+.3f}% in duration, the "
                   f"same change in pitch and tempo).")


def take_line(path: Path, take: Any) -> str:
    score = take.info.get("score")
    return f"{path} seed {take.info.get('seed')}" + ("" if score is None else f" score {score:.3f}")


PROMPT_AT = typer.Option(None, "--prompt-at", metavar="START PROMPT",
                         help="A timeline segment: from START (audio: m:ss or seconds; panoramas: pixels or a fraction "
                              "of the width) on, PROMPT. Repeat it; the positional prompt is then left out.")


@command("audio", generation_flags(KINDS["audio"]), PairedPromptCommand)
def audio(
    given: dict,
    prompt: Optional[str] = typer.Argument(None, help="What the audio should sound like."),
    prompt_at: Optional[list[str]] = PROMPT_AT,
) -> None:
    """Generate long audio from a text prompt (or a timeline of prompts) as WAV, FLAC, MP3, Ogg or Opus."""
    generate(KINDS["audio"], prompt, prompt_at, given)


def stream_flags() -> list[inspect.Parameter]:
    """Every flag of `swapforward stream`: the stream's request, how to load the model, where the stream goes."""
    return ([flag(o, "audio") for o in STREAM.options if o.name != "prompt"] + load_flags(KINDS["audio"]) +
            [flag(o, "stream") for o in STREAM_OUTPUT.options])


@command("stream", stream_flags(), PairedPromptCommand)
def stream(
    given: dict,
    prompt: Optional[str] = typer.Argument(None, help="What the stream should sound like."),
    prompt_at: Optional[list[str]] = PROMPT_AT,
) -> None:
    """Stream endless audio (or --seconds of it) as it is made: to standard output (--out - | ffplay -nodisp -), to a
    file that plays while it grows, or over HTTP (--serve). Ctrl-C ends it; the file is complete up to there."""
    from .stream import check_stream_output, play_out

    with user_errors():
        prompt_at = prompt_pairs(prompt_at)
        if prompt_at and prompt is not None:
            raise SwapForwardError("Give the prompt either as the argument or with --prompt-at, not both.")
        request = pick({**given, "prompt": list(prompt_at) if prompt_at else prompt}, STREAM)
        load, output = pick(given, LOAD), pick(given, STREAM_OUTPUT)
        check_stream_output(output, sys.stdout.isatty())
        if output.resume is not None and not output.resume.is_file():
            raise SwapForwardError(f"Cannot resume from {str(output.resume)!r}: no such file.")
        pipe = load_model(KINDS["audio"], load, announce=lambda line: typer.echo(line, err=True))
        live = pipe.open_stream(request, progress_bar=False, resume_from=output.resume)
        if output.serve:
            from .live import serve

            return serve(live, output, lambda line: typer.echo(line, err=True))
        line = play_out(live, output, lambda line: typer.echo(line, err=True))
    typer.echo(line, err=True)


@command("panorama", generation_flags(KINDS["panorama"]), PairedPromptCommand)
def panorama(
    given: dict,
    prompt: Optional[str] = typer.Argument(None, help="What the panorama should show."),
    prompt_at: Optional[list[str]] = PROMPT_AT,
) -> None:
    """Generate a wide (or 360-degree) panorama from a text prompt (or prompts by region) as PNG, JPEG or WebP."""
    generate(KINDS["panorama"], prompt, prompt_at, given)


@command("batch", load_flags(model=True))
def batch(
    given: dict,
    jobs: Path = typer.Argument(..., help="Jobs file: JSON Lines (.jsonl) or CSV (.csv), one job per line."),
) -> None:
    """Run many jobs, skipping those whose output exists; under `accelerate launch` each process takes its share.

    A job sets any option of `swapforward audio` or `panorama` by its flag's name (seconds, steps, r_guide, ...),
    plus prompt, out and kind; the flags here are the defaults of every job (the device is the process's).
    """
    from .batch import load_jobs, run_batch

    with user_errors():
        defaults = pick(given, LOAD)
        all_jobs = load_jobs(jobs, defaults)
    code = run_batch(all_jobs, defaults, echo=typer.echo)
    if code:
        raise typer.Exit(code=code)


def analysis_flags() -> list[inspect.Parameter]:
    """The analysis's own options, the request options it takes (each kind's own apply), and how to load."""
    names = ("audio_length_in_s", "window_seconds", "overlap", "loop", "num_inference_steps", "seed")
    own = [flag(o, "analyze") for o in ANALYZE.options]
    own += [flag(AUDIO[n], "audio") for n in names] + [flag(PANORAMA[n], "panorama") for n in ("width", "height",
                                                                                                "view_width")]
    return own + load_flags(KINDS["audio"])


@command("analyze", analysis_flags())
def analyze(
    given: dict,
    prompt: Optional[str] = typer.Argument(None, help="What to generate while recording the latents."),
    methods_: list[str] = typer.Option(["safa", "safa-selfloop", "md", "md-tri"], "--method", "-m",
                                       help="Methods to compare (repeat the option)."),
) -> None:
    """The paper's Fig. 2(b): the overlaps' Fourier spectrum against the non-overlap reference, per method.

    Every method runs with the same seed (default 0) and the same overlap (default 0.2), so the regions match.
    """
    from ..evaluation.analysis import analyze as run_analysis

    with user_errors():
        own = pick(given, ANALYZE)
        if own.out_dir.exists() and not own.out_dir.is_dir():
            raise SwapForwardError(f"Cannot write into {str(own.out_dir)!r}: it is a file.")
        spec = SPECS[own.kind]
        keys = {o.key for o in spec.options}
        stray = [k for k in given if k not in keys | {o.key for o in (*LOAD.options, *ANALYZE.options)}]
        if stray:
            raise SwapForwardError(f"--{stray[0].replace('_', '-')} does not apply to --kind {own.kind}.")
        values = {"seed": "0", "overlap": "0.2", **{k: v for k, v in given.items() if k in keys}, "prompt": prompt}
        for method in methods_:
            pick({**values, "method": method}, spec)
        request = pick(values, spec)
        pipe = load_model(KINDS[own.kind], pick(given, LOAD))
        result = run_analysis(pipe, request, list(methods_), every=own.every)
        paths = result.save(own.out_dir, title=f"{own.kind}: {words(request.prompt)}")
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
    from ..evaluation.weights import CHECKPOINTS, fetch

    with user_errors():
        for name in only:
            if name not in CHECKPOINTS:
                raise SwapForwardError(f"Unknown checkpoint {name!r}; known: {', '.join(CHECKPOINTS)}.")
        if folder is not None and folder.exists() and not folder.is_dir():
            raise SwapForwardError(f"--dir {str(folder)!r} is a file, not a folder.")
        try:
            fetch(list(only) or None, folder, log=typer.echo)
        except OSError as error:
            raise SwapForwardError(f"Could not download the weights ({error}); check the network.") from None


@command("eval", [flag(o, "eval") for o in EVALUATE.options] + [flag(LOAD["device"], "load")])
def evaluate(
    given: dict,
    generated: Path = typer.Argument(..., help="Folder of generated long outputs (audio files or panoramas)."),
) -> None:
    """Compute the paper's metrics for a folder of outputs and write a JSON (and Markdown) report.

    The reference set is a folder (--reference) or the base model's own one-view outputs for the same prompt
    (--reference-model, written to reference/ beside the report and reused on later runs).
    """
    from ..evaluation import evaluate as ev
    from ..evaluation.features import default_audio_extractors, default_image_extractors
    from ..evaluation.weights import require

    with user_errors():
        opts, load = pick(given, EVALUATE), pick(given, LOAD)
        check_output_path(opts.out, {".json": "JSON"})
        if opts.markdown is not None:
            check_output_path(opts.markdown, {".md": "Markdown"})
        quiet_libraries()
        from ..runtime.devices import resolve_device

        torch_device = str(resolve_device(load.device))
        kind = opts.kind
        suffixes = ev.AUDIO_SUFFIXES if kind == "audio" else ev.IMAGE_SUFFIXES
        files = ev.list_files(generated, suffixes)
        references = ev.list_files(opts.reference, suffixes) if opts.reference is not None else None
        for name in ev.needed_weights(kind, opts.clap_model):  # before any slow work: the weights are there, whole
            require(name)
        if references is None and opts.reference_model is not None:
            if not opts.prompt:
                raise SwapForwardError("Generating a reference set needs the --prompt it was made for.")
            base = load_model(KINDS[kind], load.replace(model=opts.reference_model, dtype="auto", scheduler="paper"))
            references = ev.generate_reference(
                base, kind, opts.prompt, opts.out.parent / "reference", opts.reference_samples,
                size=opts.window_seconds if kind == "audio" else opts.crop,
                progress=lambda done, total: typer.echo(f"reference {done}/{total}", err=True),
            )
        if kind == "audio":
            extractors = default_audio_extractors(torch_device, clap_model=opts.clap_model,
                                                  clap_normalize=opts.clap_normalize)
            result = ev.evaluate_audio(files, references, extractors, opts.prompt, opts.window_seconds, opts.overlap,
                                       opts.step_seconds)
        else:
            result = ev.evaluate_panoramas(files, references, default_image_extractors(torch_device), opts.prompt,
                                           opts.crop)
        results = {generated.name: result}
        ev.write_reports(results, opts.out, opts.markdown)
    typer.echo(ev.markdown(results), nl=False)


@command("lab", [flag(o, "lab") for o in LAB.options])
def lab(given: dict) -> None:
    """Run every method where the true answer is known, and measure it against the truth (docs/lab.md).

    Exact denoisers of a Gaussian world and of a mixture of styles stand in for a trained model.
    """
    from ..lab.run import markdown, run, write_report

    with user_errors():
        opts = pick(given, LAB)
        check_output_folder(opts.out_dir)
        if opts.stream:
            return stream_lab(opts)
        if opts.beyond:
            return beyond_lab(opts)
        result = run(quick=opts.quick, scheduler=opts.scheduler, steps=opts.steps, samples=opts.samples,
                     seed=opts.seed, progress=lambda line: typer.echo(line, err=True))
        paths = write_report(result, opts.out_dir)
    typer.echo(markdown(result), nl=False)
    typer.echo("wrote " + ", ".join(paths))


def stream_lab(opts: Request) -> None:
    """`swapforward lab --stream`: the stream table alone, printed and written as stream.md and stream.json."""
    import json

    from ..io.files import write_atomic
    from ..lab import stream
    from ..lab.run import Lab
    from ..lab.worlds import GaussianWorld, StylesWorld

    quick = opts.quick
    lab = Lab(steps=opts.steps or (25 if quick else 50), scheduler=opts.scheduler, seed=opts.seed)
    world, streams = StylesWorld(), opts.samples or (64 if quick else 256)
    rows = stream.table(lab, world, blocks=8 if quick else 16, streams=streams,
                        progress=lambda line: typer.echo(line, err=True))
    control = stream.single_window(lab, world, streams)
    gaussian = []
    for candidate in stream.GAUSSIAN_CANDIDATES:
        gaussian.append(stream.gaussian_row(lab, GaussianWorld(), candidate, blocks=4, draws=4096 if quick else 16384))
        typer.echo(f"stream, Gaussian world: {candidate.name}", err=True)
    text = (stream.markdown(rows, control) + "\nThe Gaussian world, 4 blocks (exact; * sampled, its KL corrected for "
            "the sampling's expected excess):\n\n" + stream.gaussian_markdown(gaussian))
    Path(opts.out_dir).mkdir(parents=True, exist_ok=True)
    paths = [Path(opts.out_dir) / "stream.md", Path(opts.out_dir) / "stream.json"]
    write_atomic(paths[0], lambda tmp: tmp.write_text(text))
    result = {"single_window": control, "rows": rows, "gaussian": gaussian}
    write_atomic(paths[1], lambda tmp: tmp.write_text(json.dumps(result, indent=1, default=str)))
    typer.echo(text, nl=False)
    typer.echo("wrote " + ", ".join(map(str, paths)))


def beyond_lab(opts: Request) -> None:
    """`swapforward lab --beyond`: every world family of issue 39 (spectrum, loudness over time, channel covariance,
    mixed, fitted to real sounds), each candidate against the targets; printed and written as beyond.md and
    beyond.json."""
    import json

    from ..io.files import write_atomic
    from ..lab import beyond
    from ..lab.run import Lab, _finite

    lab = Lab(steps=opts.steps or (25 if opts.quick else 50), scheduler=opts.scheduler, seed=opts.seed,
              samples=opts.samples or (64 if opts.quick else 256))
    parts, result = [], {"samples": lab.samples, "steps": lab.steps, "scheduler": lab.scheduler, "seed": lab.seed,
                         "targets": beyond.TARGETS, "worlds": []}
    for make in beyond.WORLDS:
        world = make()
        table = beyond.rows(lab, world)
        parts.append(beyond.markdown(world, table, lab))
        result["worlds"].append({"world": world.name, "family": world.family, "periods": list(world.periods),
                                 "true_weights": world.style_weights, "rows": table})
        typer.echo(f"beyond the spectrum: {world.name} world", err=True)
    legend = ("Targets missed per world (cons: consistency below SaFa's; copy: copying; dims: lost dimensions; KL: "
              "over 1.5x MD*'s; mix: style mix off by more than 0.03; mod: modulation per window below 0.9 of one "
              "window's, or the canvas's below 0.9 of the truth's; mod+: per window above 1.1 of one window's).")
    text = "\n\n".join([legend, beyond.summary(result["worlds"]), *parts]) + "\n"
    Path(opts.out_dir).mkdir(parents=True, exist_ok=True)
    paths = [Path(opts.out_dir) / name for name in ("beyond.md", "beyond.json")]
    write_atomic(paths[0], lambda tmp: tmp.write_text(text))
    write_atomic(paths[1], lambda tmp: tmp.write_text(json.dumps(_finite(result), indent=1)))
    typer.echo(text, nl=False)
    typer.echo("wrote " + ", ".join(map(str, paths)))


@command("app", [flag(o, "app") for o in SERVE.options] + load_flags())
def web_app(given: dict) -> None:
    """Serve the web app: long audio and panoramas from a browser (needs `pip install 'swapforward\\[app]'`)."""
    from .app import Studio, build_app, serve_app

    with user_errors():
        server, load = pick(given, SERVE), pick(given, LOAD)
        if server.output_dir is not None and server.output_dir.exists() and not server.output_dir.is_dir():
            raise SwapForwardError(f"--output-dir {str(server.output_dir)!r} is a file, not a folder.")
        check_local_models(server)
        quiet_libraries()
        studio = Studio(server.audio_model, server.image_model, server.output_dir, load=load)
        demo = build_app(studio)
    typer.echo(f"results are kept in {studio.output_dir}; open http://{server.host}:{server.port}/")
    serve_app(studio, demo, server.host, server.port, server.share)


def check_local_models(server: Request) -> None:
    """The app's models that name a folder are checked when it starts (a hub id is checked when first used, as it
    may need the network): a folder that is missing or holds no supported pipeline is one sentence, not a page that
    fails later."""
    from ..models import check_model, looks_like_path

    for kind, model in (("audio", server.audio_model), ("panorama", server.image_model)):
        given = f"--{'audio' if kind == 'audio' else 'image'}-model"
        if looks_like_path(model) or os.path.isdir(os.path.expanduser(model)):
            try:
                check_model(model, KINDS[kind].pipeline_class().adapters, local_files_only=True)
            except SwapForwardError as error:
                raise SwapForwardError(f"{given}: {error}") from None


@app.command()
def comfyui(
    folder: Path = typer.Argument(..., help="The ComfyUI folder (the one holding main.py), or its --base-directory "
                                            "(the one holding custom_nodes)."),
) -> None:
    """Install the ComfyUI node pack: SaFa and MultiDiffusion samplers, long latents, a loop-aware VAE decode.

    Run it with the Python that runs ComfyUI, after `pip install swapforward` there; restart ComfyUI."""
    from .comfyui import install

    with user_errors():
        if not (folder / "main.py").is_file() and not (folder / "custom_nodes").is_dir():
            raise SwapForwardError(f"{str(folder)!r} is not a ComfyUI folder: it has neither main.py nor "
                                   f"custom_nodes/.")
        typer.echo(f"installed: {install(folder)}; restart ComfyUI, then find the nodes under 'swapforward' (the "
                   f"examples: examples/comfyui in the repository).")


@app.command()
def methods() -> None:
    """List the joint-diffusion methods."""
    for method in METHODS.values():
        typer.echo(f"{method.name:15s} {method.summary}")


@app.command()
def options() -> None:
    """Every option of a request, as a Markdown table: API argument, flag and job field, defaults, allowed values."""
    from ..options import markdown_table

    typer.echo(markdown_table())


def _click() -> Any:
    """click's exception classes as typer uses them (typer 0.29 and newer carry their own copy of click)."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; a usage mistake (unknown flag, missing argument) is one line and exit status 2."""
    from ..runtime.signals import install

    install()
    errors = _click()
    command_line = typer.main.get_command(app)
    try:
        code = command_line.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="swapforward",
                                 standalone_mode=False)
    except errors.NoArgsIsHelpError as error:
        typer.echo(error.format_message())
        sys.exit(0)
    except errors.UsageError as error:
        message = error.format_message().rstrip(".")
        if error.ctx is not None:  # a question ('Did you mean ...?') keeps its mark
            see = f"see `{error.ctx.command_path} --help`."
            message = f"{message} {see[0].upper()}{see[1:]}" if message.endswith("?") else f"{message}; {see}"
        typer.echo(f"error: {message}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt) as stop:
        typer.echo(f"interrupted ({getattr(stop, 'name', 'SIGINT')}); nothing was written.", err=True)
        sys.exit(getattr(stop, "status", 130))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
