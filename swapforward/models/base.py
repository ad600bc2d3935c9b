"""The adapter interface: the little that the joint loop needs from a diffusers pipeline.

An adapter says which latent axis is long (and along which axis the reference swap alternates), how to encode a
prompt, how to set the scheduler's timesteps for a view, how to run the denoiser (with classifier-free guidance)
on a batch of views, and how to decode a long latent. A new model family plugs in by implementing these members;
the pipeline it wraps stays usable and unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import is_compiled_module

from ..core.tiling import decode_tiled
from ..io.spectrogram import log_mel


class LatentAdapter(ABC):
    """What every modality's adapter provides."""

    #: Latent axis along which views are laid out.
    long_axis: int = -1
    #: Axis along which Eq. 10's reference mask alternates (the long axis for audio, rows for images).
    reference_axis: int = -1
    #: Whether MAD's merged-attention processors can replace this denoiser's attention.
    supports_merged_attention: bool = True
    #: The pipeline's attribute holding the denoiser (U-Nets; the DiTs' "transformer").
    denoiser_attribute: str = "unet"
    #: Denoising steps and guidance scale when the request gives none (distilled checkpoints: their own few steps).
    default_steps: int = 50
    default_guidance: float = 7.5

    def __init__(self, pipe: Any):
        self.pipe = pipe

    @property
    def denoiser_module(self) -> torch.nn.Module:
        return getattr(self.pipe, self.denoiser_attribute)

    def uses_guidance(self, guidance_scale: float) -> bool:
        """Whether the base pipeline runs a negative branch at this scale (diffusers' usual test: above 1)."""
        return guidance_scale > 1.0

    @property
    def compiled(self) -> bool:
        """Whether the denoiser is compiled (`module.compile()` or `torch.compile(module)`): with CUDA graphs its
        outputs live in memory that its next call overwrites, so they must be copied out."""
        module = self.denoiser_module
        return is_compiled_module(module) or getattr(module, "_compiled_call_impl", None) is not None

    @property
    def scheduler(self) -> Any:
        return self.pipe.scheduler

    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser_module.dtype

    def set_timesteps(self, scheduler: Any, steps: int, view_shape: tuple[int, ...]) -> None:
        """Set `scheduler`'s timesteps as the base pipeline would for one view of `view_shape`."""
        scheduler.set_timesteps(steps, device=self.device)

    def step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict[str, Any]:
        """Extra arguments of `scheduler.step` (eta, generator), as the base pipeline passes them."""
        return self.pipe.prepare_extra_step_kwargs(generator, eta)

    @abstractmethod
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: bool, view_shape: tuple[int, ...]
    ) -> dict[str, torch.Tensor]:
        """Text conditioning for views of `view_shape`, [negative, positive] rows when `guidance`; for `denoise`."""

    @abstractmethod
    def denoise(
        self, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], guidance_scale: float
    ) -> torch.Tensor:
        """Model output for a batch of views, `cond` holding a row per view and guidance group (`per_row`), with
        classifier-free guidance when it has a negative and a positive row per view."""

    @abstractmethod
    def decode_preview(self, latents: torch.Tensor) -> torch.Tensor:
        """Differentiable decode of view latents to (batch, 3, H, W) pictures in about [-1, 1], for LPIPS."""

    @property
    def patch_size(self) -> int:
        """Latent cells per token side (DiTs patchify; U-Nets attend over single cells)."""
        return int(getattr(self.denoiser_module.config, "patch_size", None) or 1)


def per_row(cond: dict[str, torch.Tensor], batch: int) -> dict[str, torch.Tensor]:
    """[negative, positive] conditioning of one prompt -> rows for a batch of `batch` views: [negative] * batch +
    [positive] * batch (or [positive] * batch without guidance), the layout `denoise` takes."""
    return {key: value.repeat_interleave(batch, dim=0) for key, value in cond.items()}


def classifier_free(run: Any, latents: torch.Tensor, cond: dict[str, torch.Tensor],
                    guidance_scale: float) -> torch.Tensor:
    """Evaluate `run(model_input)` on [views, views] and combine uncond + scale * (text - uncond) when `cond` has a
    negative and a positive row per view, or once on the views when it has one row per view."""
    if next(iter(cond.values())).shape[0] == latents.shape[0]:
        return run(latents)
    uncond, text = run(torch.cat([latents, latents])).chunk(2)
    return uncond + guidance_scale * (text - uncond)


