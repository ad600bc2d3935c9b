"""How many views go in one denoiser call: sized from measured memory, halved on out-of-memory, bounded on CPU."""

import copy

import numpy as np
import pytest
import torch

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.runtime.memory import HOST_VIEW_BATCH, DeviceMemory, batch_limit, fit_in_memory, fixed_batches

WINDOW_S = 0.064


class FakeGPU:
    """Memory readings of a device with `capacity` bytes where each view of a call needs `per_view` bytes."""

    def __init__(self, capacity, per_view, resident=0):
        self.capacity, self.per_view = capacity, per_view
        self.allocated = self.peak_bytes = resident
        self.calls = []

    def model(self, x, t, ids):
        assert ids.shape[0] == x.shape[0], "every row keeps its position (its conditioning)"
        self.calls.append(x.shape[0])
        need = self.allocated + x.shape[0] * self.per_view
        if need > self.capacity:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        self.peak_bytes = max(self.peak_bytes, need)
        return x * 2

    def memory(self):
        def start():
            self.peak_bytes = self.allocated
            return self.allocated

        return DeviceMemory(start=start, peak=lambda: self.peak_bytes, free=lambda: self.capacity - self.allocated)


def test_batch_limit_is_the_free_memory_with_headroom_over_the_cost_of_a_view():
    assert batch_limit(1000, 100) == 8
    assert batch_limit(1000, 100, headroom=1.0) == 10
    assert batch_limit(50, 100) == 1, "one view per call at least"
    assert batch_limit(1000, 0) == 800, "a view that costs nothing measurable is not a division by zero"


def test_first_call_measures_one_view_and_sizes_the_batches_from_free_memory():
    gpu = FakeGPU(capacity=1000 + 500, per_view=100, resident=500)
    call = fit_in_memory(gpu.model, gpu.memory())
    x = torch.arange(20.0).view(20, 1)
    assert torch.equal(call(x, None, torch.arange(x.shape[0])), x * 2), "views come back in order"
    assert gpu.calls == [1, 8, 8, 3]
    gpu.calls.clear()
    call(x, None, torch.arange(x.shape[0]))
    assert gpu.calls == [8, 8, 4], "the size is measured once per run"


def test_a_larger_gpu_takes_every_view_in_one_call():
    gpu = FakeGPU(capacity=10**6, per_view=100)
    call = fit_in_memory(gpu.model, gpu.memory())
    x = torch.zeros(30, 1)
    call(x, None, torch.arange(x.shape[0]))
    call(x, None, torch.arange(x.shape[0]))
    assert gpu.calls == [1, 29, 30]


def test_out_of_memory_halves_the_batch_and_remembers():
    seen = []

    def model(x, t, ids):  # a GPU that fits three latents per call, whatever the measurement said
        seen.append(x.shape[0])
        if x.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return x * 2

    call = fit_in_memory(model, host_limit=100)
    x = torch.arange(10.0).view(10, 1)
    assert torch.equal(call(x, None, torch.arange(x.shape[0])), x * 2)
    assert seen == [10, 5, 2, 2, 2, 2, 2]
    seen.clear()
    call(x, None, torch.arange(x.shape[0]))
    assert seen == [2, 2, 2, 2, 2], "the size that fitted is kept for the next steps"


@pytest.mark.parametrize("measured", [False, True])
def test_out_of_memory_with_one_view_is_one_sentence(measured):
    def hopeless(x, t, ids):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    memory = FakeGPU(1, 1).memory() if measured else None
    with pytest.raises(SwapForwardError, match="runs out of memory even with one view per model call"):
        fit_in_memory(hopeless, memory)(torch.zeros(4, 1), None, torch.arange(4))


def test_batches_the_user_fixed_run_out_of_memory_in_one_sentence():
    def model(x, t, ids):
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return x

    call = fixed_batches(model, "use a smaller view_batch_size.")
    assert torch.equal(call(torch.ones(2, 1), None, torch.arange(2)), torch.ones(2, 1))
    with pytest.raises(SwapForwardError) as info:
        call(torch.ones(5, 1), None, torch.arange(5))
    assert str(info.value) == "The GPU runs out of memory with 5 views per model call; use a smaller view_batch_size."


