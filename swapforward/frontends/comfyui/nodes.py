"""The ComfyUI nodes: a SAMPLER for SamplerCustom / SamplerCustomAdvanced, a KSampler-like node, empty long latents
for audio lengths in seconds and panorama widths, and a loop-aware tiled VAE decode for images and audio.

They run inside ComfyUI only (they import its modules); what they add is the joint sampling (sampling.py, over the
core) and the circular decode (core.tiling). Loaders, encoders, samplers, schedulers and saving stay ComfyUI's.
"""

from __future__ import annotations

import math
from typing import Any

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from ...core.methods import REFERENCE_PHASES
from ...core.tiling import decode_tiled
from .sampling import COMFY_METHODS, MEDIA, STEP_RULES, JointSettings, joint_sample

CATEGORY = "swapforward"
#: Latent frames a second and one window of the audio models ComfyUI loads (its EmptyLatentAudio and
#: EmptyAceStepLatentAudio geometry; Stable Audio Open's 47.55 s window, ACE-Step's 60 s as the project uses it).
AUDIO_FAMILIES = {"stable_audio_open": (44100 / 2048, 47.55), "ace_step": (44100 / 512 / 8, 60.0)}
PIXELS_PER_FRAME = 8


def joint_inputs() -> dict[str, tuple]:
    """The joint method's inputs, shared by the SAMPLER and the KSampler-like node."""
    return {
        "method": (list(COMFY_METHODS), {"default": "safa", "tooltip": "safa: the paper's swaps; md: MultiDiffusion;"
                                         " md-tri: triangular weights; md-envelope: MD* + the reference's envelope"}),
        "media": (list(MEDIA), {"default": "image", "tooltip": "image: views along the width, the reference swap "
                                "by rows; audio: views and swaps along time (the latent's last axis)"}),
        "overlap": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 0.95, "step": 0.05,
                              "tooltip": "share of a view its neighbour covers (the paper: 0.2 for SaFa)"}),
        "loop": ("BOOLEAN", {"default": False, "tooltip": "the last view wraps onto the first: a seamless loop or a "
                             "360 panorama"}),
        "view_size": ("INT", {"default": 0, "min": 0, "max": 65536, "tooltip": "latent frames of one view along the"
                              " long axis; 0: square views for images, the latent's own for audio from the "
                              "SwapForward empty latent"}),
        "swap_interval": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "frames per run of the swaps (w)"}),
        "r_guide": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05,
                              "tooltip": "share of the steps that follow the reference view"}),
        "reference_phase": (list(REFERENCE_PHASES), {"default": "local"}),
        "view_batch": ("INT", {"default": 8, "min": 1, "max": 1024, "tooltip": "views per model call"}),
    }


def settings_of(step: str, values: dict[str, Any]) -> JointSettings:
    return JointSettings(step=step, **{name: values[name] for name in joint_inputs()})


def sampler_for(settings: JointSettings) -> comfy.samplers.KSAMPLER:
    """A ComfyUI SAMPLER whose sampling is the joint loop over ComfyUI's denoiser."""
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        sampling = model.inner_model.inner_model.model_sampling
        first = sigmas[0]
        deepest = math.isclose(float(sampling.sigma_max), float(first), rel_tol=1e-05) or first > sampling.sigma_max

        def scale(noise: torch.Tensor) -> torch.Tensor:
            return sampling.noise_scaling(first, noise, torch.zeros_like(noise), deepest)

        return joint_sample(settings, model, x, sigmas, extra_args, callback, scale)

    return comfy.samplers.KSAMPLER(sample)


class SwapForwardSampler:
    """A SAMPLER for SamplerCustom / SamplerCustomAdvanced: the views of the latent are denoised by the model and
    merged by the method at every step."""

    CATEGORY = f"sampling/custom_sampling/{CATEGORY}"
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    DESCRIPTION = "Joint sampling of a long latent (SaFa, MultiDiffusion) for wide or 360 images and long audio."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"step": (list(STEP_RULES), {"default": "euler"}), **joint_inputs()}}

    def get_sampler(self, step: str, **values: Any) -> tuple:
        return (sampler_for(settings_of(step, values)),)


