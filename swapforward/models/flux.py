"""Adapter for diffusers' FluxPipeline (FLUX.1 dev and schnell): a rectified-flow MMDiT over packed 2x2 latents.

The canvas is kept unpacked, (batch, 16, height / 8, width / 8), so views are laid out along the width as for every
image model; each view is packed into the pipeline's (batch, tokens, 64) sequence for the transformer, with the
rotary image ids of one view, and unpacked again (a permutation: values are unchanged). dev embeds its guidance
scale in the model (no negative branch); schnell has no guidance and samples 4 steps.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .stable_diffusion import StableDiffusion3Adapter

logger = logging.getLogger("swapforward")


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): FLUX's 2x2 patches as tokens."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack` for latents of h x w cells."""
    b, _, channels = tokens.shape
    return tokens.view(b, h // 2, w // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, channels // 4, h, w)


class FluxAdapter(StableDiffusion3Adapter):
    """`FluxPipeline`: CLIP pooled + T5 text, guidance embedding (dev), dynamic timestep shift for one view's tokens.

    MAD is not offered: the transformer applies rotary positions inside its attention.
    """

    supports_merged_attention = False

    @property
    def guidance_embedded(self) -> bool:
        return bool(self.pipe.transformer.config.guidance_embeds)

    @property
    def default_steps(self) -> int:
        """dev: the pipeline's 28; schnell (no guidance embedding): its 4 distilled steps."""
        return 28 if self.guidance_embedded else 4

    @property
    def default_guidance(self) -> float:
        """dev: the pipeline's 3.5 (embedded, not classifier-free); schnell: none."""
        return 3.5 if self.guidance_embedded else 0.0

    @property
    def native_size(self) -> int:
        return int(self.pipe.default_sample_size) * self.vae_factor

    @property
    def latent_channels(self) -> int:
        return int(self.pipe.transformer.config.in_channels) // 4

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * 2

    @property
    def patch_size(self) -> int:
        return 2

    def set_timesteps(self, scheduler, steps, view_shape):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        config = scheduler.config
        sigmas = None if config.get("use_flow_sigmas", False) else np.linspace(1.0, 1 / steps, steps)
        mu = calculate_shift((view_shape[-2] // 2) * (view_shape[-1] // 2), config.get("base_image_seq_len", 256),
                             config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                             config.get("max_shift", 1.15))
        if sigmas is None:
            scheduler.set_timesteps(steps, device=self.device, mu=mu)
        else:
            scheduler.set_timesteps(sigmas=sigmas, device=self.device, mu=mu)
        scheduler.set_begin_index(0)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        if negative_prompt:
            logger.warning("FLUX.1 takes no negative prompt (its guidance is distilled into the model); "
                           "the negative prompt is ignored.")
        embeds, pooled, _ = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, device=self.device,
                                                    num_images_per_prompt=1)
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    def denoise(self, latents, t, cond, guidance_scale):
        pipe, (b, _, h, w) = self.pipe, latents.shape
        text = cond["encoder_hidden_states"]
        text_dtype = pipe.text_encoder.dtype if pipe.text_encoder is not None else pipe.transformer.dtype
        text_ids = torch.zeros(text.shape[1], 3).to(device=latents.device, dtype=text_dtype)
        image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, latents.device, text.dtype)
        guidance = None
        if self.guidance_embedded:
            guidance = torch.full([1], guidance_scale, device=latents.device, dtype=torch.float32).expand(b)
        out = pipe.transformer(
            hidden_states=pack(latents),
            timestep=t.expand(b).to(latents.dtype) / 1000,
            guidance=guidance,
            pooled_projections=cond["pooled_projections"],
            encoder_hidden_states=text,
            txt_ids=text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        return unpack(out, h, w)