def test_without_memory_readings_calls_hold_the_host_limit():
    seen = []
    call = fit_in_memory(lambda x, t, ids: seen.append(x.shape[0]) or x)
    call(torch.zeros(1, 1), None, torch.arange(1))
    call(torch.zeros(20, 1), None, torch.arange(20))
    assert seen == [1, HOST_VIEW_BATCH, HOST_VIEW_BATCH, 20 - 2 * HOST_VIEW_BATCH]


def test_fixed_batches_split_the_rows_and_their_positions_alike():
    seen = []
    call = fixed_batches(lambda x, t, ids: seen.append(ids.tolist()) or x, "hint", size=3)
    x = torch.arange(7.0).view(7, 1)
    assert torch.equal(call(x, None, torch.arange(7)), x)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]


def test_cpu_memory_has_no_readings():
    assert DeviceMemory.of(torch.device("cpu")) is None


def test_the_denoisers_batch_stays_bounded_as_the_audio_grows(audioldm):
    long = LongAudioPipeline.from_pipe(audioldm)
    kwargs = dict(window_seconds=WINDOW_S, num_inference_steps=4, r_guide=0.5, seed=0, progress_bar=False)
    short = long("rain", audio_length_in_s=0.3, **kwargs)
    longer = long("rain", audio_length_in_s=1.2, **kwargs)
    assert short.layout.num_views < HOST_VIEW_BATCH < longer.layout.num_views
    assert short.info["views_per_call"] == short.layout.num_views + 1, "views and reference in one call"
    assert longer.info["views_per_call"] == HOST_VIEW_BATCH
    one_call = long("rain", audio_length_in_s=1.2, view_batch_size=100, **kwargs)
    assert one_call.info["views_per_call"] == longer.layout.num_views + 1
    assert torch.allclose(longer.latents, one_call.latents, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [
    dict(method="safa", loop=True),
    dict(method="safa", loop=False, num_waveforms_per_prompt=2),
    dict(method="md-tri", loop=True, scheduler="dpm"),
    dict(method="safa", loop=False, prompt=[(0, "rain"), (1.2, "storm")], audio_length_in_s=2.5, window_seconds=0.5),
])
def test_a_run_in_segments_of_views_equals_the_run_in_one(audioldm, monkeypatch, case):
    """Long runs take their views a few at a time (a step's memory stays bounded); with one view per model call the
    denoiser sees the same batches, so the result is the same bit for bit: references, loops, takes, multistep
    schedulers and timelines included."""
    from diffusers import DPMSolverMultistepScheduler

    from swapforward import LongAudioPipeline
    from swapforward.pipelines import joint
    from swapforward.runtime import memory

    case = dict(case)
    pipe = copy.copy(audioldm)
    if case.pop("scheduler", None) == "dpm":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(audioldm.scheduler.config)
    prompt = case.pop("prompt", "rain on a tin roof")
    args = dict(audio_length_in_s=0.4, window_seconds=0.064, num_inference_steps=4, seed=2, view_batch_size=1,
                progress_bar=False)
    args.update(case)
    whole = LongAudioPipeline.from_pipe(pipe)(prompt, **args)
    view_bytes = 4 * round(args["window_seconds"] / 0.002) * 8 * 4  # the tiny AudioLDM: 4 channels, 2 ms frames, 8 bins
    monkeypatch.setattr(memory, "SEGMENT_BYTES", 3 * view_bytes * args.get("num_waveforms_per_prompt", 1))
    sizes = []
    monkeypatch.setattr(joint, "segment_views", lambda *a: sizes.append(memory.segment_views(*a)) or sizes[-1])
    parts = LongAudioPipeline.from_pipe(pipe)(prompt, **args)
    assert whole.layout.num_views >= 6 and sizes == [3]
    assert torch.equal(parts.latents, whole.latents) and np.array_equal(parts.audio, whole.audio)
    assert parts.model_calls == whole.model_calls


