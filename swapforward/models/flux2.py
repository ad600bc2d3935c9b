"""Adapter for diffusers' Flux2KleinPipeline (FLUX.2 klein): a rectified-flow MMDiT over 2x2-patchified latents with
Qwen3 text features and 4-axis rotary ids.

The pipeline draws its noise already patchified, (batch, 4 x 32, height / 16, width / 16), and normalises it with
the VAE's batch-norm statistics; that grid is the canvas here (one cell per token, width the long axis), each view
flattened into the transformer's token sequence with the ids of one view. The distilled checkpoints sample 4 steps
without guidance; the base ones 50 with classifier-free guidance against the empty prompt, as the pipeline does.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ImageAdapter


class Flux2KleinAdapter(ImageAdapter):
    """`Flux2KleinPipeline`. MAD is not offered: the transformer applies rotary positions inside its attention."""

    supports_merged_attention = False

    denoiser_attribute = "transformer"

    @property
    def distilled(self) -> bool:
        return bool(self.pipe.config.is_distilled)

    @property
    def default_steps(self) -> int:
        """Distilled: 4 steps; base: the pipeline's 50."""
        return 4 if self.distilled else 50

    @property
    def default_guidance(self) -> float:
        """Distilled: none; base: the pipeline's 4."""
        return 1.0 if self.distilled else 4.0

    def uses_guidance(self, guidance_scale: float) -> bool:
        return guidance_scale > 1 and not self.distilled

    @property
    def vae_factor(self) -> int:
        """Pixels per canvas cell: the VAE's factor times the 2x2 patch."""
        return int(self.pipe.vae_scale_factor) * 2

    @property
    def native_size(self) -> int:
        return int(self.pipe.default_sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.pipe.transformer.config.in_channels)

    def set_timesteps(self, scheduler, steps, view_shape):
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        config = scheduler.config
        sigmas = None if config.get("use_flow_sigmas", False) else np.linspace(1.0, 1 / steps, steps)
        mu = compute_empirical_mu(image_seq_len=view_shape[-2] * view_shape[-1], num_steps=steps)
        if sigmas is None:
            scheduler.set_timesteps(steps, device=self.device, mu=mu)
        else:
            scheduler.set_timesteps(sigmas=sigmas, device=self.device, mu=mu)
        scheduler.set_begin_index(0)

    def step_kwargs(self, generator, eta):
        return {}

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        positive, _ = self.pipe.encode_prompt(prompt=prompt, device=self.device)
        if not guidance:
            return {"encoder_hidden_states": positive}
        negative, _ = self.pipe.encode_prompt(prompt=negative_prompt or "", device=self.device)
        return {"encoder_hidden_states": torch.cat([negative, positive])}

    def denoise(self, latents, t, cond, guidance_scale):
        views, channels, h, w = latents.shape
        tokens = latents.reshape(views, channels, h * w).permute(0, 2, 1)
        timestep = t.expand(views).to(latents.dtype) / 1000
        ids = self.pipe._prepare_latent_ids(latents).to(latents.device)
        text = cond["encoder_hidden_states"]

        def run(caption):
            return self.pipe.transformer(hidden_states=tokens.to(self.pipe.transformer.dtype), timestep=timestep,
                                         guidance=None, encoder_hidden_states=caption,
                                         txt_ids=self.pipe._prepare_text_ids(caption).to(latents.device), img_ids=ids,
                                         return_dict=False)[0]

        pred = run(text[-views:])
        if text.shape[0] != views:
            negative = run(text[:views])
            pred = negative + guidance_scale * (pred - negative)
        return pred.permute(0, 2, 1).reshape(views, channels, h, w)

    def _statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vae = self.pipe.vae
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(like.device, like.dtype)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(like.device, like.dtype)
        return mean, std

    def decode_latents(self, latents):
        mean, std = self._statistics(latents)
        latents = self.pipe._unpatchify_latents(latents * std + mean)
        return self.pipe.vae.decode(latents.to(self.pipe.vae.dtype), return_dict=False)[0]

    def encode_pixels(self, pixels):
        vae = self.pipe.vae
        latents = self.pipe._patchify_latents(vae.encode(pixels.to(vae.dtype)).latent_dist.mode())
        mean, std = self._statistics(latents)
        return ((latents - mean) / std).to(self.dtype)
