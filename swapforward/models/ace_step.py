"""Adapter for diffusers' AceStepPipeline (ACE-Step 1.5), text to music: a flow-matching DiT over (frames, 64)
latents of an Oobleck VAE, conditioned on a caption (with the clip's duration in its metadata), lyrics and a timbre
reference packed by the pipeline's condition encoder.

Joint diffusion covers the `text2music` task without lyrics: every view is conditioned as an instrumental clip of
its own length (the duration in the caption's metadata, the learned silence as timbre reference and as source
latents, every frame to be generated). Lyrics are sung in order, so a song's words cannot be split over views that
each make a whole clip; the other tasks (cover, repaint, extract, lego, complete) have their own source audio and are
not joint-diffusion tasks (swapforward's `--init-audio` keeps a clip instead). The turbo checkpoint samples 8 steps
with guidance distilled in; the base checkpoint's guidance (APG) carries a momentum from step to step per clip, which
views of one canvas cannot share, so it runs without guidance here. The output is peak-normalised to -1 dBFS, as the
pipeline's.
"""

from __future__ import annotations

import math

import torch

from ..errors import SwapForwardError
from .base import WaveformAdapter

#: The pipeline's default clip length, the default view.
DEFAULT_WINDOW_SECONDS = 60.0
#: The pipeline's timestep shift.
SHIFT = 3.0
#: The pipeline's output peak (-1 dBFS).
TARGET_PEAK = 10.0 ** (-1.0 / 20.0)


class AceStepAdapter(WaveformAdapter):
    """`AceStepPipeline`, text2music without lyrics. MAD is not offered (rotary positions inside the attention)."""

    long_axis = -2
    reference_axis = -2
    supports_merged_attention = False
    trained_window_seconds = DEFAULT_WINDOW_SECONDS
    #: The pipeline's 8 steps; no guidance (distilled into turbo, APG not shareable for base).
    default_steps = 8
    default_guidance = 1.0

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.sample_rate)

    @property
    def frame_samples(self) -> int:
        return int(math.prod(self.pipe.vae.config.downsampling_ratios))

    @property
    def channels(self) -> int:
        return int(self.pipe.vae.config.audio_channels)

    @property
    def acoustic_dim(self) -> int:
        return int(self.pipe.transformer.config.audio_acoustic_hidden_dim)

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        return (1, frames, self.acoustic_dim)

    def uses_guidance(self, guidance_scale: float) -> bool:
        if guidance_scale > 1.0 and not self.pipe.is_turbo:
            raise SwapForwardError(
                f"guidance_scale {guidance_scale:g} is not available for ACE-Step: its guidance (APG) keeps a momentum "
                f"per clip that the views of one output cannot share; use guidance_scale 1.")
        return False

    def set_timesteps(self, scheduler, steps, view_shape):
        sigmas = self.pipe._get_timestep_schedule(num_inference_steps=steps, shift=SHIFT, device=self.device,
                                                  dtype=torch.float32)
        scheduler.set_timesteps(sigmas=sigmas.tolist(), device=self.device)

    def step_kwargs(self, generator, eta):
        return {}

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        pipe, device, dtype = self.pipe, self.device, self.dtype
        frames = view_shape[-2]
        text, text_mask, lyrics, lyrics_mask = pipe.encode_prompt(prompt=prompt, lyrics="", device=device,
                                                                  audio_duration=frames / pipe.latents_per_second)
        timbre_frames = math.ceil(30 * pipe.latents_per_second)
        timbre = pipe.condition_encoder.silence_latent[:, :timbre_frames, :].to(device=device, dtype=dtype)
        hidden, _ = pipe.condition_encoder(text_hidden_states=text, text_attention_mask=text_mask,
                                           lyric_hidden_states=lyrics, lyric_attention_mask=lyrics_mask,
                                           refer_audio_acoustic_hidden_states_packed=timbre.contiguous(),
                                           refer_audio_order_mask=torch.arange(1, device=device, dtype=torch.long))
        return {"encoder_hidden_states": hidden}

    def context(self, frames: int, views: int) -> torch.Tensor:
        """The pipeline's context latents for a clip of `frames` to generate whole: the learned silence as source,
        then a chunk mask of ones."""
        source, _ = self.pipe.prepare_src_latents(device=self.device, dtype=self.dtype, batch_size=views,
                                                  latent_length=frames)
        mask = torch.ones(views, frames, self.acoustic_dim, device=self.device, dtype=self.dtype)
        return torch.cat([source, mask], dim=-1)

    def denoise(self, latents, t, cond, guidance_scale):
        views, frames = latents.shape[:2]
        timestep = float(t) * torch.ones((views,), device=latents.device, dtype=self.dtype)
        return self.pipe.transformer(hidden_states=latents, timestep=timestep, timestep_r=timestep,
                                     encoder_hidden_states=cond["encoder_hidden_states"],
                                     context_latents=self.context(frames, views), return_dict=False)[0]

    @torch.no_grad()
    def encode_audio(self, audio):
        wave, frames = self.padded_wave(audio)
        vae = self.pipe.vae
        latents = vae.encode(wave.to(self.device, vae.dtype)).latent_dist.mode()[..., :frames]
        return latents.transpose(1, 2).to(self.dtype)

    def vae_waves(self, latents):
        return self.pipe.vae.decode(latents.transpose(1, 2)).sample

    def finish(self, wave):
        """The pipeline's two normalisations: divided by its peak when that exceeds 1, then scaled to -1 dBFS."""
        wave = wave.float()
        peak = wave.abs().amax()
        if peak > 1.0:
            wave = wave / peak.clamp(min=1.0)
        return wave * (TARGET_PEAK / wave.abs().amax().clamp(min=1e-6))