@pytest.mark.parametrize("loop", [False, True])
def test_an_output_too_long_to_hold_streams_to_the_same_file_bytes(audioldm, monkeypatch, tmp_path, loop):
    """Past STREAM_SAMPLES the waveform is never held: the vocoder's pieces go to the file as they are decoded. The
    file is the one the in-memory write makes, byte for byte (WAV and FLAC), loops and cut lengths alike."""
    import soundfile as sf

    from swapforward.models.audioldm import AudioLDMAdapter
    from swapforward.runtime import memory

    pipe = LongAudioPipeline.from_pipe(audioldm)
    args = dict(audio_length_in_s=0.9, window_seconds=0.064, num_inference_steps=2, seed=4, loop=loop,
                progress_bar=False)  # 0.9 s: 450 frames of 2 ms, so not a whole number of vocoder tiles
    held = pipe("rain", **args)
    monkeypatch.setattr(memory, "STREAM_SAMPLES", 1000)
    pieces = []
    original = AudioLDMAdapter.decode_chunks

    def counted(self, *a, **k):
        mel, waves = original(self, *a, **k)
        return mel, lambda: (pieces.append(p.shape[-1]) or p for p in waves())

    monkeypatch.setattr(AudioLDMAdapter, "decode_chunks", counted)
    streamed = pipe("rain", **args)
    assert held.audio is not None and streamed.audio is None and streamed.samples == held.samples == 14400
    assert streamed.seconds == held.seconds == 0.9
    for ext in ("wav", "flac"):
        a, b = held.save(tmp_path / f"held.{ext}"), streamed.save(tmp_path / f"streamed.{ext}")
        assert open(a, "rb").read() == open(b, "rb").read(), ext
    assert len(pieces) > 10 and max(pieces) <= 32 * 4 * 2 * 4, "pieces of about a vocoder tile, not the whole"
    assert np.array_equal(streamed.waveform(), held.audio), "the Python API can still have it whole"
    assert sf.info(tmp_path / "streamed.flac").frames == 14400
    again = streamed.save(tmp_path / "again.wav", sample_rate=8000)  # a resampled copy needs it whole: still works
    assert sf.info(again).frames == 7200


def test_a_long_spectrogram_is_averaged_in_blocks_before_it_is_drawn():
    from swapforward.io.files import SPECTROGRAM_FRAMES, decimated

    short = np.random.default_rng(0).random((SPECTROGRAM_FRAMES, 8), dtype=np.float32)
    assert decimated(short) is short, "pictures of minutes are drawn from every frame, as before"
    long = np.arange(3 * SPECTROGRAM_FRAMES + 5, dtype=np.float32)[:, None].repeat(2, 1)
    small = decimated(long)
    assert small.shape == (12290, 2) and small.shape[0] <= SPECTROGRAM_FRAMES  # blocks of 4 frames, and the rest
    assert small[0, 0] == 1.5 and small[-1, 0] == long[-1, 0]


def test_the_memory_check_counts_at_least_what_a_generation_adds_in_a_fresh_process():
    """For a grid of lengths, takes, widths and methods, held and streamed, in fresh processes (two at a time): the
    host memory a generation adds after the check (its peak resident set, reset at the check) is no more than the
    check counted, so what the check admits does not fail for lack of memory. The streamed point lowers the
    streaming threshold so that two minutes behave as hours do."""
    import json
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    def measure(point: tuple) -> dict:
        run = subprocess.run([sys.executable, str(Path(__file__).parent / "memory_grid.py"), *map(str, point)],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        return json.loads(run.stdout.splitlines()[-1])

    points = (("audio", 20, "safa", 3), ("audio", 150, "md-loop", 1), ("audio", 120, "md-loop", 2, 500_000),
              ("panorama", 16384, "md"))
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(measure, points))
    for row in rows:
        assert row["added"] <= row["counted"], row
    held, streamed = rows[1], rows[2]
    assert held["added"] > rows[0]["added"] + 20 * 2**20, "the measure sees the output grow"
    assert streamed["counted"] < 2 * held["counted"], "two streamed takes of 120 s are counted below one held 150 s"


def test_a_spectrogram_of_hours_leaves_its_thousands_of_views_unmarked(tmp_path, monkeypatch):
    """8 hours are 3,513 views: their lines would cover the picture, so the label says how many there are instead."""
    import matplotlib.axes

    from swapforward.io.files import MARKED_VIEWS, save_spectrogram

    lines = []
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", lambda self, *a, **k: lines.append(a))
    mel = np.zeros((4000, 8), dtype=np.float32)
    save_spectrogram(tmp_path / "few.png", mel, 100.0, [0.0, 40.0], [(40.0, 50.0)])
    assert len(lines) == 2
    save_spectrogram(tmp_path / "many.png", mel, 100.0, list(np.linspace(0, 99, MARKED_VIEWS + 1)), [])
    assert len(lines) == 2, "no view lines past MARKED_VIEWS"