class SwapForwardKSampler:
    """KSampler over a long latent: ComfyUI's scheduler and noise, the joint method's views."""

    CATEGORY = f"sampling/{CATEGORY}"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    DESCRIPTION = "KSampler for long latents: seamless loops, 360 and wide panoramas, minutes of audio."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (list(STEP_RULES), {"default": "euler"}),
            "scheduler": (list(comfy.samplers.KSampler.SCHEDULERS), {"default": "normal"}),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            **joint_inputs(),
        }}

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
               **values: Any) -> tuple:
        if not values["view_size"] and "view_frames" in latent_image:
            values = {**values, "view_size": int(latent_image["view_frames"])}
        settings = settings_of(sampler_name, values)
        total = steps if denoise > 0.9999 else int(steps / denoise)  # as ComfyUI's KSampler takes a partial denoise
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, total).cpu()
        sigmas = sigmas[-(steps + 1):]
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        callback = latent_preview.prepare_callback(model, steps)
        samples = comfy.sample.sample_custom(model, noise, cfg, sampler_for(settings), sigmas, positive, negative,
                                             latent, noise_mask=latent_image.get("noise_mask"), callback=callback,
                                             disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        return ({**latent_image, "samples": samples},)


class EmptyLongLatent:
    """What the empty long latents share: a LATENT and its view length in latent frames."""

    CATEGORY = f"latent/{CATEGORY}"
    RETURN_TYPES = ("LATENT", "INT")
    RETURN_NAMES = ("LATENT", "view_frames")
    FUNCTION = "generate"


class SwapForwardEmptyLatentImage(EmptyLongLatent):
    """An empty latent for a panorama `width` px wide, with views `view_width` px wide (0: square, the height)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        size = {"min": 64, "max": 1 << 20, "step": 8}
        return {"required": {"width": ("INT", {"default": 4096, **size}), "height": ("INT", {"default": 512, **size}),
                             "view_width": ("INT", {"default": 0, "min": 0, "max": 1 << 20, "step": 8}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 64})}}

    @classmethod
    def VALIDATE_INPUTS(cls, width: int, height: int, view_width: int, batch_size: int) -> bool | str:
        view = view_width or height
        for name, value in (("width", width), ("height", height), ("view_width", view)):
            if value % PIXELS_PER_FRAME:
                return f"{name} must be a multiple of {PIXELS_PER_FRAME} px, got {value}"
        if view > width:
            return (f"width {width} px is narrower than one view ({view} px): no view layout fits; use a width of at "
                    f"least {view} px or a smaller view_width")
        return True

    def generate(self, width: int, height: int, view_width: int, batch_size: int) -> tuple:
        shape = [batch_size, 4, height // PIXELS_PER_FRAME, width // PIXELS_PER_FRAME]
        frames = (view_width or height) // PIXELS_PER_FRAME
        latent = torch.zeros(shape, device=comfy.model_management.intermediate_device())
        return ({"samples": latent, "view_frames": frames}, frames)


class SwapForwardEmptyLatentAudio(EmptyLongLatent):
    """An empty audio latent of `seconds` for Stable Audio Open or ACE-Step, and its view length in latent frames."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"seconds": ("FLOAT", {"default": 120.0, "min": 1.0, "max": 86400.0, "step": 0.1}),
                             "family": (list(AUDIO_FAMILIES), {"default": "stable_audio_open"}),
                             "view_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0, "step": 0.1,
                                                        "tooltip": "one view; 0: the model's window"}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 64})}}

    def generate(self, seconds: float, family: str, view_seconds: float, batch_size: int) -> tuple:
        rate, window = AUDIO_FAMILIES[family]
        device = comfy.model_management.intermediate_device()
        if family == "stable_audio_open":  # ComfyUI's EmptyLatentAudio: an even number of frames
            length = max(2, round(seconds * rate / 2) * 2)
            latent = torch.zeros([batch_size, 64, length], device=device)
        else:  # EmptyAceStepLatentAudio
            length = max(1, int(seconds * rate))
            latent = torch.zeros([batch_size, 8, 16, length], device=device)
        frames = max(1, round((view_seconds or window) * rate))
        return ({"samples": latent, "type": "audio", "view_frames": frames}, frames)


