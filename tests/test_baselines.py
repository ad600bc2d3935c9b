"""MAD and SyncDiffusion: processor correctness, restoration, gradient effect, and runs through both pipelines."""

import lpips
import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.baselines.mad import (
    CanvasGeometry,
    MergedAttentionProcessor,
    merged_attention,
)
from swapforward.baselines.syncdiffusion import predict_x0, sync_views
from swapforward.core import ViewLayout
from swapforward.frontends.cli import app
from swapforward.models.base import per_row

PROMPT = "rain on a tin roof"
WINDOW_S = 0.064


def generator(seed=0):
    return torch.Generator("cpu").manual_seed(seed)


@pytest.fixture(scope="module")
def random_lpips():
    torch.manual_seed(0)
    return lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()


# --- MAD -----------------------------------------------------------------------------------------------------------


def test_mad_with_one_view_reproduces_the_base_audio_pipeline(audio_pipe):
    out = LongAudioPipeline.from_pipe(audio_pipe)(PROMPT, audio_length_in_s=WINDOW_S, window_seconds=WINDOW_S,
                                                  method="mad", mad_ratio=1.0, num_inference_steps=3,
                                                  generator=generator(), progress_bar=False)
    base = audio_pipe(PROMPT, audio_length_in_s=WINDOW_S, num_inference_steps=3, guidance_scale=3.5,
                      generator=generator()).audios
    assert np.array_equal(out.audio, base)


def test_mad_with_one_view_reproduces_the_base_image_pipeline(image_pipe):
    out = PanoramaPipeline.from_pipe(image_pipe)(PROMPT, height=64, width=64, view_width=64, method="mad",
                                                 mad_ratio=1.0, num_inference_steps=3, generator=generator(),
                                                 progress_bar=False)
    base = image_pipe(PROMPT, height=64, width=64, num_inference_steps=3, guidance_scale=7.5, generator=generator(),
                      output_type="np").images[0]
    assert np.array_equal(out.array, base)


def direct_attention(attn, canvas, context=None):
    """Plain attention of the layer over every canvas token (the thing MAD should compute)."""
    return AttnProcessor2_0()(attn, canvas, encoder_hidden_states=context)


def crop_views(grid, layout, axis):
    """(G, rows, cols, C) token grids -> (G * n, tokens, C) views, group-major like the engine's batches."""
    views = torch.stack([grid.index_select(axis, layout.indices[i]) for i in range(layout.num_views)], dim=1)
    return views.reshape(grid.shape[0] * layout.num_views, -1, grid.shape[-1])


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("long_dim", [0, 1])
@pytest.mark.parametrize("cross", [False, True])
def test_merged_attention_equals_attention_over_the_whole_canvas(loop, long_dim, cross):
    torch.manual_seed(0)
    layout = ViewLayout.build(24, 8, stride=4, loop=loop)
    short = 3
    attn = Attention(query_dim=16, heads=2, dim_head=8, cross_attention_dim=12 if cross else None)
    groups, channels = 2, 16
    grid_shape = (groups, 24, short, channels) if long_dim == 0 else (groups, short, 24, channels)
    grid = torch.randn(grid_shape)
    views = crop_views(grid, layout, 1 + long_dim)
    context = torch.randn(groups, 5, 12) if cross else None
    view_context = context.repeat_interleave(layout.num_views, 0) if cross else None
    view_hw = (8, short) if long_dim == 0 else (short, 8)
    geometry = CanvasGeometry(layout, view_hw, long_dim)
    merged = MergedAttentionProcessor(AttnProcessor2_0(), geometry)(attn, views, encoder_hidden_states=view_context)
    expected = direct_attention(attn, grid.reshape(groups, -1, channels), context).reshape(grid_shape)
    expected = crop_views(expected, layout, 1 + long_dim)
    assert torch.allclose(merged, expected, atol=1e-5)


