"""Starting from your own sound or picture (issue 11): continue it, fill a gap, loop it, or sound like it."""

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.frontends.cli import app
from swapforward.options import AUDIO, PANORAMA
from swapforward.pipelines.kept import noised

RATE = 16000
ARGS = dict(window_seconds=0.064, num_inference_steps=3, seed=0, progress_bar=False)


@pytest.fixture
def clip(tmp_path):
    """0.1 s of noise at the model's rate, as a float WAV (so its samples read back bit for bit)."""
    samples = (np.random.default_rng(0).standard_normal(1600) * 0.1).astype(np.float32)
    path = tmp_path / "take.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    return path, samples


@pytest.fixture
def picture(tmp_path):
    pixels = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_continuing_a_clip_keeps_its_samples_and_its_latent(audioldm, clip):
    path, samples = clip
    pipe = LongAudioPipeline.from_pipe(audioldm)
    spliced = pipe("rain", init_audio=path, audio_length_in_s=0.3, **ARGS)
    fade = round(0.02 * RATE)
    assert spliced.kept == [(0.0, 0.1)]
    assert np.array_equal(spliced.audio[0, : 1600 - fade], samples[: 1600 - fade]), "bit for bit, but the crossfade"
    exact = pipe("rain", init_audio=path, audio_length_in_s=0.3, crossfade=0.0, **ARGS)
    assert np.array_equal(exact.audio[0, :1600], samples), "with no crossfade, the whole kept span"
    decoded = pipe("rain", init_audio=path, audio_length_in_s=0.3, splice=False, **ARGS)
    latent = pipe.adapter.encode_audio(samples[None])
    assert torch.equal(decoded.latents[:, :, : latent.shape[2]], latent), "the final latent is the input's exactly"
    assert not np.array_equal(decoded.audio[0, :1600], samples), "without splice: the decoded version"


def test_nothing_kept_is_todays_run(audioldm):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    plain = pipe("rain", audio_length_in_s=0.2, **ARGS)
    again = pipe("rain", audio_length_in_s=0.2, keep_fade=0.5, splice=False, crossfade=0.1, **ARGS)
    assert torch.equal(plain.latents, again.latents)


def test_filling_a_gap_regenerates_only_the_gap(audioldm, clip):
    path, samples = clip
    out = LongAudioPipeline.from_pipe(audioldm)("rain", init_audio=path, fill="0.04:0.06", crossfade=0.0, **ARGS)
    assert out.audio.shape == (1, 1600), "the output has the clip's length"
    assert out.kept == [(0.0, 0.04), (0.06, 0.1)]
    assert np.array_equal(out.audio[0, :640], samples[:640]) and np.array_equal(out.audio[0, 960:], samples[960:])
    assert not np.array_equal(out.audio[0, 640:960], samples[640:960])


def test_a_loop_round_a_kept_clip_has_no_seam(audioldm, clip):
    """On a loop the canvas has no edge: rolling the initial noise and the clip by a view rolls the result."""
    path, samples = clip
    pipe = LongAudioPipeline.from_pipe(audioldm)
    noise = torch.randn(1, 4, 75, 8, generator=torch.Generator().manual_seed(3))
    kwargs = dict(audio_length_in_s=0.15, loop=True, splice=False, method="safa-selfloop", window_seconds=0.064,
                  num_inference_steps=3, progress_bar=False, view_batch_size=1)
    plain = pipe("rain", init_audio=path, latents=noise, **kwargs)
    rolled = pipe("rain", init_audio=path, init_at=25 * 0.002, latents=noise.roll(25, 2), **kwargs)
    torch.testing.assert_close(rolled.latents, plain.latents.roll(25, 2), rtol=1e-5, atol=1e-5)


def test_sounds_like_a_clip_swaps_its_noised_latent_into_the_middles(audioldm, clip):
    path, samples = clip
    pipe = LongAudioPipeline.from_pipe(audioldm)
    args = dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=4, seed=2, progress_bar=False)
    star = pipe("rain", method="safa-selfloop", **args)
    assert torch.equal(pipe("rain", reference_audio=path, r_guide=0.0, **args).latents, star.latents)
    seen = {}

    def record(k, t, canvas):
        seen[k] = canvas.clone()

    out = pipe("rain", reference_audio=path, r_guide=0.5, callback=record, **args)
    layout, scheduler = out.layout, pipe.scheduler
    reference = pipe.adapter.encode_audio(np.resize(samples[None], (1, 32 * 32)))
    from swapforward.core.merge import reference_swap_mask

    mask = reference_swap_mask(layout, 4, 2, 2, 32, phase=AUDIO["reference_phase"].default_for("audio"))
    generator = torch.Generator().manual_seed(2)  # the reference noise is drawn after the canvas noise
    torch.randn(1, 4, layout.length, 8, generator=generator)
    ref_noise = torch.randn(1, 4, 32, 8, generator=generator)
    scheduler.set_timesteps(4)
    for k in (0, 1):  # the guided steps: every view's swapped middle frames hold the noised reference
        level = noised(scheduler, reference, ref_noise, k + 1)
        for i, start in enumerate(layout.starts):
            where = mask[i, 0, :, 0].nonzero().flatten()
            assert torch.allclose(seen[k][0, :, start + where], level[0, :, where], atol=1e-6), (k, i)
    assert out.info["view_evaluations"] == 4 * layout.num_views, "an observed reference costs no model call"


