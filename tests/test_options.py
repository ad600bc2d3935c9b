"""The option specification: one declaration per option, from which the checks, the command line's flags, the batch
jobs' fields and the web app's inputs all come; and what that buys (a quick command line, diffusers' habits)."""

import inspect
import os
import subprocess
import sys

import pytest
import torch

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.frontends.app import app_options
from swapforward.frontends.batch import job_fields
from swapforward.frontends.cli import app, generation_flags
from swapforward.frontends.registry import KINDS
from swapforward.options import AUDIO, LOAD, OUTPUT, PANORAMA, SPECS


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_option_has_a_flag_a_job_field_and_an_app_input(kind):
    spec = SPECS[kind]
    flags = {p.name for p in generation_flags(KINDS[kind])}
    fields = set(job_fields(kind))
    inputs = {o.key for o in app_options(kind)}
    #: Options the app leaves out on purpose: the sample rate of an input given as an array exists in Python only.
    not_in_app = {"init_sample_rate"}
    for option in spec.options:
        if option.name != "prompt":  # the prompt is the commands' argument
            assert option.key in flags, f"no --{option.key} flag"
        assert option.key in fields, f"no {option.key} job field"
        assert option.key in inputs or option.key in not_in_app, f"no {option.key} app input"
    assert {o.key for o in spec.options if not o.app} <= not_in_app
    for option in (*LOAD.options, *OUTPUT[kind].options):
        assert option.key in flags
    assert {o.key for o in OUTPUT[kind].options} | {"model", "scheduler", "dtype", "compile"} <= fields


def test_the_app_page_has_an_input_for_every_option(tmp_path):
    from swapforward.frontends.app import Studio, build_app

    demo = build_app(Studio("unused/audio", "unused/image", tmp_path, device="cpu"))
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    for kind in KINDS:
        assert {f"{kind}-{o.key}" for o in app_options(kind)} <= ids


@pytest.mark.parametrize("spec", [AUDIO, PANORAMA])
def test_the_pipelines_signatures_list_every_option_with_its_default(spec):
    pipeline = LongAudioPipeline if spec is AUDIO else PanoramaPipeline
    params = inspect.signature(pipeline.__call__).parameters
    for option in spec.options:
        assert params[option.name].default == option.default_for(spec.kind)
        assert option.name in pipeline.__call__.__doc__
    assert {"generator", "latents", "callback_on_step_end", "lpips"} <= set(params)


def test_values_are_checked_once_and_named_as_the_user_wrote_them():
    api = AUDIO.check({"prompt": "rain", "audio_length_in_s": 12, "num_inference_steps": 20.0, "loop": True})
    assert api.audio_length_in_s == 12.0 and api.num_inference_steps == 20 and api.loop is True
    assert api.method == "safa" and api.overlap == 0.2 and api.seed is None
    cli = AUDIO.check({"prompt": "rain", "seconds": "12", "steps": "20", "loop": "yes", "method": "MD"}, "cli")
    assert cli.audio_length_in_s == 12.0 and cli.num_inference_steps == 20 and cli.loop and cli.method == "md"
    assert PANORAMA.check({"prompt": "a", "method": "md"}).overlap == 0.8  # the paper's per-method default
    assert PANORAMA.check({"prompt": "a", "method": "safa"}).overlap == 0.2
    cases = [
        ({"audio_length_in_s": "12"}, "api", "audio_length_in_s must be a finite number > 0"),  # text is not a number
        ({"seconds": "12s"}, "cli", "--seconds must be a finite number > 0"),
        ({"steps": "2.5"}, "job", "steps must be a whole number >= 1"),
        ({"loop": "maybe"}, "job", "loop must be true or false, got 'maybe'."),
        ({"seed": True}, "api", "seed must be a whole number from 0 to 2^64-1"),
        ({"seed": 2**64}, "api", "seed must be a whole number from 0 to 2^64-1"),
        ({"r_guide": float("inf")}, "api", "r_guide must be a finite number between 0 and 1, got inf."),
        ({"guidance_scale": 1e9}, "api", "guidance_scale must be a finite number >= -1000 and <= 1000"),
        ({"window_seconds": ""}, "cli", None),
        ({"negative_prompt": 3}, "api", "negative_prompt must be text, got 3."),
    ]
    for values, source, message in cases:
        base = {"prompt": "rain"}
        if message is None:
            assert AUDIO.check({**base, **values}, source).window_seconds is None
            continue
        with pytest.raises(SwapForwardError) as info:
            AUDIO.check({**base, **values}, source)
        assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)
    with pytest.raises(SwapForwardError, match="The prompt is empty"):
        AUDIO.check({"prompt": "   "})


def test_seed_minus_one_is_random_and_reported(audioldm):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    out = pipe("rain", audio_length_in_s=0.05, num_inference_steps=1, seed=-1, progress_bar=False)
    again = pipe("rain", audio_length_in_s=0.05, num_inference_steps=1, seed=out.info["seed"], progress_bar=False)
    assert 0 <= out.info["seed"] < 2**31 and (out.audio == again.audio).all()


