"""Interrupted and resumed runs: Ctrl-C and SIGTERM leave nothing half-written, and a run saved with --save-state
and finished with --resume equals the uninterrupted run bit for bit."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers import DPMSolverMultistepScheduler
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.frontends.cli import app
from swapforward.runtime.signals import Interrupted, deferred, install

runner = CliRunner()
AUDIO = dict(audio_length_in_s=0.15, window_seconds=0.064, num_inference_steps=8, seed=3, progress_bar=False)


class Stop(Exception):
    """Stands for a crash or a preemption at some step."""


def stop_at(step):
    def callback(k, t, latents):
        if k == step:
            raise Stop

    return callback


def interrupted_then_resumed(pipe, state, step, every, **options):
    """(uninterrupted output, output of a run stopped after `step` and resumed from its last saved state)."""
    full = pipe("rain", **options)
    with pytest.raises(Stop):
        pipe("rain", save_state=state, save_every=every, callback=stop_at(step), **options)
    assert state.exists()
    return full, pipe("rain", resume_from=state, **options)


@pytest.mark.parametrize("case", ["safa-eta", "dpm-solver", "loop-md", "repaint", "segments"])
def test_a_resumed_audio_run_equals_the_uninterrupted_one(audioldm, tmp_path, case, monkeypatch):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    options = dict(AUDIO, method="safa")
    original = audioldm.scheduler  # the pipeline is shared by the session's tests: put its scheduler back
    if case == "safa-eta":  # DDIM's eta noise: the generator's state is saved and restored
        options.update(eta=0.7)
    elif case == "dpm-solver":  # a multistep scheduler: its history of model outputs is saved
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(audioldm.scheduler.config)
    elif case == "loop-md":
        options.update(method="md", loop=True, overlap=0.5)
    elif case == "segments":  # an hours-long run's views in segments, each with its own multistep scheduler
        from swapforward.pipelines import joint
        from swapforward.runtime import memory

        monkeypatch.setattr(memory, "SEGMENT_BYTES", 2 * 4 * 32 * 8 * 4)  # two of the tiny model's 32-frame views
        sizes = []
        monkeypatch.setattr(joint, "segment_views", lambda *a: sizes.append(memory.segment_views(*a)) or sizes[-1])
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(audioldm.scheduler.config)
        options.update(audio_length_in_s=0.4, loop=True, view_batch_size=1)
    else:  # a kept clip with RePaint's resampling: the step order revisits steps, with fresh noise each time
        clip = np.sin(np.arange(1600) / 9).astype(np.float32) * 0.3
        options.update(init_audio=clip, init_sample_rate=16000, repaint_resample=2, repaint_jump=2)
    try:
        full, resumed = interrupted_then_resumed(pipe, tmp_path / "state.pt", 5, 2, **options)
    finally:
        pipe.scheduler = original
    assert torch.equal(full.latents, resumed.latents)
    assert np.array_equal(full.audio, resumed.audio)
    assert full.info["view_evaluations"] == resumed.info["view_evaluations"], "the counts continue too"
    assert case != "segments" or sizes == [2, 2, 2], "segments of two views, in each of the three runs"


def test_a_resumed_mad_panorama_equals_the_uninterrupted_one(sd, tmp_path):
    """MAD switches its merged self-attention off after its steps: a resumed run knows which steps were run."""
    pipe = PanoramaPipeline.from_pipe(sd)
    options = dict(height=64, width=128, view_width=64, num_inference_steps=6, seed=2, progress_bar=False,
                   method="mad", mad_ratio=0.5)
    for step in (1, 4):  # stopped before and after MAD's three steps
        full, resumed = interrupted_then_resumed(pipe, tmp_path / f"state{step}.pt", step, 1, **options)
        assert torch.equal(full.latents, resumed.latents)


def test_resuming_with_other_settings_is_refused_in_one_sentence(audioldm, tmp_path):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    state = tmp_path / "state.pt"
    with pytest.raises(Stop):
        pipe("rain", save_state=state, save_every=2, callback=stop_at(3), **AUDIO)
    with pytest.raises(SwapForwardError, match=r"^Cannot resume from '.*state.pt': it was saved with "
                                               r"--steps 8, this run has --steps 9; "
                                               r"resume with the same settings\.$"):
        pipe("rain", resume_from=state, **{**AUDIO, "num_inference_steps": 9})
    with pytest.raises(SwapForwardError, match=r"it was saved with --prompt 'rain', this run has --prompt 'snow'"):
        pipe("snow", resume_from=state, **AUDIO)
    (tmp_path / "other.pt").write_bytes(b"not a state")
    with pytest.raises(SwapForwardError, match=r"^Cannot resume from '.*other.pt': it is not a state file written by "
                                               r"--save-state\.$"):
        pipe("rain", resume_from=tmp_path / "other.pt", **AUDIO)
    with pytest.raises(SwapForwardError, match=r"^Cannot resume from '.*none.pt': no such file\.$"):
        pipe("rain", resume_from=tmp_path / "none.pt", **AUDIO)
    with pytest.raises(SwapForwardError, match=r"needs a seed or a generator"):
        pipe("rain", save_state=state, **{**AUDIO, "seed": None})
    with pytest.raises(SwapForwardError, match=r"save_every"):
        pipe("rain", save_state=state, save_every=0, **AUDIO)


def test_a_signal_while_writing_waits_until_the_result_is_written():
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    install()
    written = []
    try:
        with pytest.raises(Interrupted) as stop:
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                written.append("the whole result")
        assert written == ["the whole result"]
        assert stop.value.status == 143 and stop.value.name == "SIGTERM"
        with pytest.raises(Interrupted) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert stop.value.status == 130
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def start(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "swapforward", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)


def test_sigterm_mid_run_exits_143_leaves_no_file_and_the_run_resumes_to_the_same_bytes(tiny_model_dir, tmp_path,
                                                                                        monkeypatch):
    (tmp_path / "out").mkdir()
    args = ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.15", "--window-seconds", "0.064",
            "--steps", "200", "--seed", "4", "--spectrogram", "out/a.png"]
    process = start([*args, "-o", "out/a.wav", "--save-state", "state.pt", "--save-every", "20"], tmp_path)
    wait_for(lambda: (tmp_path / "state.pt").exists(), process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted (SIGTERM); nothing was written."
    assert os.listdir(tmp_path / "out") == [], "no output, no temporary file"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.chdir(tmp_path)
    resumed = runner.invoke(app, [*args, "-o", "out/a.wav", "--resume", "state.pt"])
    assert resumed.exit_code == 0, resumed.output
    whole = runner.invoke(app, [*args[:-2], "--spectrogram", "out/b.png", "-o", "out/b.wav"])
    assert whole.exit_code == 0, whole.output
    assert (tmp_path / "out" / "a.wav").read_bytes() == (tmp_path / "out" / "b.wav").read_bytes()
    assert (tmp_path / "out" / "a.png").read_bytes() == (tmp_path / "out" / "b.png").read_bytes()


def test_ctrl_c_in_a_batch_keeps_finished_jobs_whole_and_the_batch_resumes(tiny_model_dir, tmp_path, monkeypatch):
    """Job 0 is finished, job 1 (saving its state) is under way when Ctrl-C comes: job 0 stays whole, nothing of
    job 1 is written, and the next run skips job 0 and finishes job 1 from its state, to the uninterrupted bytes."""
    import json

    jobs = [{"prompt": f"rain {i}", "out": f"out/a{i}.wav", "spectrogram": f"out/a{i}.png", "model": tiny_model_dir,
             "seconds": 0.15, "window_seconds": 0.064, "steps": 300, "seed": i} for i in range(3)]
    jobs[0]["steps"] = 100
    jobs[1].update(save_state="states/job1.pt", save_every=50)
    (tmp_path / "states").mkdir()
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    process = start(["batch", "jobs.jsonl"], tmp_path)
    wait_for(lambda: (tmp_path / "states" / "job1.pt").exists(), process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert ("interrupted (SIGINT): 1 finished job(s) were kept whole, nothing of the job in flight was written."
            in stderr)
    assert sorted(os.listdir(tmp_path / "out")) == ["a0.png", "a0.wav"], "job 0 whole, nothing of job 1"
    assert sf.read(tmp_path / "out" / "a0.wav")[0].shape == (2400,)
    monkeypatch.chdir(tmp_path)
    jobs[2]["steps"] = 2
    uninterrupted = {**jobs[1], "out": "out/whole.wav", "spectrogram": "out/whole.png"}
    del uninterrupted["save_state"]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in [*jobs, uninterrupted]) + "\n")
    again = runner.invoke(app, ["batch", "jobs.jsonl"])
    assert "3 done, 1 skipped, 0 failed" in again.stdout
    assert (tmp_path / "out" / "a1.wav").read_bytes() == (tmp_path / "out" / "whole.wav").read_bytes()
    assert not (tmp_path / "states" / "job1.pt").exists(), "a finished job's state file is removed"
