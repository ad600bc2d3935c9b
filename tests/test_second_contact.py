"""Issue 36's defects, each with its exact input: one sentence where there was a traceback or a late refusal."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.frontends.batch import load_jobs
from swapforward.frontends.common import check_outputs
from swapforward.frontends.registry import KINDS
from swapforward.io.files import STALE_SECONDS, write_atomic, write_audio
from swapforward.models import load_pipeline
from swapforward.options import AUDIO, OUTPUT
from swapforward.prompts import parse_start
from swapforward.runtime.resume import RunState, check_resumable


def test_a_spreadsheet_csv_with_a_byte_order_mark_is_read(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_bytes("prompt,seconds,out\nrain,1,rain.wav\n".encode("utf-8-sig"))
    [job] = load_jobs(jobs)
    assert job.request.prompt == "rain" and job.request.audio_length_in_s == 1.0


def test_seconds_of_m_ss_must_be_below_60():
    assert parse_start("1:15") == parse_start("75") == 75.0
    assert parse_start("1:02:03") == 3723.0
    for bad in ("1:75", "1:60", "1:60:00"):
        with pytest.raises(SwapForwardError, match="must be below 60"):
            parse_start(bad)
    with pytest.raises(SwapForwardError, match="'1:75' is not a time"):
        AUDIO.check({"prompt": [("0", "rain"), ("1:75", "storm")]}, "cli")


def test_an_unsupported_pipeline_class_is_named_with_its_article(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "AceStepPipeline"}')
    with pytest.raises(SwapForwardError, match="is an AceStepPipeline, which"):
        load_pipeline(str(tmp_path), KINDS["panorama"].pipeline_class().adapters)


def test_the_mad_refusal_offers_every_other_method(stable_audio):
    with pytest.raises(SwapForwardError, match="use safa, safa-selfloop, md-envelope, md"):
        LongAudioPipeline.from_pipe(stable_audio)("rain", audio_length_in_s=0.5, method="mad", num_inference_steps=2,
                                                   seed=0, progress_bar=False)


def test_resuming_a_state_of_the_other_kind_says_so(tmp_path):
    state = RunState({"audio_length_in_s": 0.2, "prompt": "rain"}, None, [], (0, 0, 0))
    with pytest.raises(SwapForwardError, match="it is the state of an audio run, and this is a panorama run"):
        check_resumable(state, {"width": 512, "prompt": "rain"}, tmp_path / "a.state")


def test_a_killed_runs_temporary_file_is_removed_by_the_next_write(tmp_path):
    left = tmp_path / ".a.k3x9_q2z.flac"  # what a SIGKILL during the write of a.flac leaves
    fresh = tmp_path / ".a.p0p0p0p0.flac"  # another run's, being written now
    other = tmp_path / ".b.k3x9_q2z.flac"
    for path in (left, fresh, other):
        path.write_bytes(b"")
    old = time.time() - STALE_SECONDS - 60
    os.utime(left, (old, old))
    os.utime(other, (old, old))
    write_atomic(tmp_path / "a.flac", lambda tmp: tmp.write_bytes(b"flac"))
    assert not left.exists() and fresh.exists() and other.exists()
    assert (tmp_path / "a.flac").read_bytes() == b"flac"


def test_a_sidecar_path_that_is_a_folder_is_refused_before_work(tmp_path):
    (tmp_path / "o.wav.json").mkdir()
    output = OUTPUT["audio"].check({"out": str(tmp_path / "o.wav"), "sidecar": "true"}, "cli")
    with pytest.raises(SwapForwardError, match="o.wav.json.*is a folder"):
        check_outputs(KINDS["audio"], output)


@pytest.fixture
def full_disk(tmp_path):
    """A 100 KiB tmpfs (needs root and a kernel that lets this container mount one)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_sentence_and_leaves_no_file(full_disk):
    with pytest.raises(SwapForwardError, match="the disk is full"):
        write_audio(full_disk / "rain.wav", np.zeros((1, 160000), dtype=np.float32), 16000)
    assert os.listdir(full_disk) == []


def test_loudness_on_too_short_an_output_is_refused_before_the_model_loads_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "swapforward", "audio", "rain", "--seconds", "0.1", "--loudness",
                           "-14", "--model", "/nonexistent", "--out", "o.wav"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "--loudness needs at least 0.4 s" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not list(Path(tmp_path).iterdir())


