"""The `swapforward` command line on a tiny local model folder, and model loading errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from swapforward import SwapForwardError
from swapforward.frontends.cli import app
from swapforward.models import AUDIO_ADAPTERS, load_pipeline

runner = CliRunner()
FAST = ["--window-seconds", "0.064", "--steps", "3", "--seed", "0"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_writes_a_playable_wav_and_a_spectrogram_png(tiny_model_dir, tmp_path):
    out, png = tmp_path / "rain.wav", tmp_path / "rain.png"
    result = run("audio", "rain on a tin roof", "--model", tiny_model_dir, "--seconds", "0.3", "--out", out,
                 "--spectrogram", png, *FAST)
    assert result.exit_code == 0, result.output
    data, rate = sf.read(out, always_2d=True)
    assert rate == 16000 and data.shape == (4800, 1) and np.isfinite(data).all()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = result.stdout.strip().splitlines()[-1]
    assert "0.30 s of safa audio at 16000 Hz from 6 views (+1 reference for 1 of 3 steps)" in summary
    assert "model calls" in summary and "real-time factor" in summary


@pytest.mark.parametrize("method", ["safa-selfloop", "md", "md-tri"])
def test_cli_methods_loop_and_flac(tiny_model_dir, tmp_path, method):
    out = tmp_path / "loop.flac"
    swap = ["--swap-interval", "2"] if method == "safa-selfloop" else []  # the swaps' own option
    result = run("audio", "birds", "--model", tiny_model_dir, "--seconds", "0.2", "--method", method, "--loop",
                 "--overlap", "0.25", *swap, "--view-batch-size", "2", "--scheduler", "dpm",
                 "--negative-prompt", "noise", "--guidance", "2.5", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    data, rate = sf.read(out)
    assert len(data) == 3200 and "looping" in result.stdout


def test_cli_is_reproducible_with_a_seed(tiny_model_dir, tmp_path):
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for path in paths:
        assert run("audio", "wind", "--model", tiny_model_dir, "--seconds", "0.2", "--out", path, *FAST).exit_code == 0
    assert np.array_equal(sf.read(paths[0])[0], sf.read(paths[1])[0])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seconds", "-5"], "--seconds must be a finite number > 0 and <= 86400, got '-5'."),
        (["--seconds", "nan"], "--seconds must be a finite number > 0 and <= 86400, got 'nan'."),
        (["--seconds", "inf"], "--seconds must be a finite number"),
        (["--seconds", "ten"], "--seconds must be a finite number"),
        (["--seconds", "1e12"], "--seconds must be a finite number > 0 and <= 86400, got '1e12'."),
        (["--seconds", "80000"], "needs about"),
        (["--method", "foo"],
         "Unknown --method 'foo'; use one of: safa, safa-selfloop, md-envelope, md, md-tri, mad, syncd."),
        (["--overlap", "1"], "--overlap must be a finite number between 0 and 1 (exclusive), got '1'."),
        (["--r-guide", "2"], "--r-guide must be a finite number between 0 and 1, got '2'."),
        (["--swap-interval", "0"], "--swap-interval must be a whole number >= 1 and <= 4096, got '0'."),
        (["--steps", "1e9"], "--steps must be a whole number >= 1 and <= 10000, got '1e9'."),
        (["--seed", "99999999999999999999"], "--seed must be a whole number from 0 to 2^64-1, or -1 for a random"),
        (["--seed", "-2"], "--seed must be a whole number from 0 to 2^64-1"),
        (["--guidance", "inf"], "--guidance must be a finite number"),
        (["--out", "x.aiff"], "unsupported format '.aiff'; use .wav, .flac, .mp3, .ogg, .opus."),
        (["--out", "/no/such/folder/x.wav"], "folder '/no/such/folder' does not exist."),
        (["--spectrogram", "x.jpg"], "unsupported format '.jpg'; use .png."),
        (["--model", "./no-such-folder"], "Model folder './no-such-folder' does not exist."),
        (["--model", "someone/not-cached"], "Model 'someone/not-cached' is not in the local Hugging Face cache"),
        (["--dtype", "int3"], "Unknown --dtype 'int3'"),
        (["--device", "tpu"], "Unknown --device 'tpu'; use auto, cpu, mps, cuda or cuda:N."),
        (["--scheduler", "magic"], "Unknown --scheduler 'magic'; use one of: paper, default, ddim, dpm, euler, unipc."),
    ],
)
def test_cli_bad_input_is_one_line_without_traceback_or_file(tiny_model_dir, tmp_path, args, message, monkeypatch):
    from swapforward.runtime import memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 16 * 2**30)  # whatever this machine has
    out = tmp_path / "out.wav"
    base = ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.2", "--out", str(out), *FAST]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    *loading, error = result.stderr.strip().splitlines()  # an error after the model loads follows its one line
    assert error.startswith("error: ") and "Traceback" not in result.output
    assert all(line.startswith("loading ") for line in loading) and len(loading) <= 1
    assert not out.exists()


def test_cli_empty_prompt(tmp_path):
    result = run("audio", "  ", "--out", tmp_path / "x.wav")
    assert result.exit_code == 2 and "The prompt is empty" in result.stderr


def test_cli_leaves_no_partial_file_when_interrupted(tiny_model_dir, tmp_path, monkeypatch):
    import swapforward.pipelines.joint

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(swapforward.pipelines.joint, "drive", interrupt)
    result = run("audio", "rain", "--model", tiny_model_dir, "--seconds", "0.2", "--out", tmp_path / "x.wav", *FAST)
    assert result.exit_code == 130 and os.listdir(tmp_path) == []


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "swapforward", "methods"], capture_output=True, text=True)
    assert result.returncode == 0 and "safa-selfloop" in result.stdout


def test_loading_a_family_without_adapter_is_refused(tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    with pytest.raises(SwapForwardError, match="is a DDPMPipeline, which this command does not support; supported: "
                                               "AudioLDMPipeline, AudioLDM2Pipeline."):
        load_pipeline(str(tmp_path / "ddpm"), AUDIO_ADAPTERS)


def test_an_output_path_that_is_a_folder_is_refused(tmp_path):
    result = run("audio", "rain", "--out", tmp_path)
    assert result.exit_code == 2 and f"Cannot write '{tmp_path}': unsupported format" in result.stderr
    (tmp_path / "taken.wav").mkdir()
    result = run("audio", "rain", "--out", tmp_path / "taken.wav")
    assert result.exit_code == 2 and "it is a folder; give a file name ending in .wav." in result.stderr


def test_hub_errors_become_one_sentence():
    from swapforward.models import _load_error

    class RepositoryNotFoundError(OSError):  # the hub client's class name is what the translation looks for
        pass

    try:
        try:
            raise RepositoryNotFoundError("Repository Not Found for url")
        except RepositoryNotFoundError as cause:
            raise OSError("cvssp/nope is not a local folder") from cause
    except OSError as error:
        message = str(_load_error("cvssp/nope", error))
    assert message.startswith("Model 'cvssp/nope' was not found on the Hugging Face hub; check the id")


def test_scheduler_choice_follows_the_paper_unless_asked_otherwise():
    from diffusers import (
        DDIMScheduler,
        FlowMatchEulerDiscreteScheduler,
        PNDMScheduler,
        UniPCMultistepScheduler,
    )

    from swapforward.runtime.devices import make_scheduler

    pndm, flow = PNDMScheduler(skip_prk_steps=True, steps_offset=1), FlowMatchEulerDiscreteScheduler(shift=3.0)
    paper = make_scheduler("paper", pndm)
    assert isinstance(paper, DDIMScheduler) and paper.config.steps_offset == 1
    assert make_scheduler("default", pndm) is pndm and make_scheduler("paper", flow) is flow
    assert isinstance(make_scheduler("unipc", pndm), UniPCMultistepScheduler)
    with pytest.raises(SwapForwardError, match="has no DDPM noise schedule"):
        make_scheduler("ddim", flow)


BAD_VALUES = ["abc", "-1", "0", "nan", "inf", "", "1e309", "99999999999999999999", "2.5"]


def guarded_commands(tmp_path):
    """Each command with arguments that make it stop with one sentence after its options are checked (a missing
    model, folder or file), so that every option can be fed bad values without running a model."""
    missing = str(tmp_path / "no-such-model")
    return {
        "audio": ["audio", "rain", "--model", missing, "--out", str(tmp_path / "a.wav")],
        "panorama": ["panorama", "x", "--model", missing, "--out", str(tmp_path / "p.png")],
        "analyze": ["analyze", "x", "--model", missing, "--out-dir", str(tmp_path / "analysis")],
        "batch": ["batch", str(tmp_path / "no-such-jobs.jsonl")],
        "eval": ["eval", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "m.json")],
        "app": ["app"],
        "weights": ["weights", "--only", "no-such-checkpoint"],
    }


def test_every_option_of_every_command_answers_a_bad_value_in_one_sentence(tmp_path, capsys, monkeypatch):
    """Wrong types, out of range, non-finite, empty and huge values, for every flag of every command, in-process
    (in a temporary working folder: a value such as `--out-dir nan` names a folder relative to it)."""
    import typer

    from swapforward.frontends import app as web
    from swapforward.frontends.cli import main
    from swapforward.options import ANALYZE, AUDIO, EVALUATE, LOAD, OUTPUT, PANORAMA, SERVE

    def stop(*args, **kwargs):
        raise SwapForwardError("stopped before serving")

    monkeypatch.setattr(web, "build_app", stop)
    monkeypatch.chdir(tmp_path)
    specs = {"audio": (AUDIO, LOAD, OUTPUT["audio"]), "panorama": (PANORAMA, LOAD, OUTPUT["panorama"]),
             "analyze": (ANALYZE, PANORAMA, AUDIO, LOAD), "eval": (EVALUATE, LOAD), "app": (SERVE, LOAD)}
    command_line = typer.main.get_command(app)
    checked = 0
    for name, base in guarded_commands(tmp_path).items():
        for param in command_line.commands[name].params:
            flags = [f for f in param.opts if f.startswith("--")]
            if param.param_type_name != "option" or param.is_flag or not flags or flags[0] == "--help":
                continue
            for value in BAD_VALUES:
                with pytest.raises(SystemExit) as exit_info:
                    main([*base, flags[0], value])
                err = capsys.readouterr().err
                lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
                assert exit_info.value.code == 2, (name, flags[0], value, err)
                assert len(lines) == 1 and lines[0].startswith("error: "), (name, flags[0], value, err)
                declared = {o.flag: o for spec in specs.get(name, ()) for o in spec.options}
                option = declared.get(flags[0])
                if option is not None:
                    try:
                        option.convert(value, "cli")
                    except SwapForwardError:
                        assert flags[0] in lines[0], (name, flags[0], value, lines[0])
                checked += 1
    assert checked > 400
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob("*.png"))


def test_an_output_folder_that_refuses_files_is_found_before_any_model_work(tmp_path, capsys):
    from swapforward.frontends.cli import main

    for target in ("/proc/x.wav", "/sys/x.wav"):
        with pytest.raises(SystemExit) as info:
            main(["audio", "rain", "--out", target, "--model", str(tmp_path / "never-loaded")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith(f"error: Cannot write '{target}': the folder does not accept")
        assert err.count("\n") == 1


def test_half_precision_on_the_cpu_runs_with_a_note(tiny_model_dir, tmp_path):
    out = tmp_path / "half.wav"
    result = run("audio", "rain", "--model", tiny_model_dir, "--out", out, "--dtype", "float16", "--device", "cpu",
                 "--seconds", "0.05", "--steps", "1")
    assert result.exit_code == 0, result.output
    assert "note: float16 on the CPU runs several times slower than float32" in result.stderr and out.exists()


def test_weights_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    result = run("weights", "--dir", path)
    assert result.exit_code == 2 and f"--dir '{path}' is a file, not a folder." in result.stderr