def test_panoramas_extend_a_photo_and_keep_its_pixels(sd, picture):
    path, pixels = picture
    pipe = PanoramaPipeline.from_pipe(sd)
    args = dict(height=64, width=256, view_width=64, num_inference_steps=2, seed=0, progress_bar=False)
    out = pipe("a forest", init_image=path, feather=0, **args)
    image = np.asarray(out.image)
    assert np.array_equal(image[:, 96:160], pixels), "centred and kept, pixel for pixel"
    looped = pipe("a forest", init_image=path, init_at=224, loop=True, feather=0, **args)
    wrapped = np.asarray(looped.image)
    assert np.array_equal(wrapped[:, 224:], pixels[:, :32]) and np.array_equal(wrapped[:, :32], pixels[:, 32:])
    unspliced = pipe("a forest", init_image=path, splice=False, **args)
    latent = pipe.adapter.encode_image(pixels.astype(np.float32) / 255)
    assert torch.equal(unspliced.latents[..., 12:20], latent)
    looks = pipe("a forest", reference_image=path, **args)
    assert looks.info["guide_steps"] == 1 and np.isfinite(looks.array).all()


def test_a_picture_of_another_height_is_resized_with_a_note(sd, tmp_path, caplog):
    path = tmp_path / "tall.png"
    Image.fromarray((np.random.default_rng(2).random((128, 64, 3)) * 255).astype(np.uint8)).save(path)
    out = PanoramaPipeline.from_pipe(sd)("x", init_image=path, height=64, width=256, view_width=64,
                                         num_inference_steps=1, seed=0, progress_bar=False)
    assert "init_image is 128 px high and the panorama 64 px: it was resized to 32 x 64" in caplog.text
    assert out.array.shape == (64, 256, 3)


@pytest.mark.parametrize("values,message", [
    ({"init_audio": "missing.wav"}, "init_audio 'missing.wav' does not exist."),
    ({"init_audio": "NOT_AUDIO"}, "cannot be read as audio"),
    ({"init_audio": "EMPTY"}, "holds no audio (zero length)."),
    ({"init_audio": "CLIP", "audio_length_in_s": 0.05}, "init_audio lasts 0.1 s from 0 s, past the end of the output"),
    ({"init_audio": "CLIP", "keep": "0.05:0.2", "audio_length_in_s": 1}, "keep span 0.05:0.2 lies outside the input"),
    ({"init_audio": "CLIP", "fill": "0.05:0.2"}, "fill span 0.05:0.2 reaches past the end of init_audio"),
    ({"init_audio": "CLIP", "fill": "0.01:0.03, 0.02:0.05"}, "fill spans (0.01, 0.03) and (0.02, ...) overlap"),
    ({"keep": "0:1"}, "keep keeps parts of an input clip; give init_audio too."),
    ({"reference_audio": "CLIP", "method": "md"},
     "reference_audio guides the reference view, which only safa and md-envelope have"),
    ({"init_audio": np.zeros(10)}, "init_audio is an array: give its sample rate too (init_sample_rate)."),
])
def test_bad_inputs_are_one_sentence_before_any_model(values, message, tmp_path, clip):
    (tmp_path / "not-audio.wav").write_text("hello")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
    named = {"CLIP": str(clip[0]), "NOT_AUDIO": str(tmp_path / "not-audio.wav"), "EMPTY": str(tmp_path / "empty.wav")}
    values = {k: named.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    with pytest.raises(SwapForwardError) as info:
        AUDIO.check({"prompt": "rain", **values})
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_bad_pictures_are_one_sentence_before_any_model(picture):
    path, _ = picture
    with pytest.raises(SwapForwardError, match="init_image is 256 px wide at the panorama's height, wider than"):
        PANORAMA.check({"prompt": "x", "init_image": str(path), "height": 256, "width": 128})
    with pytest.raises(SwapForwardError,
                       match="reference_image guides the reference view, which only safa and md-envelope have"):
        PANORAMA.check({"prompt": "x", "reference_image": str(path), "method": "md"})


def test_the_command_line_continues_fills_and_loops_a_clip(tiny_model_dir, clip, tmp_path):
    path, samples = clip
    runner = CliRunner()
    base = ["audio", "rain", "--model", tiny_model_dir, "--window-seconds", "0.064", "--steps", "2", "--crossfade", "0"]
    out = tmp_path / "continued.wav"
    result = runner.invoke(app, [*base, "--init-audio", str(path), "--seconds", "0.3", "--out", str(out),
                                 "--spectrogram", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(sf.read(out, dtype="float32")[0][:1600], samples)
    filled = tmp_path / "filled.wav"
    result = runner.invoke(app, [*base, "--init-audio", str(path), "--fill", "0.04:0.06", "--out", str(filled)])
    assert result.exit_code == 0 and sf.info(filled).frames == 1600
    looped = tmp_path / "loop.wav"
    result = runner.invoke(app, [*base, "--init-audio", str(path), "--seconds", "0.5", "--loop", "--out", str(looped)])
    assert result.exit_code == 0 and sf.info(looped).frames == 8000
    bad = runner.invoke(app, [*base, "--init-audio", str(tmp_path / "none.wav"), "--out", str(tmp_path / "x.wav")])
    assert bad.exit_code == 2 and "--init-audio" in bad.stderr and not (tmp_path / "x.wav").exists()