def test_merged_attention_averages_queries_keys_and_values_of_overlapping_views():
    """Views that disagree in an overlap attend with the mean of their q, k and v there."""
    torch.manual_seed(0)
    layout = ViewLayout.build(12, 8, stride=4)  # views [0, 8) and [4, 12): overlap [4, 8)
    attn = Attention(query_dim=4, heads=1, dim_head=4)
    views = torch.randn(2, 8, 4)
    geometry = CanvasGeometry(layout, (8, 1), 0)
    merged = MergedAttentionProcessor(AttnProcessor2_0(), geometry)(attn, views)
    assert torch.allclose(merged[0, 4:], merged[1, :4]), "both views read the same canvas tokens in the overlap"


def test_mad_puts_the_models_attention_back(sd, audioldm):
    for pipe, call in ((sd, dict(height=64, width=192, view_width=64)),
                       (audioldm, dict(audio_length_in_s=0.15, window_seconds=WINDOW_S))):
        denoiser = pipe.unet
        before = {name: proc for name, proc in denoiser.attn_processors.items()}
        wrapper = PanoramaPipeline if pipe is sd else LongAudioPipeline
        wrapper.from_pipe(pipe)(PROMPT, method="mad", num_inference_steps=4, seed=0, progress_bar=False, **call)
        after = denoiser.attn_processors
        assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


def test_merged_attention_restores_processors_after_an_error(sd):
    before = dict(sd.unet.attn_processors)
    geometry = CanvasGeometry(ViewLayout.build(16, 8, stride=8), (8, 8), 1)
    with pytest.raises(RuntimeError):
        with merged_attention(sd.unet, geometry):
            assert all(isinstance(p, MergedAttentionProcessor) for p in sd.unet.attn_processors.values())
            raise RuntimeError("boom")
    assert all(before[k] is v for k, v in sd.unet.attn_processors.items())


def test_mad_differs_from_md_only_during_its_steps(audioldm):
    long = LongAudioPipeline.from_pipe(audioldm)
    kwargs = dict(audio_length_in_s=0.128, window_seconds=WINDOW_S, overlap=0.5, num_inference_steps=4, seed=0,
                  progress_bar=False)
    md = long(PROMPT, method="md", **kwargs)
    assert torch.equal(long(PROMPT, method="mad", mad_ratio=0.0, **kwargs).latents, md.latents)
    mad = long(PROMPT, method="mad", mad_ratio=0.5, **kwargs)
    assert not torch.allclose(mad.latents, md.latents)
    assert mad.model_calls == 4  # all views in one call per step while attention is merged


@pytest.mark.parametrize("pipe_name", ["sdxl", "sd3", "audioldm2"])
def test_mad_runs_on_every_family(request, pipe_name):
    pipe = request.getfixturevalue(pipe_name)
    if pipe_name == "audioldm2":
        out = LongAudioPipeline.from_pipe(pipe)(PROMPT, audio_length_in_s=0.128, window_seconds=WINDOW_S,
                                                method="mad", num_inference_steps=3, seed=0, progress_bar=False)
        assert np.isfinite(out.audio).all()
    else:
        out = PanoramaPipeline.from_pipe(pipe)(PROMPT, height=64, width=192, view_width=64, method="mad",
                                               num_inference_steps=3, seed=0, progress_bar=False)
        assert out.info["overlap"] == 0.8 and np.isfinite(out.array).all()


# --- SyncDiffusion ---------------------------------------------------------------------------------------------------


def test_predict_x0_inverts_the_forward_process(sd):
    scheduler = sd.scheduler
    scheduler.set_timesteps(10)
    x0, noise = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    t = scheduler.timesteps[3]
    xt = scheduler.add_noise(x0, noise, t[None])
    assert torch.allclose(predict_x0(scheduler, xt, noise, t), x0, atol=1e-4)


