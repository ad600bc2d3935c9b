"""The ComfyUI node pack inside the real ComfyUI 0.8.0 (imported here, on the CPU), over tiny models built in its own
model classes: one view is ComfyUI's own KSampler / SamplerCustom bit for bit, the pack's joint run is the core's
loop over ComfyUI's denoiser, and the loop-aware decode wraps round."""

import pytest
import torch
from comfyui_models import (
    comfyui_missing,
    import_comfyui,
    sd_conditioning,
    stable_audio_conditioning,
    tiny_oobleck_vae,
    tiny_sd_model,
    tiny_stable_audio_model,
    tiny_taesd_vae,
)

pytestmark = pytest.mark.skipif(comfyui_missing() is not None, reason=str(comfyui_missing()))

JOINT = {"method": "safa", "media": "image", "overlap": 0.2, "loop": False, "view_size": 0, "swap_interval": 1,
         "r_guide": 0.3, "reference_phase": "local", "view_batch": 8}


@pytest.fixture(scope="module")
def comfy():
    import_comfyui()
    import comfy.sample
    import comfy.samplers

    return comfy


@pytest.fixture(scope="module")
def nodes(comfy):
    from swapforward.frontends.comfyui import nodes

    return nodes


@pytest.fixture(scope="module")
def sd(comfy):
    return tiny_sd_model()


@pytest.fixture(scope="module")
def audio(comfy):
    return tiny_stable_audio_model()


def ksampler(nodes, model, latent, positive, negative, sampler="euler", seed=5, steps=4, **joint):
    out, = nodes.SwapForwardKSampler().sample(model, seed, steps, 3.0, sampler, "normal", positive, negative, latent,
                                              1.0, **{**JOINT, **joint})
    return out["samples"]


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
@pytest.mark.parametrize("method", ["safa", "md", "md-envelope"])
def test_one_view_is_comfyuis_own_ksampler_bit_for_bit(comfy, nodes, sd, sampler, method):
    positive, negative = sd_conditioning()
    latent = torch.zeros(1, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 5)
    own = comfy.sample.sample(sd, noise, 4, 3.0, sampler, "normal", positive, negative, latent, seed=5)
    ours = ksampler(nodes, sd, {"samples": latent}, positive, negative, sampler, method=method)
    assert torch.equal(own, ours)


def test_one_view_of_stable_audio_is_comfyuis_own_ksampler_and_sampler_custom(comfy, nodes, audio):
    positive, negative = stable_audio_conditioning(2.0)
    latent = torch.zeros(1, 64, 44)
    noise = comfy.sample.prepare_noise(latent, 5)
    own = comfy.sample.sample(audio, noise, 4, 3.0, "euler", "normal", positive, negative, latent, seed=5)
    ours = ksampler(nodes, audio, {"samples": latent, "view_frames": 44}, positive, negative, media="audio")
    assert torch.equal(own, ours)
    sampler, = nodes.SwapForwardSampler().get_sampler("euler", **{**JOINT, "media": "audio", "view_size": 44})
    sigmas = comfy.samplers.calculate_sigmas(audio.get_model_object("model_sampling"), "normal", 4).cpu()
    custom = comfy.sample.sample_custom(audio, noise, 3.0, sampler, sigmas, positive, negative, latent, seed=5)
    assert torch.equal(own, custom), "SamplerCustom with the pack's SAMPLER is ComfyUI's euler for one view"


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("method", ["safa", "md-tri"])
def test_the_packs_joint_run_is_the_cores_loop_over_comfyuis_denoiser(comfy, nodes, sd, loop, method):
    """The pack through ComfyUI's sampling (its noise, guider and scaling) against the core's `joint_denoise` called
    here by hand on the denoiser ComfyUI hands a sampler, the plan built from the core's own functions."""
    from swapforward.core.layout import ViewLayout
    from swapforward.core.methods import get_method
    from swapforward.core.plan import plan_joint
    from swapforward.core.sampler import Joint, joint_denoise
    from swapforward.frontends.comfyui.sampling import SigmaSteps

    positive, negative = sd_conditioning()
    latent = torch.zeros(1, 4, 8, 36)
    seen = {}

    def by_hand(model, x, sigmas, extra_args=None, callback=None, disable=None):
        layout = ViewLayout.build(36, 8, overlap=0.2, loop=loop)
        plan = plan_joint(get_method(method), layout, len(sigmas) - 1, view_shape=(1, 4, 8, 8), axis=3, swap_axis=2,
                          r_guide=0.3, reference_phase="local")
        generator = torch.Generator().manual_seed(5)
        torch.randn(x.shape, generator=generator)
        reference = torch.randn((1, 4, 8, 8), generator=generator) * sigmas[0]  # EPS, below sigma_max
        joint = Joint(layout, 3, plan.weights, plan.guide_steps, plan.reference_mask, None, view_batch_size=8,
                      swap=plan.guidance)

        def denoiser(views, sigma, ids):
            return model(views, sigma * views.new_ones([views.shape[0]]), **extra_args)

        seen["guided"] = plan.guide_steps
        return joint_denoise(x, denoiser, SigmaSteps(sigmas), joint, reference=reference)

    noise = comfy.sample.prepare_noise(latent, 5)
    sigmas = comfy.samplers.calculate_sigmas(sd.get_model_object("model_sampling"), "normal", 4).cpu()[1:]
    expected = comfy.sample.sample_custom(sd, noise, 3.0, comfy.samplers.KSAMPLER(by_hand), sigmas, positive,
                                          negative, latent, seed=5)
    sampler, = nodes.SwapForwardSampler().get_sampler("euler", **{**JOINT, "method": method, "loop": loop})
    ours = comfy.sample.sample_custom(sd, noise, 3.0, sampler, sigmas, positive, negative, latent, seed=5)
    assert torch.equal(expected, ours)
    assert seen["guided"] == (1 if method == "safa" else 0)
    plain = comfy.sample.sample(sd, noise, 3, 3.0, "euler", "normal", positive, negative, latent, seed=5)
    assert not torch.equal(plain, ours), "the joint run is not the plain model over the wide latent"


