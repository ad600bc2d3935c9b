"""The 2026 model families through the long pipelines: one window equals diffusers' own pipeline bit for bit, joint
runs (loop and not), the checkpoints' own default steps and guidance, and the canvas-level noise of stochastic steps."""

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_pipelines import TINY_SA3_WINDOW_S
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.frontends.cli import app
from swapforward.runtime.stochastic import PingPong, with_given_noise


def _sa3_base(pipe, guidance: float, steps: int | None = None) -> np.ndarray:
    return pipe("rain on a roof", duration=TINY_SA3_WINDOW_S, num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(0), output_type="np").audios[0]


@pytest.mark.parametrize("method", ["safa", "safa-selfloop", "md", "md-tri"])
@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_one_window_reproduces_stable_audio_3_exactly(stable_audio_3, method, guidance):
    out = LongAudioPipeline.from_pipe(stable_audio_3)(
        "rain on a roof", audio_length_in_s=TINY_SA3_WINDOW_S, method=method, guidance_scale=guidance,
        generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = _sa3_base(stable_audio_3, guidance)
    assert out.audio.shape == base.shape == (2, 1024)
    assert np.array_equal(out.audio, base)
    assert out.info["steps"] == 8  # the distilled pipeline's own count


def test_one_window_reproduces_the_deterministic_base_checkpoint(stable_audio_3_base):
    out = LongAudioPipeline.from_pipe(stable_audio_3_base)(
        "rain on a roof", audio_length_in_s=TINY_SA3_WINDOW_S, num_inference_steps=6, guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0), progress_bar=False)
    assert np.array_equal(out.audio, _sa3_base(stable_audio_3_base, 3.0, steps=6))


def test_stable_audio_3_defaults_to_its_own_steps_and_no_guidance(stable_audio_3, stable_audio_3_base):
    distilled = LongAudioPipeline.from_pipe(stable_audio_3)
    base = LongAudioPipeline.from_pipe(stable_audio_3_base)
    request = distilled.spec.check({"prompt": "rain"})
    assert request.num_inference_steps is None and request.guidance_scale is None
    assert (distilled.resolve(request).num_inference_steps, distilled.resolve(request).guidance_scale) == (8, 1.0)
    assert base.resolve(request).num_inference_steps == 100
    given = distilled.spec.check({"prompt": "rain", "num_inference_steps": 5, "guidance_scale": 2.0})
    assert (distilled.resolve(given).num_inference_steps, distilled.resolve(given).guidance_scale) == (5, 2.0)


def test_views_are_conditioned_as_clips_of_their_own_length(stable_audio_3):
    long = LongAudioPipeline.from_pipe(stable_audio_3)
    adapter = long.adapter
    assert adapter.trained_window_seconds == pytest.approx(TINY_SA3_WINDOW_S) and adapter.channels == 2
    cond = adapter.encode_prompt("rain", None, True, (1, 4, 16))
    half = stable_audio_3.encode_duration(16 * 32 / 16000, "cpu", 1, 1)
    assert torch.equal(cond["global_hidden_states"], torch.cat([half, half]))
    assert torch.equal(cond["encoder_hidden_states"][1, -1], half[0])  # the duration token ends the context


@pytest.mark.parametrize("loop", [False, True])
def test_long_stereo_stable_audio_3(stable_audio_3, loop):
    out = LongAudioPipeline.from_pipe(stable_audio_3)("rain", audio_length_in_s=0.2, loop=loop, seed=0,
                                                      progress_bar=False)
    assert out.audio.shape == (2, 3200) and np.isfinite(out.audio).all() and np.abs(out.audio).max() <= 1.0
    assert out.layout.num_views == 4 and out.info["steps"] == 8 and out.info["guide_steps"] == 2


