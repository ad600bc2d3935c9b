"""Streams (issue 35): the engine's oracles (one block is the plain run, piece sizes and resuming change no sample),
the continuation, live prompt changes, the writers, the command line and the HTTP server, on the tiny AudioLDM."""

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
import torch

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.io.streaming import GrowingFile, PipeWriter, wav_header
from swapforward.pipelines.continuation import Continuation
from swapforward.pipelines.stream import StreamState

WINDOW_S = 0.064  # 32 latent frames of 2 ms in the tiny models: a block of 2 views is 58 frames, 0.116 s
KW = dict(window_seconds=WINDOW_S, num_inference_steps=2, seed=3, progress_bar=False)


@pytest.fixture(scope="module")
def long(audioldm):
    return LongAudioPipeline.from_pipe(audioldm)


def joined(stream):
    return np.concatenate(list(stream), axis=-1)


@pytest.mark.parametrize("method", ["safa", "md-envelope", "md-tri", "mad"])
def test_a_stream_of_one_block_is_the_plain_run_bit_for_bit(long, method):
    streamed = joined(long.stream("rain", audio_length_in_s=0.09, method=method, **KW))
    plain = long("rain", audio_length_in_s=0.09, method=method, **KW).audio
    assert streamed.shape == plain.shape == (1, 1440)
    assert np.array_equal(streamed, plain)


def test_the_first_block_of_a_long_stream_is_the_plain_run_of_one_block(long):
    stream = long.stream("rain", audio_length_in_s=1.0, **KW)
    first = next(iter(stream))
    plain = long("rain", audio_length_in_s=0.116, method="md-envelope", **KW).audio
    assert stream.block_frames == 58 and stream.context == 6
    assert 0 < first.shape[-1] < plain.shape[-1]
    assert np.array_equal(first, plain[:, : first.shape[-1]])


def test_piece_sizes_change_no_sample_and_the_length_is_exact(long):
    options = {**KW, "audio_length_in_s": 0.5, "num_inference_steps": 2}
    blocks = joined(long.stream("rain", **options))
    assert blocks.shape == (1, 8000) and np.isfinite(blocks).all() and np.abs(blocks).max() > 0
    for size in (1, 777, 9000):
        pieces = list(long.stream("rain", **options).pieces(size))
        assert all(p.shape[-1] == size for p in pieces[:-1])
        assert np.array_equal(np.concatenate(pieces, axis=-1), blocks)


def test_a_resumed_stream_equals_the_uninterrupted_one(long, tmp_path):
    whole = joined(long.stream("rain", audio_length_in_s=0.6, **KW))
    stream = long.stream("rain", audio_length_in_s=0.6, **KW)
    pieces = iter(stream)
    before = [next(pieces) for _ in range(3)]
    path = stream.save_state(tmp_path / "rain.state")
    assert os.path.getsize(path) < 200_000, "a small state: a block's context, no audio history"
    after = joined(long.stream("rain", audio_length_in_s=0.6, resume_from=path, **KW))
    assert np.array_equal(np.concatenate(before + [after], axis=-1), whole)


def test_resuming_with_other_settings_is_one_sentence(long, tmp_path):
    stream = long.stream("rain", audio_length_in_s=0.6, **KW)
    next(iter(stream))
    path = stream.save_state(tmp_path / "rain.state")
    with pytest.raises(SwapForwardError, match="saved with prompt 'rain', not 'snow'"):
        long.stream("snow", audio_length_in_s=0.6, resume_from=path, **KW)
    (tmp_path / "junk.state").write_bytes(b"not a state")
    with pytest.raises(SwapForwardError, match="Cannot read the stream state"):
        StreamState.load(tmp_path / "junk.state")


def test_every_block_after_the_first_continues_the_last_exactly(long):
    stream = long.stream("rain", **KW)
    blocks = []
    original = stream.pipe.adapter.decode_chunks

    def keep(latents, window, loop):
        blocks.append(latents.clone())
        return original(latents, window=window, loop=loop)

    stream.pipe.adapter.decode_chunks = keep
    try:
        pieces = iter(stream)
        for _ in range(3):
            next(pieces)
    finally:
        stream.pipe.adapter.decode_chunks = original
    context = stream.context
    for previous, block in zip(blocks, blocks[1:], strict=False):
        assert torch.equal(block[:, :, :context], previous[:, :, -context:])
        assert not torch.equal(block[:, :, context:2 * context], previous[:, :, -context:])


def test_the_continuation_follows_the_previous_trajectory_at_every_step():
    steps, frames = 3, 4
    previous = torch.randn(steps + 1, 1, 2, frames, 3)
    continuation = Continuation(2, frames, steps, previous)
    canvas = continuation.start(torch.randn(1, 2, 10, 3), None, None)
    assert torch.equal(canvas[:, :, :frames], previous[0])
    for k in range(steps):
        canvas = continuation.after_step(k, torch.randn(1, 2, 10, 3), None, None)
        assert torch.equal(canvas[:, :, :frames], previous[k + 1])
    assert continuation.tail().shape == previous.shape
    assert torch.equal(continuation.tail()[-1], canvas[:, :, -frames:])


