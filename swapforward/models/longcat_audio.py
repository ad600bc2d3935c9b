"""Adapter for diffusers' LongCatAudioDiTPipeline (LongCat-AudioDiT): a rectified-flow DiT over (frames, 64) latents
of a waveform VAE, with UMT5 text.

The latent is (batch, frames, 64), one frame per `vae.config.downsampling_ratio` samples (2048 at 24 kHz: 85 ms),
mono; frames (axis -2) are the long axis. The model has no duration input (the frame count is the length) and
applies rotary positions inside each call, so each view is positioned as one clip. The prompt is normalised as the
pipeline normalises it; without a negative prompt the unconditional branch is zero text, as in the pipeline.
Captions run at their own length (rows of equal length share a call), as the pipeline runs one prompt.
"""

from __future__ import annotations

import torch

from .base import WaveformAdapter


class LongCatAudioAdapter(WaveformAdapter):
    """`LongCatAudioDiTPipeline`. MAD is not offered: the DiT applies rotary positions inside its attention."""

    long_axis = -2
    reference_axis = -2
    supports_merged_attention = False
    #: The pipeline's own defaults.
    default_steps = 16
    default_guidance = 4.0

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.sample_rate)

    @property
    def frame_samples(self) -> int:
        return int(self.pipe.vae_scale_factor)

    @property
    def channels(self) -> int:
        return int(self.pipe.vae.config.in_channels)

    @property
    def trained_window_seconds(self) -> float:
        """The longest clip the pipeline makes (its `max_wav_duration`, 30 s)."""
        return float(self.pipe.max_wav_duration)

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        return (1, frames, int(self.pipe.latent_dim))

    def set_timesteps(self, scheduler, steps, view_shape):
        sigmas = torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float32).tolist()
        scheduler.set_timesteps(sigmas=sigmas, device=self.device)
        scheduler.set_begin_index(0)

    def step_kwargs(self, generator, eta):
        return {}

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        from diffusers.pipelines.longcat_audio_dit.pipeline_longcat_audio_dit import _normalize_text

        pipe = self.pipe
        text, length = pipe.encode_prompt([_normalize_text(prompt)], self.device)
        rows, lengths = [text], [length]
        if guidance:
            if negative_prompt is None:
                rows.insert(0, torch.zeros_like(text))
                lengths.insert(0, length)
            else:
                negative, negative_length = pipe.encode_prompt([negative_prompt], self.device)
                rows.insert(0, negative)
                lengths.insert(0, negative_length)
        longest = max(r.shape[1] for r in rows)
        padded = torch.cat([torch.nn.functional.pad(r, (0, 0, 0, longest - r.shape[1])) for r in rows])
        return {"encoder_hidden_states": padded, "text_length": torch.cat(lengths)}

    def denoise(self, latents, t, cond, guidance_scale):
        views = latents.shape[0]
        text, lengths = cond["encoder_hidden_states"], cond["text_length"]
        timestep = (t / self.scheduler.config.num_train_timesteps).expand(views).to(dtype=text.dtype)
        pred = self._run(latents, timestep, text[-views:], lengths[-views:])
        if text.shape[0] == views:
            return pred
        null = self._run(latents, timestep, text[:views], lengths[:views])
        return null + (pred - null) * guidance_scale

    def _run(self, latents, timestep, text, lengths):
        """The transformer on views with one caption each, views of equal caption length in one call."""
        out = torch.empty_like(latents)
        frames = torch.ones(latents.shape[:2], dtype=torch.bool, device=latents.device)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            caption = text[rows, :length]
            out[rows] = self.pipe.transformer(
                hidden_states=latents[rows],
                encoder_hidden_states=caption,
                encoder_attention_mask=torch.ones(caption.shape[:2], dtype=torch.bool, device=caption.device),
                timestep=timestep[rows],
                attention_mask=frames[rows],
                latent_cond=torch.zeros_like(latents[rows]),
            ).sample
        return out

    @torch.no_grad()
    def encode_audio(self, audio):
        wave, frames = self.padded_wave(audio)
        latents = self.pipe.vae.encode(wave.to(self.device), sample_posterior=False).latents
        return latents[..., :frames].permute(0, 2, 1).to(self.dtype)

    def vae_waves(self, latents):
        return self.pipe.vae.decode(latents.permute(0, 2, 1)).sample