def test_stable_audio_3_continues_a_clip_and_keeps_it(stable_audio_3):
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1600)).astype(np.float32)
    out = LongAudioPipeline.from_pipe(stable_audio_3)("rain", audio_length_in_s=0.2, init_audio=clip,
                                                      init_sample_rate=16000, seed=0, progress_bar=False)
    assert np.array_equal(out.audio[:, :1000], clip[:, :1000])  # spliced: the clip's own samples
    assert not np.array_equal(out.audio[:, 2000:], np.zeros((2, 1200), np.float32))


def test_mad_is_refused_for_stable_audio_3(stable_audio_3):
    with pytest.raises(SwapForwardError, match="MAD is not available for StableAudio3Pipeline"):
        LongAudioPipeline.from_pipe(stable_audio_3)("rain", audio_length_in_s=0.2, method="mad", progress_bar=False)


def test_ping_pong_step_with_given_noise_is_the_schedulers_own(stable_audio_3):
    scheduler = with_given_noise(stable_audio_3.scheduler.__class__.from_config(stable_audio_3.scheduler.config))
    assert isinstance(scheduler, PingPong)
    own = stable_audio_3.scheduler.__class__.from_config(stable_audio_3.scheduler.config)
    for s in (scheduler, own):
        s.set_timesteps(sigmas=[1.0, 0.7, 0.3])
    x, v = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(1)), torch.randn(1, 4, 8)
    for t in own.timesteps:
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(t)))
        mine = scheduler.step(v, t, x, variance_noise=noise).prev_sample
        theirs = own.step(v, t, x, generator=torch.Generator().manual_seed(int(t))).prev_sample
        assert torch.equal(mine, theirs)
        x = theirs


def test_ping_pong_noise_is_shared_by_overlapping_views(stable_audio_3):
    """Every step's re-noise is drawn once per canvas frame: the views' noises agree wherever they overlap."""
    from swapforward.core import sampler

    seen = []
    original = sampler._with_noise

    def record(step_kwargs, noise):
        seen.append(noise.clone())
        return original(step_kwargs, noise)

    sampler._with_noise = record
    try:
        out = LongAudioPipeline.from_pipe(stable_audio_3)("rain", audio_length_in_s=0.2, method="md", seed=0,
                                                          progress_bar=False)
    finally:
        sampler._with_noise = original
    layout = out.layout
    assert len(seen) == 8
    for noise in seen:  # (views, channels, window) crops of one canvas draw
        for i in range(layout.num_views - 1):
            a, b = layout.starts[i], layout.starts[i + 1]
            shared = a + layout.window - b
            assert shared > 0
            assert torch.equal(noise[i, :, b - a:], noise[i + 1, :, :shared])