def test_a_live_prompt_change_starts_at_the_next_block_and_leaves_the_past_alone(long):
    plain = long.stream("rain", **KW)
    changed = long.stream("rain", **KW)
    a, b = iter(plain), iter(changed)
    same = [next(a) for _ in range(2)]
    assert all(np.array_equal(x, next(b)) for x in same)
    at = changed.set_prompt("thunder")
    assert at == pytest.approx(changed.state.start * 32 / 16000 + changed.context * 32 / 16000)
    assert not np.array_equal(np.concatenate([next(a), next(a)], -1), np.concatenate([next(b), next(b)], -1))
    with pytest.raises(SwapForwardError, match="prompt is empty"):
        changed.set_prompt("  ")


def test_a_timeline_runs_over_stream_time(long):
    options = {**KW, "audio_length_in_s": 2.2, "num_inference_steps": 1, "window_seconds": 0.512}
    plain = joined(long.stream("rain", **options))
    timeline = joined(long.stream(prompt=[(0, "rain"), (1.1, "thunder")], **options))
    assert timeline.shape == plain.shape == (1, 35200)
    before = 12800  # the first block (0.92 s, up to its cut) is made as without the change
    assert np.array_equal(timeline[:, :before], plain[:, :before])
    assert not np.array_equal(timeline[:, 20000:], plain[:, 20000:])


@pytest.mark.parametrize("options, words", [
    ({"loop": True}, "loop does not apply to a stream"),
    ({"num_waveforms_per_prompt": 2}, "a stream is one take"),
    ({"bpm": 120, "bars": 4}, "bpm does not apply to a stream"),
    ({"init_audio": np.zeros((1, 800), dtype=np.float32), "init_sample_rate": 16000}, "starts from noise"),
    ({"block_views": 0}, "block_views"),
    ({"continuation": "glue"}, "continuation"),
])
def test_what_a_stream_cannot_do_is_one_sentence(long, options, words):
    with pytest.raises(SwapForwardError, match=words):
        long.stream("rain", **{**KW, **options})


def test_a_one_prompt_method_refuses_a_live_change(long):
    stream = long.stream("rain", method="mad", **KW)
    with pytest.raises(SwapForwardError, match="mad conditions every view alike"):
        stream.set_prompt("thunder")


def test_stop_ends_the_stream_after_the_block_with_nothing_held_back(long):
    stream = long.stream("rain", **KW)
    pieces = iter(stream)
    first = next(pieces)
    stream.stop()
    rest = list(pieces)
    assert len(rest) == 1 and rest[0].shape[-1] == stream.crossfade, "the held-back samples end it"
    assert first.shape[-1] + rest[0].shape[-1] == stream.state.emitted
    assert stream.state.pending is None


def test_memory_does_not_grow_with_the_blocks(long):
    stream = long.stream("rain", **KW)
    pieces = iter(stream)
    sizes = []
    for _ in range(6):
        next(pieces)
        state = stream.state
        sizes.append(state.tail.numel() + (0 if state.pending is None else state.pending.size))
    assert len(set(sizes)) == 1


def test_writers_give_valid_streams_and_files(tmp_path):
    rate, piece = 16000, (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)[None]
    header = wav_header(rate, 1)
    assert header[:4] == b"RIFF" and struct.unpack("<I", header[40:44])[0] == 0xFFFFFFFF

    class Sink:
        data = b""

        def write(self, b):
            self.data += b

        def flush(self):
            pass

    sink = Sink()
    writer = PipeWriter(rate, 1, "wav", sink)
    writer.write(piece)
    writer.write(piece)
    assert len(sink.data) == 44 + 2 * 3200
    for ext in ("wav", "flac", "ogg", "opus"):
        growing = GrowingFile(tmp_path / f"a.{ext}", rate, 1)
        growing.write(piece)
        growing.write(piece)
        path = growing.close()
        info = sf.info(path)
        assert abs(info.frames / info.samplerate - 0.2) < 0.03, ext
    assert sf.read(tmp_path / "a.wav")[0].shape == (3200,)


def test_stream_command_writes_an_exact_wav_stream_to_stdout(tiny_model_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "swapforward", "stream", "rain", "--model", tiny_model_dir,
                           "--window-seconds", "0.064", "--steps", "3", "--seconds", "0.3", "--seed", "1", "--out",
                           "-"], capture_output=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout[:4] == b"RIFF" and len(done.stdout) == 44 + 2 * 4800
    assert b"first audio" in done.stderr