def test_sync_step_lowers_the_lpips_distance_to_the_anchor(sd, random_lpips):
    pano = PanoramaPipeline.from_pipe(sd)
    adapter = pano.adapter
    cond = adapter.encode_prompt(PROMPT, None, True, (1, 4, 8, 8))
    scheduler = sd.scheduler
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[2]

    def denoise(x, t, ids):
        return adapter.denoise(x, t, per_row(cond, x.shape[0]), 7.5)

    def distance(views):
        with torch.no_grad():
            images = adapter.decode_preview(predict_x0(scheduler, views, denoise(views, t, None), t))
            return random_lpips(images, images[1:2].expand_as(images)).flatten()

    views = torch.randn(3, 4, 8, 8, generator=generator(3))
    synced = sync_views(views, t, 1.0, denoise=denoise, scheduler=scheduler, decode=adapter.decode_preview,
                        lpips=random_lpips)
    before, after = distance(views), distance(synced)
    assert torch.equal(synced[1], views[1]), "the anchor (middle) view is not moved"
    assert after[0] < before[0] and after[2] < before[2]


def test_syncdiffusion_runs_for_panoramas_and_audio(sd, audioldm, random_lpips):
    pano = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=128, view_width=64, method="syncd", overlap=0.5,
                                          num_inference_steps=3, seed=0, lpips=random_lpips, progress_bar=False)
    md = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=128, view_width=64, method="md", overlap=0.5,
                                        num_inference_steps=3, seed=0, progress_bar=False)
    assert pano.layout.num_views == 3 and not torch.equal(pano.latents, md.latents)
    assert pano.model_calls == md.model_calls + 3 * 3  # the anchor and the two other views, every step
    audio = LongAudioPipeline.from_pipe(audioldm)(PROMPT, audio_length_in_s=0.128, window_seconds=WINDOW_S,
                                                  method="syncd", num_inference_steps=3, sync_ratio=0.5, seed=0,
                                                  lpips=random_lpips, progress_bar=False)
    assert np.isfinite(audio.audio).all()


# --- CLI --------------------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_accepts_mad_for_audio_and_panoramas(tiny_model_dir, tiny_sd_dir, tmp_path):
    audio = runner.invoke(app, ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.128", "--window-seconds",
                                "0.064", "--steps", "2", "--method", "mad", "--mad-ratio", "0.5",
                                "--out", str(tmp_path / "a.wav")])
    assert audio.exit_code == 0, audio.output
    pano = runner.invoke(app, ["panorama", "forest", "--model", tiny_sd_dir, "--width", "128", "--height", "64",
                               "--view-width", "64", "--steps", "2", "--method", "mad",
                               "--out", str(tmp_path / "p.png")])
    assert pano.exit_code == 0, pano.output


def test_cli_syncdiffusion_names_the_missing_lpips_weights(tiny_sd_dir, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = runner.invoke(app, ["panorama", "forest", "--model", tiny_sd_dir, "--width", "128", "--height", "64",
                                 "--view-width", "64", "--steps", "2", "--method", "syncd", "--out",
                                 str(tmp_path / "p.png")])
    assert result.exit_code == 2
    assert "SyncDiffusion needs the VGG16 weights vgg16-397923af.pth" in result.stderr
    assert str(tmp_path / "torch") in result.stderr and not (tmp_path / "p.png").exists()
    audio = runner.invoke(app, ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.128", "--window-seconds",
                                "0.064", "--steps", "2", "--method", "syncd", "--out", str(tmp_path / "a.wav")])
    assert audio.exit_code == 2 and "SyncDiffusion needs the VGG16 weights" in audio.stderr


@pytest.mark.parametrize("option,value,message", [
    ("--mad-ratio", "2", "--mad-ratio must be a finite number between 0 and 1, got '2'."),
    ("--sync-weight", "-1", "--sync-weight must be a finite number >= 0"),
])
def test_cli_refuses_bad_baseline_options(tmp_path, option, value, message):
    result = runner.invoke(app, ["audio", "rain", option, value, "--out", str(tmp_path / "a.wav")])
    assert result.exit_code == 2 and message in result.stderr