def test_cli_writes_stable_audio_3_from_a_local_folder(stable_audio_3, tmp_path):
    stable_audio_3.save_pretrained(tmp_path / "sa3")
    out = tmp_path / "sa3.wav"
    result = CliRunner().invoke(app, ["audio", "rain", "--model", str(tmp_path / "sa3"), "--seconds", "0.2",
                                      "--loop", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data, rate = sf.read(out)
    assert rate == 16000 and data.shape == (3200, 2)


PANORAMA_PROMPT = "a photo of the dolomites"


@pytest.mark.parametrize("method", ["safa", "safa-selfloop", "md", "md-tri", "syncd"])
def test_one_view_reproduces_flux_exactly(flux, method):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(flux)(PANORAMA_PROMPT, height=64, width=64, view_width=64, method=method,
                                           num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                                           progress_bar=False)
    base = flux(PANORAMA_PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=3.5,
                generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert out.layout.num_views == 1 and np.array_equal(out.array, base)


def test_one_view_reproduces_flux_schnell_with_its_own_defaults(flux_schnell):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(flux_schnell)(PANORAMA_PROMPT, height=64, width=64, view_width=64,
                                                   generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = flux_schnell(PANORAMA_PROMPT, height=64, width=64, num_inference_steps=4, guidance_scale=0.0,
                        generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert out.info["steps"] == 4 and np.array_equal(out.array, base)


@pytest.mark.parametrize("loop", [False, True])
def test_flux_panorama(flux, loop):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(flux)(PANORAMA_PROMPT, height=64, width=256, loop=loop, num_inference_steps=3,
                                           seed=0, progress_bar=False)
    assert out.array.shape == (64, 256, 3) and np.isfinite(out.array).all()
    assert out.layout.window == 8 and out.layout.num_views >= 4 and out.info["guide_steps"] == 1


@pytest.mark.parametrize("method", ["safa", "md"])
@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_one_view_reproduces_z_image_exactly(z_image, method, guidance):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(z_image)(PANORAMA_PROMPT, height=64, width=64, view_width=64, method=method,
                                              num_inference_steps=3, guidance_scale=guidance,
                                              generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = z_image(PANORAMA_PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=guidance,
                   generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert out.layout.num_views == 1 and np.array_equal(out.array, base)


def test_z_image_turbo_defaults_to_eight_steps_without_guidance(z_image):
    from tiny_pipelines import tiny_z_image_pipeline

    from swapforward import PanoramaPipeline

    request = PanoramaPipeline.spec.check({"prompt": "x"})
    turbo = PanoramaPipeline.from_pipe(tiny_z_image_pipeline(name="Tongyi-MAI/Z-Image-Turbo")).resolve(request)
    base = PanoramaPipeline.from_pipe(z_image).resolve(request)
    assert (turbo.num_inference_steps, turbo.guidance_scale) == (8, 0.0)
    assert (base.num_inference_steps, base.guidance_scale) == (50, 5.0)


@pytest.mark.parametrize("loop", [False, True])
def test_z_image_panorama_with_a_timeline(z_image, loop):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(z_image)(timeline="0 snowy peaks\n0.5 a green valley in spring", height=64,
                                              width=256, view_width=64, loop=loop, num_inference_steps=3,
                                              guidance_scale=2.0, seed=0, progress_bar=False)
    assert out.array.shape == (64, 256, 3) and np.isfinite(out.array).all() and out.layout.num_views >= 4


@pytest.mark.parametrize("method", ["safa", "md-tri"])
@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_one_view_reproduces_qwen_image_exactly(qwen_image, method, guidance):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(qwen_image)(PANORAMA_PROMPT, negative_prompt="blurry", height=64, width=64,
                                                 view_width=64, method=method, num_inference_steps=3,
                                                 guidance_scale=guidance, generator=torch.Generator().manual_seed(0),
                                                 progress_bar=False)
    base = qwen_image(PANORAMA_PROMPT, negative_prompt="blurry", true_cfg_scale=guidance, height=64, width=64,
                      num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert out.layout.num_views == 1 and np.array_equal(out.array, base)


@pytest.mark.parametrize("loop", [False, True])
def test_qwen_image_panorama_and_its_defaults(qwen_image, loop):
    from swapforward import PanoramaPipeline

    pano = PanoramaPipeline.from_pipe(qwen_image)
    resolved = pano.resolve(pano.spec.check({"prompt": "x"}))
    assert (resolved.num_inference_steps, resolved.guidance_scale) == (50, 4.0)
    out = pano(timeline="0 snowy peaks\n0.5 a green valley in spring", height=64, width=256, loop=loop,
               num_inference_steps=3, seed=0, progress_bar=False)
    assert out.array.shape == (64, 256, 3) and np.isfinite(out.array).all() and out.layout.window == 8


IMAGE_FAMILIES = ["flux", "z_image", "qwen_image", "flux2_klein"]


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_image_families_keep_a_picture_look_like_one_and_make_takes(request, family):
    from swapforward import PanoramaPipeline

    pano = PanoramaPipeline.from_pipe(request.getfixturevalue(family))
    picture = np.random.default_rng(0).uniform(0, 1, (64, 64, 3)).astype(np.float32)
    out = pano(PANORAMA_PROMPT, height=64, width=192, init_image=picture, reference_image=picture,
               num_images_per_prompt=2, num_inference_steps=3, guidance_scale=2.0, seed=0, progress_bar=False)
    assert len(out.takes) == 2 and out.array.shape == (64, 192, 3)
    assert not np.array_equal(out.takes[0].array, out.takes[1].array)


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_cli_makes_a_panorama_from_each_image_familys_folder(request, family, tmp_path):
    from PIL import Image

    request.getfixturevalue(family).save_pretrained(tmp_path / family)
    out = tmp_path / f"{family}.png"
    result = CliRunner().invoke(app, ["panorama", PANORAMA_PROMPT, "--model", str(tmp_path / family), "--height",
                                      "64", "--width", "192", "--view-width", "64", "--steps", "2", "--loop",
                                      "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (192, 64)


@pytest.mark.parametrize("method", ["safa", "md"])
@pytest.mark.parametrize("negative", [None, "muffled"])
def test_one_window_reproduces_longcat_audio_exactly(longcat_audio, method, negative):
    from tiny_pipelines import TINY_LONGCAT_WINDOW_S

    out = LongAudioPipeline.from_pipe(longcat_audio)(
        "Rain on a ROOF", negative_prompt=negative, audio_length_in_s=TINY_LONGCAT_WINDOW_S, method=method,
        generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = longcat_audio("Rain on a ROOF", negative_prompt=negative, audio_duration_s=TINY_LONGCAT_WINDOW_S,
                         generator=torch.Generator().manual_seed(0)).audios[0]
    assert out.info["steps"] == 16 and out.audio.shape == base.shape == (1, 256)
    assert np.array_equal(out.audio, base)


@pytest.mark.parametrize("loop", [False, True])
def test_long_longcat_audio_with_a_kept_clip(longcat_audio, loop):
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 1000)).astype(np.float32)
    out = LongAudioPipeline.from_pipe(longcat_audio)(
        "rain on a roof", negative_prompt="muffled", audio_length_in_s=0.2, loop=loop,
        init_audio=clip, init_sample_rate=16000, num_inference_steps=4, seed=0, progress_bar=False)
    assert out.audio.shape == (1, 3200) and np.isfinite(out.audio).all() and out.layout.num_views >= 6
    assert np.array_equal(out.audio[:, 400:600], clip[:, 400:600])  # the clip between its crossfades


ACE_WINDOW_S = 0.64  # 32 latent frames of the tiny ACE-Step


@pytest.mark.parametrize("method", ["safa", "md-tri"])
def test_one_window_reproduces_ace_step_exactly(ace_step, method):
    out = LongAudioPipeline.from_pipe(ace_step)("lofi piano", audio_length_in_s=ACE_WINDOW_S,
                                                window_seconds=ACE_WINDOW_S, method=method,
                                                generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = ace_step("lofi piano", audio_duration=ACE_WINDOW_S, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(0), output_type="np").audios[0]
    assert out.info["steps"] == 8 and out.audio.shape == base.shape == (2, 10240)
    assert np.array_equal(out.audio, base)


def test_ace_step_loops_and_refuses_guidance_on_the_base_checkpoint(ace_step):
    from tiny_pipelines import tiny_ace_step_pipeline

    out = LongAudioPipeline.from_pipe(ace_step)("lofi piano", audio_length_in_s=2.0, window_seconds=ACE_WINDOW_S,
                                                loop=True, seed=0, progress_bar=False)
    assert out.audio.shape == (2, 32000) and out.layout.num_views >= 3
    assert np.abs(out.audio).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)  # the pipeline's -1 dBFS peak
    base = LongAudioPipeline.from_pipe(tiny_ace_step_pipeline(turbo=False))
    with pytest.raises(SwapForwardError, match="guidance_scale 3 is not available for ACE-Step"):
        base("lofi piano", audio_length_in_s=2.0, window_seconds=ACE_WINDOW_S, guidance_scale=3.0, progress_bar=False)


def test_a_resumed_stable_audio_3_run_equals_the_uninterrupted_one(stable_audio_3, tmp_path):
    """The ping-pong sampler's canvas noise comes from the generator, whose state the saved run carries."""
    pipe = LongAudioPipeline.from_pipe(stable_audio_3)
    options = dict(audio_length_in_s=0.2, loop=True, seed=3, progress_bar=False)
    full = pipe("rain", **options)

    class Stop(Exception):
        pass

    def stop_at_five(k, t, latents):
        if k == 5:
            raise Stop

    with pytest.raises(Stop):
        pipe("rain", save_state=tmp_path / "state.pt", save_every=2, callback=stop_at_five, **options)
    resumed = pipe("rain", resume_from=tmp_path / "state.pt", **options)
    assert np.array_equal(full.audio, resumed.audio)


@pytest.mark.parametrize("family,window,seconds", [("longcat_audio", "0.016", "0.1"), ("ace_step", "0.64", "2")])
def test_cli_writes_audio_from_a_longcat_or_ace_step_folder(request, family, window, seconds, tmp_path):
    request.getfixturevalue(family).save_pretrained(tmp_path / family)
    out = tmp_path / f"{family}.flac"
    result = CliRunner().invoke(app, ["audio", "rain", "--model", str(tmp_path / family), "--seconds", seconds,
                                      "--window-seconds", window, "--steps", "2", "--loop", "--seed", "0", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    data, rate = sf.read(out)
    assert rate == 16000 and data.shape[0] == round(float(seconds) * 16000)


@pytest.mark.parametrize("method", ["safa", "md"])
@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_one_view_reproduces_flux2_klein_exactly(flux2_klein, method, guidance):
    from swapforward import PanoramaPipeline

    out = PanoramaPipeline.from_pipe(flux2_klein)(PANORAMA_PROMPT, height=64, width=64, view_width=64, method=method,
                                                  num_inference_steps=3, guidance_scale=guidance,
                                                  generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = flux2_klein(prompt=PANORAMA_PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=guidance,
                       generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert out.layout.num_views == 1 and np.array_equal(out.array, base)


def test_flux2_klein_distilled_defaults_to_four_steps_without_guidance(flux2_klein):
    from tiny_pipelines import tiny_flux2_klein_pipeline

    from swapforward import PanoramaPipeline

    request = PanoramaPipeline.spec.check({"prompt": "x"})
    distilled = PanoramaPipeline.from_pipe(tiny_flux2_klein_pipeline(distilled=True)).resolve(request)
    base = PanoramaPipeline.from_pipe(flux2_klein).resolve(request)
    assert (distilled.num_inference_steps, distilled.guidance_scale) == (4, 1.0)
    assert (base.num_inference_steps, base.guidance_scale) == (50, 4.0)


def test_the_app_and_a_batch_pick_each_family_by_its_folder(stable_audio_3, flux2_klein, tmp_path):
    """The web app's studio and a jobs file load the newer families from their folders like any other model."""
    import json

    from swapforward.frontends.app import Studio

    stable_audio_3.save_pretrained(tmp_path / "sa3")
    flux2_klein.save_pretrained(tmp_path / "klein")
    studio = Studio(str(tmp_path / "sa3"), str(tmp_path / "klein"), tmp_path / "app", device="cpu")
    sound, _, _, summary = studio.audio("rain", seed=1, seconds=0.2, loop=True)
    assert sf.read(sound)[0].shape == (3200, 2) and "seed 1" in summary
    picture, _, _ = studio.panorama("snowy peaks", seed=1, width=192, height=64, view_width=64, steps=2)
    from PIL import Image

    assert Image.open(picture).size == (192, 64)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"kind": "audio", "prompt": "rain", "model": str(tmp_path / "sa3"), "seconds": 0.2,
                                "seed": 0, "out": str(tmp_path / "batch" / "a.wav")}) + "\n")
    result = CliRunner().invoke(app, ["batch", str(jobs)])
    assert result.exit_code == 0, result.output
    assert sf.read(tmp_path / "batch" / "a.wav")[0].shape == (3200, 2)
