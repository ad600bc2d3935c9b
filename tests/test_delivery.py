"""Sound and images ready to drop in (issue 13): bar-exact lengths, takes, ranking, formats, rates, loudness, tags."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.frontends.cli import app
from swapforward.io.delivery import normalize_loudness, resample_circular
from swapforward.options import AUDIO, OUTPUT

WINDOW_S = 0.064
FAST = dict(window_seconds=WINDOW_S, num_inference_steps=2, progress_bar=False)


@pytest.mark.parametrize("loop", [False, True])
def test_bars_at_a_tempo_last_exactly_their_samples(audioldm, loop):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    out = pipe("a drum loop", bpm=333, bars=1, beats_per_bar=1, loop=loop, seed=1, **FAST)
    samples = round(1 * 1 * 60 / 333 * 16000)  # 2883: not a whole number of 32-sample latent frames
    assert out.audio.shape == (1, samples) and samples % 32
    if loop:
        jumps = np.abs(np.diff(out.audio[0]))
        assert abs(out.audio[0, -1] - out.audio[0, 0]) <= jumps.max(), "the wrap is no bigger a jump than inside"
        assert out.info["time_stretch"] == pytest.approx(samples / (round(samples / 32) * 32))


def test_circular_resampling_keeps_a_loop_closed():
    t = np.arange(1000) / 1000
    loop = np.stack([np.sin(2 * np.pi * 5 * t), np.cos(2 * np.pi * 30 * t) * 0.5]).astype(np.float32)
    out = resample_circular(loop, 1013)
    assert out.shape == (2, 1013)
    assert np.abs(out[:, -1] - out[:, 0]).max() <= np.abs(np.diff(out, axis=1)).max()
    assert np.allclose(out[0], np.sin(2 * np.pi * 5 * np.arange(1013) / 1013), atol=1e-5), "band-limited exact"


def test_takes_with_seeds_s_and_s_plus_1_equal_single_runs(audioldm):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    args = dict(audio_length_in_s=0.15, r_guide=0.5, **FAST)
    # a batch the size of one canvas (3 views + reference) gives every call the rows of a single run: bit for bit
    takes = pipe("rain", num_waveforms_per_prompt=2, seed=5, view_batch_size=4, **args)
    one, two = pipe("rain", seed=5, view_batch_size=4, **args), pipe("rain", seed=6, view_batch_size=4, **args)
    assert [t.info["seed"] for t in takes.takes] == [5, 6] and len(takes.audios) == 2
    assert torch.equal(takes.takes[0].latents, one.latents) and torch.equal(takes.takes[1].latents, two.latents)
    together = pipe("rain", num_waveforms_per_prompt=2, seed=5, **args)  # all rows in one call: rounding only
    assert together.info["views_per_call"] == 8
    torch.testing.assert_close(together.takes[1].latents, two.latents, rtol=1e-4, atol=1e-4)


def test_ranking_orders_takes_by_the_injected_scores(audioldm, sd):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    seen = {}

    def loudest(takes, prompt):
        seen["prompt"] = prompt
        return [float(np.abs(t.audio).mean()) for t in takes]

    out = pipe("rain", num_waveforms_per_prompt=3, seed=0, rank="clap", scorer=loudest, audio_length_in_s=0.1,
               **FAST)
    scores = [t.info["score"] for t in out.takes]
    assert scores == sorted(scores, reverse=True) and seen["prompt"] == "rain"
    assert sorted(t.info["take"] for t in out.takes) == [0, 1, 2]
    pano = PanoramaPipeline.from_pipe(sd)("forest", num_images_per_prompt=2, seed=0, rank="clip", height=64,
                                          width=128, view_width=64, num_inference_steps=2, progress_bar=False,
                                          scorer=lambda takes, prompt: [0.0, 1.0])
    assert [t.info["take"] for t in pano.takes] == [1, 0] and len(pano.images) == 2


@pytest.mark.parametrize("ext,rate", [("wav", 16000), ("flac", 44100), ("mp3", 48000), ("ogg", 44100),
                                      ("opus", None)])
def test_each_format_round_trips_with_its_length_rate_and_tags(audioldm, tmp_path, ext, rate):
    out = LongAudioPipeline.from_pipe(audioldm)("rain on a tin roof", audio_length_in_s=0.5, seed=3, loop=True,
                                                **FAST)
    path = out.save(tmp_path / f"a.{ext}", sample_rate=rate, sidecar=True)
    expected_rate = rate or 48000  # Opus is written at its own 48 kHz unless a rate is asked for
    with sf.SoundFile(path) as f:
        assert f.samplerate == expected_rate and f.channels == 1
        assert abs(f.frames - round(0.5 * expected_rate)) <= (0 if ext in ("wav", "flac") else 0.02 * expected_rate)
        assert f.title == "rain on a tin roof" and json.loads(f.comment)["seed"] == 3
    sidecar = json.loads((tmp_path / f"a.{ext}.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["method"] == "safa" and sidecar["prompt"] == "rain on a tin roof"
    assert sidecar["loop"] is True and sidecar["swapforward"]
    assert sidecar["sample_rate"] == expected_rate and sidecar["loudness"] is None, "how the file was written"


def test_loudness_measures_within_half_a_unit_of_the_target(audioldm, tmp_path):
    out = LongAudioPipeline.from_pipe(audioldm)("rain", audio_length_in_s=1.0, seed=0, **FAST)
    quiet = out.save(tmp_path / "quiet.flac", loudness=-30, sidecar=True)  # the tiny random model's ~1e-7 waveform
    np.testing.assert_allclose(sf.read(quiet, always_2d=True)[0].T, out.audio, atol=2e-7)  # written as generated
    assert json.loads(Path(f"{quiet}.json").read_text())["loudness"] is None, "the target was not applied"
    assert normalize_loudness(out.audio, 16000, -30)[1].startswith("this take is silent (below -70 LUFS), so it was")
    out.audio = out.audio / np.abs(out.audio).max() * 0.1  # a level real models give
    path = out.save(tmp_path / "loud.flac", loudness=-30)
    data, rate = sf.read(path, always_2d=True)
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(data) - -30) < 0.5
    noise = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.01
    limited, note = normalize_loudness(noise, 16000, -3)
    assert note.startswith("the loudness was limited to") and np.abs(limited).max() <= 10 ** (-1 / 20)


def test_same_seed_same_bytes_for_wav_flac_and_png(audioldm, sd, tmp_path):
    audio = LongAudioPipeline.from_pipe(audioldm)
    pano = PanoramaPipeline.from_pipe(sd)
    digests = []
    for run in range(2):
        a = audio("rain", audio_length_in_s=0.1, seed=4, **FAST)
        p = pano("forest", height=64, width=128, view_width=64, num_inference_steps=2, seed=4, progress_bar=False)
        paths = [a.save(tmp_path / f"{run}.wav"), a.save(tmp_path / f"{run}.flac"), p.save(tmp_path / f"{run}.png")]
        digests.append([hashlib.sha256(open(path, "rb").read()).hexdigest() for path in paths])
    assert digests[0] == digests[1]
    settings = json.loads(Image.open(tmp_path / "0.png").text["swapforward"])
    assert settings["seed"] == 4 and settings["width"] == 128


@pytest.mark.parametrize("values,message", [
    ({"bpm": 0, "bars": 4}, "bpm must be a finite number > 0 and <= 999, got 0."),
    ({"bpm": 5000, "bars": 4}, "bpm must be a finite number > 0 and <= 999"),
    ({"bpm": 120, "bars": 0}, "bars must be a whole number >= 1 and <= 10000, got 0."),
    ({"bpm": 120}, "Give bpm and bars together"),
    ({"bpm": 120, "bars": 4, "audio_length_in_s": 8}, "Give either audio_length_in_s or bpm and bars, not both."),
    ({"bpm": 1, "bars": 10000, "beats_per_bar": 64}, "10000 bars at 1 bpm last 38400000 s; at most 86400 s"),
    ({"num_waveforms_per_prompt": 0}, "num_waveforms_per_prompt must be a whole number >= 1 and <= 64, got 0."),
    ({"rank": "loudest"}, "Unknown rank 'loudest'; use one of: none, clap."),
])
def test_bad_delivery_options_are_one_sentence(values, message):
    with pytest.raises(SwapForwardError) as info:
        AUDIO.check({"prompt": "rain", **values})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_command_line_refuses_bad_files_rates_and_missing_rank_weights_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("SWAPFORWARD_WEIGHTS", str(tmp_path / "empty-cache"))
    runner = CliRunner()
    missing = str(tmp_path / "never-loaded")
    cases = [
        (["--out", str(tmp_path / "a.aiff")], "unsupported format '.aiff'"),
        (["--sample-rate", "44000"], "--sample-rate must be one of 8000, 11025"),
        (["--out", str(tmp_path / "a.opus"), "--sample-rate", "44100"], ".opus takes sample rates of 8000, 12000"),
        (["--takes", "0"], "--takes must be a whole number >= 1 and <= 64, got '0'."),
        (["--loudness", "3"], "--loudness must be a finite number >= -70 and <= 0, got '3'."),
        (["--takes", "2", "--rank", "clap"], "CLAP score and Intra-CLAP need clap-htsat-unfused"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["audio", "rain", "--model", missing, *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert "swapforward weights" in result.stderr or "--rank" not in args


def test_the_command_line_writes_numbered_takes_at_a_tempo(tiny_model_dir, tmp_path):
    out = tmp_path / "beat.wav"
    result = CliRunner().invoke(app, ["audio", "a drum loop", "--bpm", "333", "--bars", "1", "--beats-per-bar", "1",
                                      "--loop", "--takes", "2", "--window-seconds", "0.064", "--steps", "2",
                                      "--seed", "7", "--model", tiny_model_dir, "--out", str(out),
                                      "--sample-rate", "48000", "--sidecar"])
    assert result.exit_code == 0, result.output
    assert "takes: " in result.stdout and "seed 7" in result.stdout and "seed 8" in result.stdout
    assert "resampled as a circle to exactly 2883" in result.stdout
    for take in range(2):
        info = sf.info(tmp_path / f"beat_{take}.wav")
        assert info.samplerate == 48000 and info.frames == round(2883 * 3)
        assert json.loads((tmp_path / f"beat_{take}.wav.json").read_text())["seed"] == 7 + take
        assert json.loads((tmp_path / f"beat_{take}.wav.json").read_text())["sample_rate"] == 48000
    assert "audio at 48000 Hz" in result.stdout, "the summary names the file's rate, not the model's"
    assert OUTPUT["audio"]["sample_rate"].default is None


def test_the_streaming_meter_measures_what_pyloudnorm_measures_on_the_whole():
    from swapforward.io.delivery import LoudnessMeter, true_peak

    rng = np.random.default_rng(1)
    for channels, seconds in ((1, 3.05), (2, 7.3)):
        audio = (rng.standard_normal((channels, round(seconds * 16000))) * np.linspace(0.01, 0.3, round(
            seconds * 16000))).astype(np.float32)
        meter = LoudnessMeter(16000)
        for piece in np.array_split(audio, 7, axis=-1):
            meter.add(piece)
        loudness, peak = meter.finish()
        assert abs(loudness - pyloudnorm.Meter(16000).integrated_loudness(audio.T.astype(np.float64))) < 1e-3
        assert abs(peak - true_peak(audio, 16000)) < 1e-3 * peak
    quiet = LoudnessMeter(16000)
    quiet.add(np.zeros((1, 16000), dtype=np.float32))
    assert quiet.finish() == (-np.inf, 0.0)


def test_a_streamed_output_is_brought_to_its_loudness_in_two_passes_over_the_file(audioldm, monkeypatch, tmp_path):
    from swapforward.runtime import memory

    pipe = LongAudioPipeline.from_pipe(audioldm)
    args = dict(audio_length_in_s=1.2, window_seconds=0.064, num_inference_steps=2, seed=4, progress_bar=False)
    held = pipe("rain", **args)
    monkeypatch.setattr(memory, "STREAM_SAMPLES", 1000)
    streamed = pipe("rain", **args)
    for out in (held, streamed):  # a level real models give (the tiny model's waveform is ~1e-6)
        if out.audio is not None:
            out.audio = out.audio * np.float32(3e4)
        else:
            stream = out.stream
            out.stream = lambda stream=stream: (p * np.float32(3e4) for p in stream())
    a = held.save(tmp_path / "held.flac", loudness=-23, sidecar=True)
    b = streamed.save(tmp_path / "streamed.flac", loudness=-23, sidecar=True)
    x, rate = sf.read(a, always_2d=True)
    y, _ = sf.read(b, always_2d=True)
    np.testing.assert_allclose(y, x, atol=3e-4)
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(y) - -23) < 0.1
    assert json.loads(Path(f"{b}.json").read_text())["loudness"] == -23
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held.flac", "held.flac.json", "streamed.flac",
                                                          "streamed.flac.json"], "the scratch file is gone"
