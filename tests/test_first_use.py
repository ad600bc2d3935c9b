"""What a new user meets first: the installed command, checks that come before slow work (memory, weights), and
messages that are one clear line."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomllib
from typer.testing import CliRunner

from swapforward import PanoramaPipeline, SwapForwardError
from swapforward.frontends.cli import app
from swapforward.runtime import memory

ROOT = Path(__file__).resolve().parents[1]


class Runner(CliRunner):
    def invoke(self, cli, args, **kwargs):
        return super().invoke(cli, [str(a) for a in args], **kwargs)


runner = Runner()


def test_the_installed_command_runs():
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["swapforward"]
    module, _, name = target.partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    command = Path(sys.executable).with_name("swapforward")
    result = subprocess.run([str(command), "methods"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("safa "), result.stderr


@pytest.fixture
def little_memory(monkeypatch):
    """A machine with 1 GiB free."""
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**30)


def test_outputs_too_large_for_memory_are_refused_before_the_model_loads(little_memory, tmp_path):
    missing = tmp_path / "no-model-here"  # loading it would fail: the memory check must come first
    wide = runner.invoke(app, ["panorama", "x", "--model", missing, "--width", 999992, "-o", tmp_path / "p.png"])
    assert wide.exit_code == 2
    assert wide.stderr.strip() == ("error: --width=999992 needs about 30.8 GiB of memory, more than 80% of the 1.0 "
                                   "GiB free; ask for at most 18016 px.")
    long = runner.invoke(app, ["audio", "x", "--model", missing, "--seconds", 3600, "-o", tmp_path / "a.wav"])
    assert long.exit_code == 2 and "--seconds=3600.0 needs about 2.7 GiB" in long.stderr
    assert "ask for at most 795 s" in long.stderr
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"kind": "panorama", "prompt": "x", "out": "p.png", "model": str(missing),
                                "width": 999992}) + "\n")
    batch = runner.invoke(app, ["batch", jobs])
    assert batch.exit_code == 2 and "job 0: width=999992 needs about 30.8 GiB" in batch.stderr
    assert list(tmp_path.glob("*.png")) == []


def test_the_pipeline_checks_again_with_its_own_models_height(sd, little_memory):
    pipe = PanoramaPipeline.from_pipe(sd)  # native size 64: 400000 px x 64 px x 64 bytes and a 256 MiB working set
    with pytest.raises(SwapForwardError, match=r"^width=400000 needs about 1\.8 GiB of memory, more than 80% of the "
                                               r"1\.0 GiB free; ask for at most 144176 px\.$"):
        pipe("x", width=400000, num_inference_steps=1, seed=0)


def test_eval_checks_the_metric_weights_before_making_a_reference_set(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SWAPFORWARD_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "gen").mkdir()
    sf.write(tmp_path / "gen" / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    start = time.perf_counter()
    result = runner.invoke(app, ["eval", tmp_path / "gen", "--reference-model", tiny_model_dir, "--prompt", "rain",
                                 "--reference-samples", 500, "--out", tmp_path / "m.json"])
    assert result.exit_code == 2 and "need Cnn14_16k_mAP=0.438.pth in" in result.stderr
    assert not (tmp_path / "reference").exists(), "no reference clip was made"
    assert time.perf_counter() - start < 60


def test_ctrl_c_while_starting_is_one_line(tiny_model_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "swapforward", "audio", "rain", "--model", tiny_model_dir,
                                "-o", str(tmp_path / "a.wav")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # importing torch and diffusers, loading the model
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "interrupted (SIGINT); nothing was written.", stderr
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_model_id_is_not_suggested_for_download(tmp_path):
    result = runner.invoke(app, ["audio", "x", "--model", "not a/valid id!!", "-o", tmp_path / "a.wav"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: Model 'not a/valid id!!' is neither a local folder nor a hub id "
                                     "(owner/name of letters, digits, '-', '_' and '.', e.g. "
                                     "cvssp/audioldm-s-full-v2).")


def test_help_keeps_the_install_extra():
    result = runner.invoke(app, ["app", "--help"])
    assert "pip install 'swapforward[app]'" in " ".join(result.stdout.split()).replace("│", "").replace("  ", " ")


def test_syncdiffusion_names_both_packages_it_needs(monkeypatch):
    from swapforward.baselines import syncdiffusion

    monkeypatch.setitem(sys.modules, "lpips", None)  # not installed
    with pytest.raises(SwapForwardError, match=r"^SyncDiffusion needs the lpips and torchvision packages; install "
                                               r"them with `pip install 'swapforward\[syncd\]'`\.$"):
        syncdiffusion.default_lpips()


def test_the_libraries_warnings_stay_quiet_in_a_fresh_process():
    """transformers sets its loggers' level when it is first imported; warnings such as 'requires torchvision' must
    stay out of the terminal even so."""
    code = ("from swapforward.frontends.common import quiet_libraries; quiet_libraries(); import logging; "
            "logging.getLogger('transformers.utils.import_utils').warning('CLIPImageProcessor requires torchvision')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "requires torchvision" not in result.stderr, result.stderr


def test_a_clip_of_three_samples_is_one_sentence_saying_how_short_a_clip_may_be(tmp_path, tiny_model_dir, capsys):
    from swapforward.frontends.cli import main

    clip = tmp_path / "three.wav"
    sf.write(clip, np.zeros(3, dtype=np.float32), 16000)
    with pytest.raises(SystemExit) as info:
        main(["audio", "rain", "--model", tiny_model_dir, "--init-audio", str(clip), "--out", str(tmp_path / "a.wav")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: --init-audio lasts 3 samples") and err.count("\n") == 1
    from swapforward.io.inputs import read_audio

    with pytest.raises(SwapForwardError, match=r"init_audio lasts 3 samples .*; a clip must last at least 0.05 s\."):
        read_audio(np.zeros(3, dtype=np.float32), "init_audio", 16000)


def test_a_binary_jobs_file_is_one_sentence(tmp_path, capsys):
    from swapforward.frontends.cli import main

    jobs = tmp_path / "garbage.jsonl"
    jobs.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(SystemExit) as info:
        main(["batch", str(jobs)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err == f"error: Jobs file {str(jobs)!r} is not UTF-8 text; give a .jsonl file (one JSON object a line) " \
                  "or a .csv file.\n"


def test_the_lab_refuses_a_folder_it_cannot_write_before_any_work(capsys, monkeypatch):
    from swapforward.frontends.cli import main
    from swapforward.lab import run

    ran = []
    monkeypatch.setattr(run, "run", lambda **kwargs: ran.append(kwargs))
    with pytest.raises(SystemExit) as info:
        main(["lab", "--quick", "-o", "/proc/labx"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: Cannot write into '/proc/labx': '/proc' does not accept")
    assert not ran, "refused before the lab ran"


@pytest.mark.parametrize("out,message", [
    ("b.txt", "unsupported format '.txt'; use .wav, .flac, .mp3, .ogg, .opus"),
    ("/proc/a.wav", "Cannot write '/proc/a.wav': the folder does not accept new files"),
])
def test_a_batch_job_s_output_is_checked_when_the_file_is_read(tmp_path, capsys, monkeypatch, out, message):
    from swapforward.frontends import common
    from swapforward.frontends.cli import main

    loaded = []
    monkeypatch.setattr(common, "load_model", lambda *a, **k: loaded.append(a))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "rain", "out": out}) + "\n")
    started = time.perf_counter()
    with pytest.raises(SystemExit) as info:
        main(["batch", str(jobs), "--model", "/nowhere/model"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and err.count("\n") == 1, err
    assert err.startswith("error: 1 of 1 job in") and not loaded and time.perf_counter() - started < 5


def test_batch_takes_model_and_the_other_loading_flags_as_every_job_s_defaults(tmp_path, tiny_model_dir):
    from swapforward.frontends.batch import load_jobs
    from swapforward.frontends.cli import pick
    from swapforward.options import LOAD

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "rain", "out": "a/b/c.wav", "seconds": 0.1, "steps": 1,
                                "window_seconds": 0.064}) + "\n" +
                    json.dumps({"prompt": "wind", "out": "d.wav", "model": str(tmp_path / "other")}) + "\n")
    defaults = pick({"model": tiny_model_dir, "scheduler": "ddim"}, LOAD)
    first, second = load_jobs(jobs, defaults)
    assert (first.load.model, first.load.scheduler) == (tiny_model_dir, "ddim")
    assert second.load.model == str(tmp_path / "other"), "a job's own field wins"
    result = runner.invoke(app, ["batch", jobs, "--model", tiny_model_dir])
    assert result.exit_code == 1 and "job 0 done" in result.stdout, result.output  # job 1's model does not exist
    assert sf.info(tmp_path / "a" / "b" / "c.wav").frames == 1600, "its folder is made when it runs"


def test_an_empty_jobs_file_says_there_are_no_jobs(tmp_path, capsys):
    from swapforward.frontends.cli import main

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n\n")
    with pytest.raises(SystemExit) as info:
        main(["batch", str(jobs)])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: Jobs file {str(jobs)!r} has no jobs; write one JSON object a line.\n"


def test_messages_name_the_flag_and_the_problem(tmp_path, tiny_model_dir, capsys):
    """Issue 24, item 10: what a command-line user typed is what the message names."""
    from swapforward.frontends.cli import main

    def error(*args):
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        assert info.value.code == 2
        *loading, err = capsys.readouterr().err.splitlines(keepends=True)  # after the model's one loading line
        assert err.count("\n") == 1 and all(line.startswith("loading ") for line in loading), err
        return err

    out = ["--model", tiny_model_dir, "-o", tmp_path / "a.wav", "--steps", "1", "--window-seconds", "0.064"]
    bad = tmp_path / "nan.wav"
    sf.write(bad, np.array([0.0, np.nan] * 2000, dtype=np.float32), 16000, subtype="FLOAT")
    assert error("audio", "x", "--init-audio", bad, *out) == \
        f"error: --init-audio {str(bad)!r} holds values that are not finite numbers.\n"
    assert error("audio", "x", "--init-audio", tmp_path, *out) == \
        f"error: --init-audio {str(tmp_path)!r} is a folder; give an audio file.\n"
    assert error("panorama", "x", "--init-image", tmp_path, "-o", tmp_path / "p.png") == \
        f"error: --init-image {str(tmp_path)!r} is a folder; give a picture file.\n"
    empty = tmp_path / "timeline.txt"
    empty.write_text("\n  \n")
    assert error("audio", "--timeline", empty, *out) == \
        f"error: --timeline {str(empty)!r} is empty; write one 'START PROMPT[ | NEGATIVE]' per line.\n"
    assert error("audoi") == "error: No such command 'audoi'. Did you mean 'audio'? See `swapforward --help`.\n"
    assert error("audio", "x", "--stpes", "3") == \
        "error: No such option: --stpes (Possible options: --dtype, --steps, --takes); see `swapforward audio " \
        "--help`.\n"
    state = tmp_path / "state.pt"
    common = ["--model", tiny_model_dir, "--seconds", "0.2", "--window-seconds", "0.064", "--steps", "4"]
    main_run = runner.invoke(app, ["audio", "x", *common, "--save-state", state, "--save-every", "1", "--seed", "1",
                                   "-o", tmp_path / "first.wav"])
    assert main_run.exit_code == 0 and state.exists(), main_run.output
    assert error("audio", "x", *common[:3], "0.3", *common[4:], "--resume", state, "-o", tmp_path / "b.wav") == \
        f"error: Cannot resume from {str(state)!r}: it was saved with --seconds 0.2, this run has --seconds 0.3; " \
        "resume with the same settings.\n"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "x", "out": "a.wav", "colour": 1}) + "\n")
    assert "unknown field 'colour' for an audio job" in error("batch", jobs)
