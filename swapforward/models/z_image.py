"""Adapter for diffusers' ZImagePipeline (Z-Image and Z-Image-Turbo): a single-stream DiT over 2x2 patches with
Qwen3 text features.

The canvas is (batch, 16, height / 8, width / 8) in float32, as the pipeline keeps its latents whatever the model's
dtype; each view goes to the transformer as one item of its list input with the caption tokens of its prompt (the
padding the tokenizer adds is dropped, as the pipeline drops it). Guidance is the pipeline's own form, pos + s (pos -
neg), on whenever s > 0; the model predicts the negated velocity. Turbo samples 8 steps without guidance.
"""

from __future__ import annotations

import torch

from .stable_diffusion import StableDiffusion3Adapter

#: The pipeline's default size (height and width) in pixels.
NATIVE_SIZE = 1024


class ZImageAdapter(StableDiffusion3Adapter):
    """`ZImagePipeline`. MAD is not offered: the transformer applies rotary positions inside its attention."""

    supports_merged_attention = False

    @property
    def turbo(self) -> bool:
        """The distilled checkpoint (Z-Image-Turbo), recognised by its name as the configs do not tell them apart."""
        return "turbo" in str(getattr(self.pipe, "name_or_path", "") or "").lower()

    @property
    def default_steps(self) -> int:
        """Turbo: its 8 steps; the base model: the pipeline's 50."""
        return 8 if self.turbo else 50

    @property
    def default_guidance(self) -> float:
        """Turbo: none (0); the base model: the pipeline's 5."""
        return 0.0 if self.turbo else 5.0

    def uses_guidance(self, guidance_scale: float) -> bool:
        return guidance_scale > 0

    @property
    def dtype(self) -> torch.dtype:
        """The latents' dtype: float32, as the pipeline steps them (the transformer gets its own dtype)."""
        return torch.float32

    @property
    def native_size(self) -> int:
        return NATIVE_SIZE

    @property
    def latent_channels(self) -> int:
        return int(self.pipe.transformer.in_channels)

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * 2

    @property
    def patch_size(self) -> int:
        return 2

    def set_timesteps(self, scheduler, steps, view_shape):
        from diffusers.pipelines.z_image.pipeline_z_image import calculate_shift, get_default_z_image_sigmas

        config = scheduler.config
        mu = calculate_shift((view_shape[-2] // 2) * (view_shape[-1] // 2), config.get("base_image_seq_len", 256),
                             config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                             config.get("max_shift", 1.15))
        scheduler.set_timesteps(sigmas=get_default_z_image_sigmas(steps), device=self.device, mu=mu)
        scheduler.set_begin_index(0)

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        positive, negative = self.pipe.encode_prompt(prompt, self.device, guidance, negative_prompt)
        captions = [*negative, *positive]  # [negative, positive] rows, each its own length
        longest = max(c.shape[0] for c in captions)
        padded = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, longest - c.shape[0])) for c in captions])
        return {"encoder_hidden_states": padded,
                "text_length": torch.tensor([c.shape[0] for c in captions], device=self.device)}

    def denoise(self, latents, t, cond, guidance_scale):
        transformer, views = self.pipe.transformer, latents.shape[0]
        lengths = cond["text_length"].tolist()
        captions = [row[:n] for row, n in zip(cond["encoder_hidden_states"], lengths, strict=True)]
        timestep = (1000 - t.expand(views)) / 1000
        x = latents.to(transformer.dtype)
        guided = len(captions) == 2 * views
        if guided:  # the pipeline's order: every positive, then every negative
            captions = captions[views:] + captions[:views]
            x, timestep = x.repeat(2, 1, 1, 1), timestep.repeat(2)
        out = transformer(list(x.unsqueeze(2).unbind(0)), timestep, captions, return_dict=False)[0]
        if guided:
            pred = torch.stack([pos.float() + guidance_scale * (pos.float() - neg.float())
                                for pos, neg in zip(out[:views], out[views:], strict=True)])
        else:
            pred = torch.stack([o.float() for o in out])
        return -pred.squeeze(2)

    def decode_latents(self, latents):
        vae = self.pipe.vae
        latents = latents.to(vae.dtype)
        return vae.decode((latents / vae.config.scaling_factor) + vae.config.shift_factor, return_dict=False)[0]