def test_the_empty_latents_have_the_models_geometry_and_refuse_a_panorama_narrower_than_a_view(nodes):
    latent, frames = nodes.SwapForwardEmptyLatentImage().generate(4096, 512, 0, 1)
    assert latent["samples"].shape == (1, 4, 64, 512) and frames == 64 == latent["view_frames"]
    assert nodes.SwapForwardEmptyLatentImage.VALIDATE_INPUTS(4096, 512, 0, 1) is True
    said = nodes.SwapForwardEmptyLatentImage.VALIDATE_INPUTS(256, 512, 0, 1)
    assert said.startswith("width 256 px is narrower than one view (512 px)")
    assert "multiple of 8" in nodes.SwapForwardEmptyLatentImage.VALIDATE_INPUTS(4100, 512, 0, 1)
    latent, frames = nodes.SwapForwardEmptyLatentAudio().generate(120.0, "stable_audio_open", 0.0, 2)
    assert latent["samples"].shape == (2, 64, 2584) and frames == round(47.55 * 44100 / 2048)  # EmptyLatentAudio's
    latent, frames = nodes.SwapForwardEmptyLatentAudio().generate(120.0, "ace_step", 30.0, 1)
    assert latent["samples"].shape == (1, 8, 16, int(120 * 44100 / 512 / 8)) and latent["type"] == "audio"


def test_the_loop_aware_decode_is_comfyuis_decode_and_wraps_round_with_loop(comfy, nodes):
    """One tile without loop is ComfyUI's VAE Decode (Audio) exactly; with loop, the decoder sees the other end's
    frames: the output is the decode of the circularly padded latent, cropped."""
    import comfy_extras.nodes_audio

    vae = tiny_taesd_vae()
    latent = torch.randn(1, 4, 8, 24, generator=torch.Generator().manual_seed(0))
    image, = nodes.SwapForwardDecodeImage().decode({"samples": latent}, vae, False, 64, 16)
    assert torch.equal(image, vae.decode(latent))
    looped, = nodes.SwapForwardDecodeImage().decode({"samples": latent}, vae, True, 64, 8)
    padded = vae.decode(torch.cat([latent[..., -8:], latent, latent[..., :8]], -1))
    assert torch.equal(looped, padded[:, :, 64:-64])
    assert not torch.equal(looped, image), "the ends see each other"

    sound = tiny_oobleck_vae()
    latent = torch.randn(1, 64, 12, generator=torch.Generator().manual_seed(1))
    own = comfy_extras.nodes_audio.VAEDecodeAudio.execute(sound, {"samples": latent})[0]
    ours, = nodes.SwapForwardDecodeAudio().decode({"samples": latent}, sound, False, 256, 64)
    assert ours["sample_rate"] == own["sample_rate"] and torch.equal(ours["waveform"], own["waveform"])
    looped, = nodes.SwapForwardDecodeAudio().decode({"samples": latent}, sound, True, 256, 4)
    assert looped["waveform"].shape == own["waveform"].shape == (1, 2, 12 * 2048)
    long, = nodes.SwapForwardDecodeAudio().decode({"samples": latent.repeat(1, 1, 4)}, sound, True, 16, 4)
    assert long["waveform"].shape[-1] == 48 * 2048, "tiles cover a latent longer than one"


def test_a_video_latent_is_refused_in_one_sentence():
    from swapforward.frontends.comfyui.sampling import JointSettings, joint_sample

    with pytest.raises(ValueError, match=r"got 5 axes \(1, 16, 3, 8, 8\); video is not supported"):
        joint_sample(JointSettings(), lambda x, sigma: x, torch.zeros(1, 16, 3, 8, 8), torch.tensor([1.0, 0.0]))


def test_four_axis_audio_latents_take_views_and_swaps_along_time(comfy, nodes, sd):
    """ACE-Step's latents are (batch, 8, 16, frames): with media audio the views and the reference swap run along
    the last axis, as for Stable Audio's (batch, 64, frames); with media image the swap takes rows instead."""
    from swapforward.frontends.comfyui.sampling import JointSettings

    assert JointSettings(media="audio").axes(4) == (3, 3) and JointSettings(media="audio").axes(3) == (2, 2)
    assert JointSettings(media="image").axes(4) == (3, 2)
    positive, negative = sd_conditioning()
    latent = {"samples": torch.zeros(1, 4, 8, 40), "view_frames": 16}
    audio = ksampler(nodes, sd, latent, positive, negative, media="audio")
    image = ksampler(nodes, sd, latent, positive, negative, media="image", view_size=16)
    assert audio.shape == image.shape == (1, 4, 8, 40) and not torch.equal(audio, image)
