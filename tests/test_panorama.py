"""PanoramaPipeline on tiny SD 2-, SDXL- and SD 3-like pipelines, against the base pipelines and diffusers' MD."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPanoramaPipeline
from diffusers.utils.torch_utils import randn_tensor
from typer.testing import CliRunner

from swapforward import PanoramaPipeline, SwapForwardError
from swapforward.core import METHODS
from swapforward.frontends.cli import app

PROMPT = "a photo of the dolomites"


def generator(seed=0):
    return torch.Generator("cpu").manual_seed(seed)


@pytest.mark.parametrize("method", list(METHODS))
def test_one_view_reproduces_the_base_pipeline_exactly(image_pipe, method):
    pano = PanoramaPipeline.from_pipe(image_pipe)
    out = pano(PROMPT, height=64, width=64, view_width=64, method=method, num_inference_steps=3,
               generator=generator(), progress_bar=False)
    base = image_pipe(PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=7.5, generator=generator(),
                      output_type="np").images[0]
    assert out.layout.num_views == 1
    assert np.array_equal(out.array, base)
    assert out.image.size == (64, 64)


@pytest.mark.parametrize("circular,width", [(False, 704), (True, 576)])
def test_md_reproduces_diffusers_multidiffusion(sd, circular, width):
    """diffusers' StableDiffusionPanoramaPipeline: 64-latent (512 px) views, stride 8 latents, one view per call."""
    reference = StableDiffusionPanoramaPipeline(**sd.components)
    reference.set_progress_bar_config(disable=True)
    expected = reference(PROMPT, height=512, width=width, num_inference_steps=3, guidance_scale=7.5,
                         generator=generator(4), circular_padding=circular, output_type="latent").images
    out = PanoramaPipeline.from_pipe(sd)(PROMPT, height=512, width=width, view_width=512, method="md",
                                         overlap=1 - 8 / 64, loop=circular, num_inference_steps=3, seed=4,
                                         view_batch_size=1, progress_bar=False)
    assert out.layout.num_views == (9 if circular else 4)
    assert torch.equal(out.latents, expected)


@pytest.mark.parametrize("method", ["safa", "safa-selfloop", "md-tri", "md-envelope"])
def test_every_method_runs_on_every_family(image_pipe, method):
    out = PanoramaPipeline.from_pipe(image_pipe)(PROMPT, height=64, width=256, view_width=64, method=method,
                                                 num_inference_steps=3, seed=0, progress_bar=False)
    assert out.array.shape == (64, 256, 3) and np.isfinite(out.array).all()
    assert out.info["overlap"] == (0.2 if method != "md-tri" else 0.8)
    assert out.layout.num_views == (5 if method != "md-tri" else 13)


def test_safa_follows_the_paper_settings(sd):
    out = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=400, view_width=80, num_inference_steps=10,
                                         seed=0, progress_bar=False)
    assert out.layout.window == 10 and out.layout.starts == (0, 8, 16, 24, 32, 40)
    assert out.info["guide_steps"] == 3 and out.model_calls == 10


@pytest.mark.parametrize("method", ["safa", "md"])
def test_loop_makes_one_circular_latent(image_pipe, method):
    """360 degrees: the left and right edges are an overlap like any other, so rolling the noise rolls the latent."""
    pano = PanoramaPipeline.from_pipe(image_pipe)
    kwargs = dict(height=64, width=192, view_width=64, method=method, overlap=0.25, loop=True,
                  num_inference_steps=3, seed=1, view_batch_size=1, progress_bar=False)
    noise = randn_tensor((1, 4, 8, 24), generator=generator(9))
    plain = pano(PROMPT, latents=noise, **kwargs)
    rolled = pano(PROMPT, latents=noise.roll(6, -1), **kwargs)
    assert plain.layout.starts == (0, 6, 12, 18) and plain.layout.indices[-1, -1].item() == 1
    assert torch.equal(rolled.latents, plain.latents.roll(6, -1))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(width=3201), "width=3201 is not a multiple of 8; use 3200 or 3208."),
        (dict(height=60), "height=60 is not a multiple of 8; use 56 or 64."),
        (dict(width=4), "width must be a whole number >= 8 and <= 1000000, got 4."),
        (dict(view_width=70), "view_width=70 is not a multiple of 8; use 64 or 72."),
        (dict(view_width=512, width=256), "view_width=512 is wider than the panorama (width=256)"),
        (dict(method="foo"), "Unknown method 'foo'"),
        (dict(overlap=0.0), "overlap must be a finite number between 0 and 1 (exclusive), got 0.0"),
        (dict(r_guide=3), "r_guide must be a finite number between 0 and 1, got 3"),
        (dict(swap_interval=0), "swap_interval must be a whole number >= 1 and <= 4096, got 0"),
    ],
)
def test_bad_sizes_and_options_get_one_sentence(sd, kwargs, message):
    args = dict(height=64, width=256, num_inference_steps=2, progress_bar=False)
    args.update(kwargs)
    with pytest.raises(SwapForwardError) as info:
        PanoramaPipeline.from_pipe(sd)(PROMPT, **args)
    assert message in str(info.value)


def test_sd3_sizes_are_multiples_of_vae_factor_times_patch(sd3):
    with pytest.raises(SwapForwardError, match="width=264 is not a multiple of 16; use 256 or 272."):
        PanoramaPipeline.from_pipe(sd3)(PROMPT, height=64, width=264, view_width=64, progress_bar=False)


def test_native_view_wider_than_panorama_is_refused(sd):
    native = PanoramaPipeline.from_pipe(sd).adapter.native_size
    assert native == 64
    out = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=48, num_inference_steps=2, seed=0, progress_bar=False)
    assert out.layout.num_views == 1 and out.image.size == (48, 64)


def test_audio_pipeline_is_not_an_image_pipeline(audioldm):
    with pytest.raises(SwapForwardError, match="AudioLDMPipeline is not a supported panorama pipeline; supported: "
                                               "StableDiffusionPipeline, StableDiffusionXLPipeline, "
                                               "StableDiffusion3Pipeline."):
        PanoramaPipeline.from_pipe(audioldm)


# --- CLI --------------------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_writes_a_panorama(tiny_sd_dir, tmp_path):
    out = tmp_path / "pano.png"
    result = runner.invoke(app, ["panorama", "misty forest", "--model", tiny_sd_dir, "--width", "320", "--height",
                                 "64", "--view-width", "80", "--steps", "3", "--seed", "0", "--loop",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(out).size == (320, 64)
    assert "320 x 64 safa panorama from 5 views (+1 reference for 1 of 3 steps), looping;" in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--width", "3201"], "width=3201 is not a multiple of 8; use 3200 or 3208."),
        (["--out", "pano.gif"], "unsupported format '.gif'; use .png, .jpg, .jpeg, .webp."),
        (["--model", "./missing"], "Model folder './missing' does not exist."),
    ],
)
def test_cli_panorama_bad_input(tiny_sd_dir, tmp_path, args, message):
    base = ["panorama", "forest", "--model", tiny_sd_dir, "--width", "256", "--height", "64", "--steps", "2",
            "--out", str(tmp_path / "p.png")]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "p.png").exists()


def test_cli_refuses_an_audio_model_for_panoramas(tiny_model_dir, tmp_path):
    result = runner.invoke(app, ["panorama", "forest", "--model", tiny_model_dir, "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 2
    expected = "is an AudioLDMPipeline, which this command does not support; supported: StableDiffusionPipeline"
    assert expected in result.stderr
