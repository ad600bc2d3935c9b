"""Adapters for diffusers' Stable Diffusion 1.x/2.x (U-Net), SDXL (U-Net + time ids) and SD 3/3.5 (MMDiT).

Each one calls its pipeline's own prompt encoding and reproduces its denoising call and VAE decoding exactly, so that
a panorama of one view is the base pipeline's image. The latent is (batch, channels, height / 8, width / 8); width
(axis -1) is the long axis.
"""

from __future__ import annotations

import torch

from .base import ImageAdapter, classifier_free


class StableDiffusionAdapter(ImageAdapter):
    """`StableDiffusionPipeline`: CLIP text embeddings in the U-Net's cross-attention."""

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        positive, negative = self.pipe.encode_prompt(prompt, self.device, 1, guidance, negative_prompt)
        return {"encoder_hidden_states": torch.cat([negative, positive]) if guidance else positive}

    def denoise(self, latents, t, cond, guidance_scale):
        def run(x):
            return self.pipe.unet(x, t, encoder_hidden_states=cond["encoder_hidden_states"]).sample

        return classifier_free(run, latents, cond, guidance_scale)

    def decode_latents(self, latents):
        return self.pipe.vae.decode(latents / self.pipe.vae.config.scaling_factor, return_dict=False)[0]

    def encode_pixels(self, pixels):
        vae = self.pipe.vae
        return (vae.encode(pixels.to(vae.dtype)).latent_dist.mode() * vae.config.scaling_factor).to(self.dtype)


class StableDiffusionXLAdapter(ImageAdapter):
    """`StableDiffusionXLPipeline`: two CLIP encoders, pooled text and size/crop time ids as added conditions.

    Every view is conditioned as an uncropped image of the view's own size (original = target = view size, crop 0, 0).
    """

    def set_timesteps(self, scheduler, steps, view_shape):
        scheduler.set_timesteps(steps, device=self.device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        pipe = self.pipe
        positive, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompt,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=guidance,
            negative_prompt=negative_prompt,
        )
        size = (view_shape[-2] * self.vae_factor, view_shape[-1] * self.vae_factor)
        projection_dim = (
            int(pooled.shape[-1]) if pipe.text_encoder_2 is None else pipe.text_encoder_2.config.projection_dim
        )
        time_ids = pipe._get_add_time_ids(
            size, (0, 0), size, dtype=positive.dtype, text_encoder_projection_dim=projection_dim
        )
        time_ids = time_ids.to(self.device)
        if not guidance:
            return {"encoder_hidden_states": positive, "text_embeds": pooled, "time_ids": time_ids}
        return {
            "encoder_hidden_states": torch.cat([negative, positive]),
            "text_embeds": torch.cat([negative_pooled, pooled]),
            "time_ids": torch.cat([time_ids, time_ids]),
        }

    def denoise(self, latents, t, cond, guidance_scale):
        def run(x):
            added = {"text_embeds": cond["text_embeds"], "time_ids": cond["time_ids"]}
            return self.pipe.unet(x, t, encoder_hidden_states=cond["encoder_hidden_states"],
                                  added_cond_kwargs=added).sample

        return classifier_free(run, latents, cond, guidance_scale)

    def decode_latents(self, latents):
        vae = self.pipe.vae
        if vae.dtype == torch.float16 and vae.config.force_upcast:  # SDXL's VAE overflows in fp16
            vae.to(torch.float32)
        latents = latents.to(vae.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        return vae.decode(latents, return_dict=False)[0]

    def encode_pixels(self, pixels):
        vae = self.pipe.vae
        if vae.dtype == torch.float16 and vae.config.force_upcast:
            vae.to(torch.float32)
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
            return ((latents - mean) * vae.config.scaling_factor / std).to(self.dtype)
        return (latents * vae.config.scaling_factor).to(self.dtype)


class StableDiffusion3Adapter(ImageAdapter):
    """`StableDiffusion3Pipeline` (SD 3 / 3.5): MMDiT over patches, CLIP x2 + T5 text, flow-matching scheduler."""

    denoiser_attribute = "transformer"

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * int(self.pipe.transformer.config.patch_size)

    def set_timesteps(self, scheduler, steps, view_shape):
        from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
            calculate_shift,
        )

        kwargs = {}
        if scheduler.config.get("use_dynamic_shifting", None):  # shift for the token count of one view
            patch = self.pipe.transformer.config.patch_size
            kwargs["mu"] = calculate_shift(
                (view_shape[-2] // patch) * (view_shape[-1] // patch),
                scheduler.config.get("base_image_seq_len", 256),
                scheduler.config.get("max_image_seq_len", 4096),
                scheduler.config.get("base_shift", 0.5),
                scheduler.config.get("max_shift", 1.16),
            )
        scheduler.set_timesteps(steps, device=self.device, **kwargs)

    def step_kwargs(self, generator, eta):
        return {}

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        positive, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompt,
            prompt_2=None,
            prompt_3=None,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=guidance,
            device=self.device,
            num_images_per_prompt=1,
        )
        if not guidance:
            return {"encoder_hidden_states": positive, "pooled_projections": pooled}
        return {
            "encoder_hidden_states": torch.cat([negative, positive]),
            "pooled_projections": torch.cat([negative_pooled, pooled]),
        }

    def denoise(self, latents, t, cond, guidance_scale):
        def run(x):
            return self.pipe.transformer(
                hidden_states=x,
                timestep=t.expand(x.shape[0]),
                encoder_hidden_states=cond["encoder_hidden_states"],
                pooled_projections=cond["pooled_projections"],
                return_dict=False,
            )[0]

        return classifier_free(run, latents, cond, guidance_scale)

    def decode_latents(self, latents):
        vae = self.pipe.vae
        return vae.decode((latents / vae.config.scaling_factor) + vae.config.shift_factor, return_dict=False)[0]

    def encode_pixels(self, pixels):
        vae = self.pipe.vae
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
        return ((latents - vae.config.shift_factor) * vae.config.scaling_factor).to(self.dtype)