def tiled_decode(vae: Any, latent: torch.Tensor, out_axis: int, loop: bool, tile: int, overlap: int) -> torch.Tensor:
    """`vae.decode` tile by tile along the latent's last axis, circularly with `loop` (core.tiling)."""
    factor = vae.upscale_ratio
    if not isinstance(factor, (int, float)) or int(factor) != factor:
        raise ValueError("this VAE's output size is not a fixed multiple of its latent's; use ComfyUI's VAE Decode")
    return decode_tiled(latent, vae.decode, axis=-1, out_axis=out_axis, factor=int(factor), tile=tile,
                        overlap=min(overlap, tile - 1), loop=loop)


class LoopAwareDecode:
    """What the loop-aware decodes share: their inputs (tiles in latent frames, with the class's defaults)."""

    CATEGORY = f"latent/{CATEGORY}"
    FUNCTION = "decode"
    TILE, OVERLAP = 64, 16

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"samples": ("LATENT",), "vae": ("VAE",), "loop": ("BOOLEAN", {"default": False}),
                             "tile": ("INT", {"default": cls.TILE, "min": 4, "max": 1 << 20,
                                              "tooltip": "latent frames"}),
                             "overlap": ("INT", {"default": cls.OVERLAP, "min": 0, "max": 1 << 20})}}


class SwapForwardDecodeImage(LoopAwareDecode):
    """VAE decode in tiles along the width that wraps round with `loop`: a 360 panorama without a seam."""

    RETURN_TYPES = ("IMAGE",)

    def decode(self, samples: dict, vae: Any, loop: bool, tile: int, overlap: int) -> tuple:
        return (tiled_decode(vae, samples["samples"], 2, loop, tile, overlap),)


class SwapForwardDecodeAudio(LoopAwareDecode):
    """VAE decode in tiles along time that wraps round with `loop`: a loop whose end continues into its start. The
    waveform is scaled as ComfyUI's VAE Decode Audio scales it."""

    RETURN_TYPES = ("AUDIO",)
    TILE, OVERLAP = 256, 64

    def decode(self, samples: dict, vae: Any, loop: bool, tile: int, overlap: int) -> tuple:
        audio = tiled_decode(vae, samples["samples"], 1, loop, tile, overlap).movedim(-1, 1)
        std = torch.std(audio, dim=[1, 2], keepdim=True) * 5.0
        std[std < 1.0] = 1.0
        return ({"waveform": audio / std, "sample_rate": samples.get("sample_rate", 44100)},)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (SwapForwardSampler, SwapForwardKSampler,
                                                     SwapForwardEmptyLatentImage, SwapForwardEmptyLatentAudio,
                                                     SwapForwardDecodeImage, SwapForwardDecodeAudio)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SwapForwardSampler": "SwapForward Sampler (SaFa, MultiDiffusion)",
    "SwapForwardKSampler": "SwapForward KSampler (long latents)",
    "SwapForwardEmptyLatentImage": "SwapForward Empty Panorama Latent",
    "SwapForwardEmptyLatentAudio": "SwapForward Empty Long Latent Audio",
    "SwapForwardDecodeImage": "SwapForward VAE Decode (loop-aware, image)",
    "SwapForwardDecodeAudio": "SwapForward VAE Decode (loop-aware, audio)",
}