# --- as their authors wrote them (issue 18) ----------------------------------------------------------------------


def test_syncdiffusion_feeds_lpips_the_authors_clamped_previews(sd):
    """The authors decode the preview to [0, 1] with a clamp and map it back: LPIPS never sees values beyond [-1, 1]."""
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, a, b):
            seen.extend([a.detach(), b.detach()])
            return ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    adapter = PanoramaPipeline.from_pipe(sd).adapter
    cond = adapter.encode_prompt(PROMPT, None, True, (1, 4, 8, 8))
    scheduler = sd.scheduler
    scheduler.set_timesteps(10)

    def loud_decode(latents):  # a preview well outside [-1, 1]
        return 5 * adapter.decode_preview(latents)

    views = torch.randn(3, 4, 8, 8, generator=generator(1))
    sync_views(views, scheduler.timesteps[0], 1.0,
               denoise=lambda x, t, ids: adapter.denoise(x, t, per_row(cond, x.shape[0]), 7.5),
               scheduler=scheduler, decode=loud_decode, lpips=Recorder())
    assert seen and all(x.min() >= -1 and x.max() <= 1 for x in seen)
    assert any((x.abs() == 1).any() for x in seen), "the out-of-range preview was clipped"


def test_mad_merges_cross_attention_on_every_step_and_self_attention_in_its_steps(sd, monkeypatch):
    """As the authors' code: after the threshold, self-attention goes back to per view, cross-attention stays merged."""
    from swapforward.baselines import mad

    merges, step = [], [0]
    real = mad.merge_tokens

    def counting(*args, **kwargs):
        merges.append(step[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(mad, "merge_tokens", counting)

    def advance(k, t, x):
        step[0] = k + 1

    out = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=128, view_width=64, method="mad", overlap=0.5,
                                         mad_ratio=0.5, num_inference_steps=4, seed=0, callback=advance,
                                         progress_bar=False)
    per_step = [merges.count(k) for k in range(4)]
    assert out.model_calls == 4 and per_step[0] == per_step[1] > per_step[2] == per_step[3] > 0, per_step
    assert per_step[0] == 4 * per_step[2], "self-attention merges q, k and v; cross-attention only q"
    zero = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=128, view_width=64, method="mad", overlap=0.5,
                                          mad_ratio=0.0, num_inference_steps=2, seed=0, progress_bar=False)
    md = PanoramaPipeline.from_pipe(sd)(PROMPT, height=64, width=128, view_width=64, method="md", overlap=0.5,
                                        num_inference_steps=2, seed=0, progress_bar=False)
    assert not torch.equal(zero.latents, md.latents), "mad_ratio 0 still merges cross-attention, as the authors do"


@pytest.mark.parametrize("method", ["safa", "md"])
def test_given_latents_without_a_seed_reproduce_the_same_bytes(audioldm, method):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    latents = torch.randn(1, 4, 75, 8, generator=generator(9))
    args = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, method=method, num_inference_steps=3,
                progress_bar=False)
    first, second = pipe(PROMPT, latents=latents, **args), pipe(PROMPT, latents=latents.clone(), **args)
    assert np.array_equal(first.audio, second.audio)
    reference = torch.randn(1, 4, 32, 8, generator=generator(2))
    given = pipe(PROMPT, latents=latents, reference_latents=reference, **args)
    other = pipe(PROMPT, latents=latents, reference_latents=reference + 1, **args)
    assert np.array_equal(given.audio, pipe(PROMPT, latents=latents, reference_latents=reference, **args).audio)
    assert np.array_equal(given.audio, other.audio) == (method == "md"), "only SaFa has a reference view"
    with pytest.raises(SwapForwardError, match=r"reference_latents must have shape \(1, 4, 32, 8\)"):
        pipe(PROMPT, latents=latents, reference_latents=torch.zeros(1, 4, 31, 8), **args)
