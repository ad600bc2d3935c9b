"""Adapter for diffusers' StableAudio3Pipeline (Stable Audio 3): a distilled rectified-flow DiT over 1-D latents.

The latent is (batch, 256, frames) of the SAME autoencoder, one frame per `vae.downsampling_ratio` samples (4096 at
44.1 kHz: 93 ms), stereo; the frame axis (-1) is long. The text is T5Gemma embeddings with the duration embedding
appended as one more token and also given as the global (AdaLN) condition; every view is conditioned as a whole
clip of its own length. The DiT's rotary positions are internal to each call, so each view is positioned as one
clip. The distilled checkpoint samples 8 "ping-pong" steps (x0 re-noised with fresh noise, which the engine draws
once per canvas frame: runtime.stochastic) without guidance; the base checkpoint 100 deterministic Euler steps.
"""

from __future__ import annotations

import torch

from .base import classifier_free
from .stable_audio import StableAudioAdapter

#: The pipeline's log-SNR range of the noise schedule (its `logsnr_min`, `logsnr_max` defaults).
LOGSNR_RANGE = (-6.2, 2.0)


class StableAudio3Adapter(StableAudioAdapter):
    """`StableAudio3Pipeline`: MAD is not offered (the DiT's differential attention applies rotary positions)."""

    @property
    def default_steps(self) -> int:
        """The pipeline's own: 8 for the distilled (stochastic) checkpoint, 100 for the base one."""
        return 8 if self.scheduler.config.get("stochastic_sampling", False) else 100

    #: The pipeline's own: guidance is baked into the distilled weights (the base checkpoint takes --guidance).
    default_guidance = 1.0

    @property
    def frame_samples(self) -> int:
        return int(self.pipe.vae.downsampling_ratio)

    @property
    def trained_window_seconds(self) -> float:
        """The longest duration the model is conditioned on (its duration embedder's range: 384 s for Medium)."""
        return float(self.pipe.duration_embedder.config.max_val)

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        return (1, int(self.pipe.transformer.config.io_channels), frames)

    def set_timesteps(self, scheduler, steps, view_shape):
        from diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 import logsnr_sigma_schedule

        scheduler.set_timesteps(sigmas=logsnr_sigma_schedule(steps, *LOGSNR_RANGE), device=self.device)

    def step_kwargs(self, generator, eta):
        return {"generator": generator}

    @torch.no_grad()
    def encode_audio(self, audio):
        wave, frames = self.padded_wave(audio)
        vae = self.pipe.vae
        return vae.encode(wave.to(self.device, vae.dtype)).latents[..., :frames].to(self.dtype)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        pipe, device = self.pipe, self.device
        seconds = view_shape[-1] * self.frame_samples / self.sample_rate
        duration = pipe.encode_duration(seconds, device, 1, 1)
        context, mask = pipe.prepare_cross_attention(*pipe.encode_prompt(prompt, device, 1), duration)
        if not guidance:
            return {"encoder_hidden_states": context, "encoder_attention_mask": mask, "global_hidden_states": duration}
        negative, negative_mask = pipe.prepare_cross_attention(
            *pipe.encode_prompt([negative_prompt or ""], device, 1), duration)
        return {"encoder_hidden_states": torch.cat([negative, context]),
                "encoder_attention_mask": torch.cat([negative_mask, mask]),
                "global_hidden_states": torch.cat([duration, duration])}

    def finish(self, wave):
        """The pipeline clamps its waveform to [-1, 1]."""
        return wave.clamp(-1.0, 1.0)

    def denoise(self, latents, t, cond, guidance_scale):
        def run(x):
            return self.pipe.transformer(
                x,
                t.expand(x.shape[0]),
                encoder_hidden_states=cond["encoder_hidden_states"],
                global_hidden_states=cond["global_hidden_states"],
                encoder_attention_mask=cond["encoder_attention_mask"],
                return_dict=False,
            )[0]

        return classifier_free(run, latents, cond, guidance_scale)