def test_a_near_one_overlap_is_refused_before_its_buffers_are_made(audioldm):
    """Issue 36's `--overlap 0.999`: the layout's views x window buffers are counted before any is made (the swap
    weights' own buffer, which asked for 31 GB at 60 s, is now linear in the coverage)."""
    pipe = LongAudioPipeline.from_pipe(audioldm)
    request = pipe.resolve(AUDIO.check({"prompt": "rain", "audio_length_in_s": 7200, "overlap": 0.999}))
    with pytest.raises(SwapForwardError, match=r"overlap=0.999 lays out \d+ views of 5120 frames, whose buffers need"):
        pipe.layout(request)
    layout, _ = pipe.layout(request.replace(overlap=0.5))
    assert layout.num_views > 1


def test_a_refusal_after_the_model_loads_names_the_options_as_the_command_line_does(tiny_model_dir, tmp_path):
    """The pipeline's own checks name `overlap=`; on the command line the same sentence says `--overlap=`."""
    done = subprocess.run([sys.executable, "-m", "swapforward", "audio", "rain", "--seconds", "7200", "--overlap",
                           "0.999", "--model", str(tiny_model_dir), "--window-seconds", "0.256", "--steps", "1",
                           "--out", "o.wav"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "error: --overlap=0.999 lays out" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not list(Path(tmp_path).iterdir())


def test_takes_that_cannot_stream_are_counted_as_held():
    """A take is streamed only past the threshold in samples x channels and when nothing needs it whole (ranking,
    a splice, a loop resampled): the check counts the others as held."""
    from swapforward.runtime import memory

    hours = 2 * memory.STREAM_SAMPLES / 16000
    streamed = memory.audio_bytes(hours, 16000, 1)
    assert memory.audio_bytes(hours, 16000, 1, streamable=False) > 4 * streamed
    half = 0.75 * memory.STREAM_SAMPLES / 16000  # below the threshold in samples, above it in samples x 2 channels
    assert memory.audio_bytes(half, 16000, 1) == memory.audio_bytes(half, 16000, 1, streamable=False)
    assert memory.audio_bytes(half, 16000, 1, channels=2) < memory.audio_bytes(half, 16000, 1, channels=2,
                                                                               streamable=False)


def test_swap_weights_take_memory_linear_in_the_coverage():
    from swapforward.core.layout import ViewLayout
    from swapforward.core.merge import swap_weights

    layout = ViewLayout.build(3000, 512, stride=2)  # every frame covered by up to 256 views
    weights = swap_weights(layout)
    owners = torch.zeros(layout.length)
    owners.index_add_(0, layout.indices.flatten(), weights.flatten())
    assert torch.equal(owners, torch.ones(layout.length)), "every frame has exactly one owning view"


@pytest.mark.parametrize("takes", [1, 4, 6])
def test_the_memory_advice_is_a_length_that_then_passes(monkeypatch, takes):
    """Issue 36: 86400 s x 4 takes was told 'at most 43409 s', then refused at 43000 s; 4000 s x 6 takes was counted
    as if streamed although every take of 4000 s is held."""
    import re

    from swapforward.runtime import memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 8 * 2**30)
    with pytest.raises(SwapForwardError) as refused:
        memory.check_audio_memory("--seconds", 86400.0, 16000, takes)
    assert "more than 80% of the 8.0 GiB free" in str(refused.value)
    most = float(re.search(r"at most (\d+) s", str(refused.value)).group(1))
    memory.check_audio_memory("--seconds", most, 16000, takes)  # passes
    with pytest.raises(SwapForwardError):
        memory.check_audio_memory("--seconds", most + 1, 16000, takes)
    held = memory.audio_bytes(4000, 16000, 6)
    assert held == 4000 * 16000 * 6 * memory.sample_bytes(4000 * 16000), "each 4000 s take is held, not streamed"
    assert held > memory.audio_bytes(4500, 16000, 1), "a streamed 4500 s take costs less than six held ones"


def test_a_closed_tab_stops_only_its_own_run_within_a_view_batch(tiny_model_dir, tiny_sd_dir, tmp_path):
    import threading

    from swapforward.frontends.app import Cancelled, Studio

    studio = Studio(tiny_model_dir, tiny_sd_dir, tmp_path / "results", device="cpu")
    outcome, steps = [], []

    def report(done, total):
        steps.append(done)
        if done == 1:
            assert not studio.cancel_for("another tab"), "another visitor's tab closing leaves it running"
            assert studio.cancel_for("my tab")

    def run():
        try:
            studio.audio("rain", seed=1, progress=report, owner="my tab", seconds=0.15, steps=30, method="md",
                         window_seconds=0.064)
        except Cancelled as stop:
            outcome.append(str(stop))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(120)
    assert outcome == ["cancelled in step 2 of 30; nothing was written"] and steps == [1]
    assert studio.owner is None and not studio.cancel_for("my tab")