def importtime(*args):
    """The modules a command-line call imports (python -X importtime)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "swapforward", *args], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result, modules


@pytest.mark.parametrize("args,code,text", [
    (["--help"], 0, "audio"),
    (["methods"], 0, "safa-selfloop"),
    (["audio", "--help"], 0, "--r-guide"),
    (["audio", "rain", "--seconds", "-1"], 2, "error: --seconds must be a finite number > 0"),
    (["audio", "rain", "--no-such-flag"], 2, "error: No such option: --no-such-flag"),
    (["panorama", "x", "--width", "3201"], 2, "error: --width=3201 is not a multiple of 8; use 3200 or 3208."),
])
def test_the_command_line_answers_without_importing_torch(args, code, text):
    result, modules = importtime(*args)
    assert result.returncode == code, result.stderr[-2000:]
    output = result.stdout + "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import"))
    assert text in output
    assert not {"torch", "diffusers", "transformers"} & modules
    if code:
        errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr


def test_callback_on_step_end_reads_and_replaces_the_latents(audioldm):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    seen, old = [], []

    def on_step_end(p, step, timestep, kwargs):
        assert p is pipe and set(kwargs) == {"latents"}
        seen.append((step, int(timestep), kwargs["latents"].shape))
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == 2 else {}

    out = pipe("rain", audio_length_in_s=0.1, window_seconds=0.064, num_inference_steps=3, seed=0, progress_bar=False,
               callback_on_step_end=on_step_end, callback=lambda k, t, x: old.append(k))
    assert [s for s, _, _ in seen] == [0, 1, 2] and old == [0, 1, 2]
    assert torch.equal(out.latents, torch.zeros_like(out.latents)), "the last step's replacement is the result"
    with pytest.raises(SwapForwardError, match="callback_on_step_end_tensor_inputs may name latents"):
        pipe("rain", audio_length_in_s=0.1, callback_on_step_end=on_step_end,
             callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    from swapforward.runtime import devices as runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "mps_available", lambda: True)
    assert runtime.resolve_device("auto").type == "mps"
    monkeypatch.setattr(runtime, "mps_available", lambda: False)
    assert runtime.resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SwapForwardError, match="MPS is not available here"):
        runtime.resolve_device("mps")


def test_the_command_line_is_one_typer_app_with_every_command():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"audio", "panorama", "batch", "analyze", "weights", "eval", "app", "methods"} <= names


def test_the_readme_lists_every_option_as_the_spec_declares_it():
    from pathlib import Path

    from swapforward.options import markdown_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README's table with `swapforward options`"


def test_no_front_end_sets_a_default_of_its_own(tmp_path, monkeypatch):
    """The request each front end makes from untouched input (no flags, a job of a prompt only, the app's form as
    first shown) is the spec's own for that source: every default lives on its option."""
    import json

    from typer.testing import CliRunner

    import swapforward.frontends.cli as cli
    from swapforward.frontends.app import Studio, app_options, build_app
    from swapforward.frontends.batch import load_jobs
    from swapforward.options import AUDIO, PANORAMA, RANDOM_SEED

    made = {}

    class Made(Exception):
        pass

    def capture(kind, load, **kwargs):
        raise Made

    original_check = cli.check_fits

    def keep(kind, request, label):
        made[kind.name] = request
        return original_check(kind, request, label)

    monkeypatch.setattr(cli, "load_model", capture)
    monkeypatch.setattr(cli, "check_fits", keep)
    for kind in ("audio", "panorama"):
        out = tmp_path / ("x.wav" if kind == "audio" else "x.png")
        result = CliRunner().invoke(cli.app, [kind, "rain", "--out", str(out)])
        assert isinstance(result.exception, Made), result.output
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps({"kind": k, "prompt": "rain", "out": str(tmp_path / f"j.{e}")})
                              for k, e in (("audio", "wav"), ("panorama", "png"))) + "\n")
    from_jobs = {job.kind: job.request for job in load_jobs(jobs)}
    studio = Studio("unused", "unused", tmp_path / "app")
    demo = build_app(studio)
    by_id = {c["props"].get("elem_id"): c["props"].get("value") for c in demo.config["components"]}
    for spec in (AUDIO, PANORAMA):
        own = {source: spec.check({"prompt": "rain"}, source) for source in ("cli", "job", "app")}
        assert own["cli"].seed == RANDOM_SEED and spec.check({"prompt": "rain"}).seed is None
        assert dict(made[spec.kind]) == dict(own["cli"])
        assert dict(from_jobs[spec.kind]) == dict(own["job"])
        keys = {p.key for p in spec.options}
        form = {o.key: by_id[f"{spec.kind}-{o.key}"] for o in app_options(spec.kind) if o.key in keys}
        form = {k: v for k, v in form.items() if v not in (None, "") and k != "prompt"}
        assert dict(studio.request(spec.kind, "rain", form)[0]) == dict(own["app"])


def test_the_app_leaves_out_the_hidden_settings_of_other_methods(tmp_path):
    """The page hides a method's own settings when another method is chosen, so their values do not reach the check
    (where the command line refuses them in one sentence)."""
    from swapforward.frontends.app import Studio

    studio = Studio("unused", "unused", tmp_path)
    request, _ = studio.request("audio", "rain", {"method": "md", "sync_weight": 5.0, "r_guide": 0.6})
    assert request.method == "md" and request.sync_weight == AUDIO["sync_weight"].default_for("audio")
    with pytest.raises(SwapForwardError, match="sync_weight is used by syncd only"):
        AUDIO.check({"prompt": "rain", "method": "md", "sync_weight": "5"}, "app")
