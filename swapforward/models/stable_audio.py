"""Adapter for diffusers' StableAudioPipeline (Stable Audio Open): 1-D latents, a DiT with rotary positions.

The latent is (batch, 64, frames) of a waveform VAE (Oobleck), one frame per `vae.hop_length` samples (2048 at
44.1 kHz: 46 ms); the frame axis (-1) is the long axis. The text is T5 embeddings plus start/end-seconds tokens;
every view is conditioned as a whole clip of its own length (start 0, end = the view's seconds), and the rotary
positions are those of one view, so each view looks to the model like a clip of its training window.
"""

from __future__ import annotations

import torch

from .base import WaveformAdapter, classifier_free


class StableAudioAdapter(WaveformAdapter):
    """`StableAudioPipeline`: MAD is not offered (its attention applies rotary positions inside each view)."""

    long_axis = -1
    reference_axis = -1
    supports_merged_attention = False

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.vae.config.sampling_rate)

    @property
    def frame_samples(self) -> int:
        return int(self.pipe.vae.hop_length)

    @property
    def channels(self) -> int:
        return int(self.pipe.vae.config.audio_channels)

    @torch.no_grad()
    def encode_audio(self, audio):
        wave, frames = self.padded_wave(audio)
        vae = self.pipe.vae
        return vae.encode(wave.to(self.device, vae.dtype)).latent_dist.mode()[..., :frames].to(self.dtype)

    @property
    def trained_window_seconds(self) -> float:
        """The transformer's sample size in seconds (47.55 s for stable-audio-open-1.0)."""
        return self.pipe.transformer.config.sample_size * self.frame_samples / self.sample_rate

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        return (1, int(self.pipe.transformer.config.in_channels), frames)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        pipe, device = self.pipe, self.device
        seconds = view_shape[-1] * self.frame_samples / self.sample_rate
        embeds = pipe.encode_prompt(prompt, device, guidance, negative_prompt)
        start, end = pipe.encode_duration(0.0, seconds, device, guidance and negative_prompt is not None, 1)
        text = torch.cat([embeds, start, end], dim=1)
        duration = torch.cat([start, end], dim=2)
        if guidance and negative_prompt is None:  # the pipeline's unconditional branch: zeros
            text = torch.cat([torch.zeros_like(text), text])
            duration = torch.cat([duration, duration])
        return {"encoder_hidden_states": text, "global_hidden_states": duration}

    def denoise(self, latents, t, cond, guidance_scale):
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        duration = cond["global_hidden_states"]
        rotary = get_1d_rotary_pos_embed(
            self.pipe.rotary_embed_dim, latents.shape[-1] + duration.shape[1], use_real=True,
            repeat_interleave_real=False,
        )

        def run(x):
            return self.pipe.transformer(
                x,
                t.unsqueeze(0),
                encoder_hidden_states=cond["encoder_hidden_states"],
                global_hidden_states=duration,
                rotary_embedding=rotary,
                return_dict=False,
            )[0]

        return classifier_free(run, latents, cond, guidance_scale)

    def vae_waves(self, latents):
        return self.pipe.vae.decode(latents).sample