def test_stream_command_refuses_bad_input_before_loading(tmp_path):
    for args, words in ((["--loop", "--out", "a.wav"], "loop does not apply"),
                        (["--out", "a.txt"], "unsupported format"),
                        (["--out", "-", "--sample-rate", "44100"], "standard output gets the model's own rate"),
                        ([], "Give --out"),
                        (["--out", "a.wav", "--format", "raw"], "--format raw is for --out -")):
        done = subprocess.run([sys.executable, "-m", "swapforward", "stream", "rain", "--model", "/nonexistent",
                               *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_stream_command_ctrl_c_leaves_a_valid_growing_file(tiny_model_dir, tmp_path):
    out = tmp_path / "night.wav"
    process = subprocess.Popen([sys.executable, "-m", "swapforward", "stream", "rain", "--model", tiny_model_dir,
                                "--window-seconds", "0.064", "--steps", "2", "--seed", "1", "--out", str(out),
                                "--save-state", str(tmp_path / "night.state")],
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 44 + 2 * 4000):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "stopped (SIGINT)" in stderr
    data, rate = sf.read(out)
    assert rate == 16000 and len(data) >= 4000
    assert (tmp_path / "night.state").exists()


@pytest.fixture
def served(long):
    """A broadcast of an endless tiny stream on a loopback port, served by uvicorn in a thread."""
    import socket

    import uvicorn

    from swapforward.frontends.live import Broadcast, build_server

    stream = long.stream("rain", **{**KW, "num_inference_steps": 2})
    broadcast = Broadcast(stream, ahead=0.5).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_server(broadcast), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", broadcast
    broadcast.close()
    server.should_exit = True
    thread.join(timeout=30)
    broadcast.thread.join(timeout=60)


def _post(url, body):
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        return 200, json.loads(urllib.request.urlopen(request, timeout=30).read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_stream_plays_changes_and_pauses_without_listeners(served):
    url, broadcast = served
    assert b"<audio" in urllib.request.urlopen(url + "/", timeout=30).read()
    audio = urllib.request.urlopen(url + "/stream.wav", timeout=60)
    assert audio.read(44)[:4] == b"RIFF"
    assert len(audio.read(3200)) == 3200
    code, reply = _post(url + "/control", json.dumps({"prompt": "thunder"}).encode())
    assert code == 200 and reply["prompt"] == "thunder"
    assert json.loads(urllib.request.urlopen(url + "/status", timeout=30).read())["prompt"] == "thunder"
    assert _post(url + "/control", b"{}")[0] == 400
    assert "not JSON" in _post(url + "/control", b"{")[1]["error"]
    audio.close()
    deadline = time.time() + 30
    while broadcast.listeners and time.time() < deadline:
        time.sleep(0.1)
    assert broadcast.listeners == 0, "a listener who leaves is noticed"
    time.sleep(1.0)
    made = broadcast.made
    time.sleep(1.5)
    assert broadcast.made == made, "nobody listens: nothing is made"


def test_two_listeners_share_one_generation(served):
    url, broadcast = served
    first = urllib.request.urlopen(url + "/stream.wav", timeout=60)
    second = urllib.request.urlopen(url + "/stream.wav", timeout=60)
    first.read(44 + 1600)
    second.read(44 + 1600)
    assert broadcast.listeners == 2
    assert broadcast.stream.state.block * broadcast.stream.block_seconds < 20, "made once, not once per listener"
    first.close()
    second.close()


def test_the_lab_stream_table_tells_the_continuations_apart():
    """In the styles world: a shared reference with md-envelope keeps block 1's style better than independent blocks
    and copies nothing, SaFa's swapped shared reference copies, and following the previous trajectory removes most
    of the seam that independent blocks leave."""
    from swapforward.lab import stream as lab_stream
    from swapforward.lab.run import Lab
    from swapforward.lab.worlds import StylesWorld

    lab, world = Lab(steps=10), StylesWorld()
    Candidate = lab_stream.Candidate
    rows = {c.name: lab_stream.chain(lab, world, c, blocks=5, streams=128)
            for c in (Candidate("md-tri", "independent"), Candidate("md-tri"), Candidate("md-envelope"),
                      Candidate("safa"))}
    independent, trajectory = rows["md-tri (independent)"], rows["md-tri (trajectory)"]
    envelope, safa = rows["md-envelope (trajectory, shared reference)"], rows["safa (trajectory, shared reference)"]
    assert envelope["agreement"][5] > independent["agreement"][5] + 0.05
    assert safa["repetition"] > 0.2 and envelope["repetition"] < 0.1 and independent["repetition"] < 0.1
    assert independent["seam_step"] > 1.5 > trajectory["seam_step"]
    assert lab_stream.meets(safa)["repetition"] is False and lab_stream.meets(envelope)["repetition"] is True
    assert envelope["calls_per_window"] > trajectory["calls_per_window"], "the reference view costs calls"


def test_following_the_trajectory_brings_a_chain_closer_to_the_truth_than_replacing():
    """Exact, in the Gaussian world: MD*'s chain of blocks against the true long process, KL per frame."""
    from swapforward.lab import stream as lab_stream
    from swapforward.lab.run import Lab
    from swapforward.lab.worlds import GaussianWorld

    lab, Candidate = Lab(steps=10), lab_stream.Candidate
    rows = [lab_stream.gaussian_row(lab, GaussianWorld(), Candidate("md-tri", how), blocks=3)
            for how in ("independent", "replace", "trajectory")]
    independent, replaced, followed = (r["kl_per_frame"] for r in rows)
    assert followed < replaced < independent
    assert all(r["lost_dimensions"] == 0 and not r["sampled"] for r in rows)
    assert followed > rows[2]["whole_kl_per_frame"], "a chain is still further from the truth than one long run"