class AudioAdapter(LatentAdapter):
    """A text-to-audio adapter; the long axis is time."""

    long_axis = -2
    reference_axis = -2
    #: Length of audio the model was trained on, the default view length.
    trained_window_seconds: float = 10.24
    #: The SaFa paper's audio settings: 200 DDIM steps at guidance 3.5.
    default_steps = 200
    default_guidance = 3.5

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""

    @property
    @abstractmethod
    def frame_samples(self) -> int:
        """Audio samples per latent frame along the long axis."""

    @abstractmethod
    def latent_shape(self, frames: int) -> tuple[int, ...]:
        """Shape of a batch-1 latent `frames` long."""

    @property
    def channels(self) -> int:
        """Audio channels the model makes (and takes)."""
        return 1

    @abstractmethod
    def decode(self, latents: torch.Tensor, window: int, loop: bool) -> tuple[np.ndarray, np.ndarray]:
        """Long latent -> (waveform float32 (channels, samples), spectrogram float32 (frames, bins))."""

    @property
    def spectrogram_bytes_per_sample(self) -> float:
        """Host memory the spectrogram that `decode` returns takes per output sample (held for the picture)."""
        return 0.0

    def decode_chunks(self, latents: torch.Tensor, window: int,
                      loop: bool) -> tuple[np.ndarray, Callable[[], Iterator[np.ndarray]]]:
        """(spectrogram, a function giving the waveform in pieces, in order): one piece here; adapters whose
        decoder streams (AudioLDM's vocoder) give pieces of a tile, so hours of audio are never held whole."""
        wave, spectrogram = self.decode(latents, window, loop)
        return spectrogram, lambda: iter([wave])

    @abstractmethod
    def encode_audio(self, audio: np.ndarray) -> torch.Tensor:
        """(channels, samples) float32 at the model's rate -> latent (1, ..., frames, ...) of ceil(samples /
        frame_samples) frames, the VAE's mean (its mode), as the model's own latents are scaled."""


def spectrogram_pictures(waves: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(batch, channels, samples) -> log-mel pictures of the mono mix, in [-1, 1] on three channels (for LPIPS)."""
    pictures = []
    for wave in waves.mean(1):
        mel = log_mel(wave.float(), sample_rate).T
        pictures.append(2 * (mel - mel.min()) / (mel.max() - mel.min() + 1e-6) - 1)
    return torch.stack(pictures)[:, None].expand(-1, 3, -1, -1)


class WaveformAdapter(AudioAdapter):
    """An audio adapter whose VAE decodes latents to waveforms directly (Stable Audio, LongCat-AudioDiT, ACE-Step):
    it says how the VAE decodes a batch of views (`vae_waves`) and anything the pipeline does to the waveform after
    (`finish`); decoding a long latent, the spectrogram and SyncDiffusion's pictures follow from them."""

    denoiser_attribute = "transformer"

    @abstractmethod
    def vae_waves(self, latents: torch.Tensor) -> torch.Tensor:
        """View latents -> (batch, channels, samples), as the pipeline calls its VAE."""

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        """The pipeline's own treatment of a decoded (channels, samples) waveform (clamping, normalising)."""
        return wave

    def padded_wave(self, audio: np.ndarray) -> tuple[torch.Tensor, int]:
        """(a (1, channels, samples) float32 tensor of `audio` zero-padded to whole latent frames, the frame count):
        what a waveform VAE encodes."""
        frames = -(-audio.shape[-1] // self.frame_samples)
        wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        return torch.nn.functional.pad(wave, (0, frames * self.frame_samples - wave.shape[-1])), frames

    def decode_preview(self, latents: torch.Tensor) -> torch.Tensor:
        return spectrogram_pictures(self.vae_waves(latents), self.sample_rate)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, window: int, loop: bool) -> tuple[np.ndarray, np.ndarray]:
        """The long latent decoded in overlapping tiles of one view (an eighth of it cross-faded; circular with
        `loop`), finished as the pipeline finishes it, and its spectrogram."""
        wave = decode_tiled(latents, self.vae_waves, axis=self.long_axis, out_axis=-1, factor=self.frame_samples,
                            tile=window, overlap=max(1, window // 8), loop=loop)[0]
        wave = self.finish(wave).float()
        return wave.cpu().numpy().astype(np.float32), log_mel(wave.mean(0).cpu(), self.sample_rate).numpy()


class ImageAdapter(LatentAdapter):
    """A text-to-image adapter; the long axis is width, and the reference swap takes whole rows (Fig. 4)."""

    long_axis = -1
    reference_axis = -2

    @property
    def vae_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def native_size(self) -> int:
        """The square image size the model was trained at, in pixels."""
        return int(self.denoiser_module.config.sample_size) * self.vae_factor

    @property
    def latent_channels(self) -> int:
        return int(self.denoiser_module.config.in_channels)

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this many pixels (the VAE factor, times the patch size for DiTs)."""
        return self.vae_factor

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        """Shape of a batch-1 latent for an image of `height` x `width` pixels."""
        return (1, self.latent_channels, height // self.vae_factor, width // self.vae_factor)

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """One VAE decode, exactly as the base pipeline does it (scaling and shift included): pixels in [-1, 1]."""

    @abstractmethod
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) pixels in [-1, 1] -> latent (1, C, H / 8, W / 8): the VAE's mode, scaled (and shifted) as the
        model's own latents are, the inverse of `decode_latents`."""

    @torch.no_grad()
    def encode_image(self, array: np.ndarray) -> torch.Tensor:
        """(H, W, 3) float32 in [0, 1] -> latent."""
        pixels = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None] * 2 - 1
        return self.encode_pixels(pixels.to(self.device))

    def decode_preview(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode_latents(latents)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tile: int, loop: bool) -> np.ndarray:
        """Wide latent -> (height, width, 3) float32 image in [0, 1], decoded in overlapping tiles of `tile` columns."""
        image = decode_tiled(
            latents,
            self.decode_latents,
            axis=-1,
            out_axis=-1,
            factor=self.vae_factor,
            tile=tile,
            overlap=max(1, tile // 4),
            loop=loop,
        )
        return self.pipe.image_processor.postprocess(image, output_type="np")[0]
