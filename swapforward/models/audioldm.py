"""Adapters for diffusers' AudioLDM and AudioLDM2 pipelines (mel-spectrogram latents, U-Net, HiFi-GAN).

The latent is (batch, channels, time frames, mel bins / VAE factor); time (axis -2) is the long axis. One latent
frame is VAE-factor mel frames of `hop` samples each (40 ms for the released checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..core.tiling import decode_tiled, decode_tiled_chunks
from .base import AudioAdapter, classifier_free


class AudioLDMAdapter(AudioAdapter):
    """AudioLDM: a CLAP text embedding enters the U-Net as its class embedding."""

    @property
    def vae_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def hop(self) -> int:
        return int(np.prod(self.pipe.vocoder.config.upsample_rates))

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.vocoder.config.sampling_rate)

    @property
    def frame_samples(self) -> int:
        return self.hop * self.vae_factor

    @property
    def spectrogram_bytes_per_sample(self) -> float:
        return int(self.pipe.vocoder.config.model_in_dim) * 4 / self.hop

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        bins = int(self.pipe.vocoder.config.model_in_dim) // self.vae_factor
        return (1, int(self.pipe.unet.config.in_channels), frames, bins)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        embeds = self.pipe._encode_prompt(prompt, self.device, 1, guidance, negative_prompt)
        return {"class_labels": embeds}

    def _unet(self, latents, t, cond):
        return self.pipe.unet(latents, t, encoder_hidden_states=None, class_labels=cond["class_labels"]).sample

    def denoise(self, latents, t, cond, guidance_scale):
        return classifier_free(lambda x: self._unet(x, t, cond), latents, cond, guidance_scale)

    def mel(self, audio: np.ndarray) -> torch.Tensor:
        """AudioLDM's input features of a (1, samples) waveform, (frames, bins): the log (floor 1e-5) of a slaney mel
        filter bank up to Nyquist on the STFT magnitude, hop = the vocoder's upsampling, window 6.4 hops (AudioLDM's
        1024 samples at a 160-sample hop)."""
        from transformers.audio_utils import mel_filter_bank

        n_fft = max(8, 2 * round(self.hop * 3.2))
        wave = torch.from_numpy(np.ascontiguousarray(audio[0], dtype=np.float32))
        spectrum = torch.stft(wave, n_fft, self.hop, window=torch.hann_window(n_fft), center=True, pad_mode="reflect",
                              return_complex=True).abs()
        bins = int(self.pipe.vocoder.config.model_in_dim)
        bank = torch.from_numpy(mel_filter_bank(n_fft // 2 + 1, bins, 0.0, self.sample_rate / 2, self.sample_rate,
                                                norm="slaney", mel_scale="slaney")).float()
        return torch.log(torch.clamp(bank.T @ spectrum, min=1e-5)).T

    @torch.no_grad()
    def encode_audio(self, audio):
        frames = -(-audio.shape[-1] // self.frame_samples)
        mel = self.mel(audio)[: frames * self.vae_factor]
        mel = torch.nn.functional.pad(mel, (0, 0, 0, frames * self.vae_factor - mel.shape[0]))
        vae = self.pipe.vae
        latent = vae.encode(mel[None, None].to(self.device, vae.dtype)).latent_dist.mode()
        return (latent * vae.config.scaling_factor).to(self.dtype)

    def decode_preview(self, latents):
        """The mel spectrogram as a picture: scaled to [-1, 1] per view, on three channels."""
        mel = self.pipe.vae.decode(1 / self.pipe.vae.config.scaling_factor * latents).sample
        low = mel.amin(dim=(1, 2, 3), keepdim=True)
        high = mel.amax(dim=(1, 2, 3), keepdim=True)
        return (2 * (mel - low) / (high - low + 1e-6) - 1).expand(-1, 3, -1, -1)

    @torch.no_grad()
    def decode(self, latents, window, loop):
        mel, waves = self.decode_chunks(latents, window, loop)
        return np.concatenate(list(waves()), axis=-1), mel

    @torch.no_grad()
    def decode_chunks(self, latents, window, loop) -> tuple[np.ndarray, Callable[[], Iterator[np.ndarray]]]:
        """The mel spectrogram (frames, bins), and a function that vocodes it into the waveform (channels, samples)
        in pieces of about one vocoder tile, in order, so that hours of audio go to a file without being held (each
        call starts again); joined, the pieces are `decode`'s waveform bit for bit."""
        vae, vocoder = self.pipe.vae, self.pipe.vocoder
        scale = vae.config.scaling_factor
        mel = decode_tiled(
            latents,
            lambda z: vae.decode(1 / scale * z).sample,
            axis=-2,
            out_axis=-2,
            factor=self.vae_factor,
            tile=window,
            overlap=max(1, window // 8),
            loop=loop,
        )
        mel = mel[:, 0]
        mel_window = window * self.vae_factor

        def waves() -> Iterator[np.ndarray]:
            pieces = decode_tiled_chunks(mel.to(vocoder.dtype), vocoder, axis=1, out_axis=1, factor=self.hop,
                                         tile=mel_window, overlap=max(1, mel_window // 8), loop=loop)
            with torch.no_grad():
                for piece in pieces:
                    yield piece.float().cpu().numpy()

        return mel[0].float().cpu().numpy(), waves


class AudioLDM2Adapter(AudioLDMAdapter):
    """AudioLDM2: GPT-2-generated CLAP/T5 embeddings and T5 embeddings enter two cross-attention streams."""

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        embeds, mask, generated = self.pipe.encode_prompt(
            prompt, self.device, 1, guidance, negative_prompt=negative_prompt
        )
        return {"prompt_embeds": embeds, "attention_mask": mask, "generated_prompt_embeds": generated}

    def _unet(self, latents, t, cond):
        return self.pipe.unet(
            latents,
            t,
            encoder_hidden_states=cond["generated_prompt_embeds"],
            encoder_hidden_states_1=cond["prompt_embeds"],
            encoder_attention_mask_1=cond["attention_mask"],
            return_dict=False,
        )[0]
