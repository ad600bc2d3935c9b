"""Adapter for diffusers' QwenImagePipeline (Qwen-Image): an MMDiT over packed 2x2 latents with Qwen2.5-VL text
features and a video VAE used on single frames.

As for FLUX, the canvas is unpacked (batch, 16, height / 8, width / 8) and each view is packed for the transformer
with the image shape of one view. Guidance is the pipeline's "true CFG": a separate negative pass (the model card's
negative prompt " " when none is given), neg + s (pos - neg), rescaled per token to the positive prediction's norm.
Captions are passed at their own length, as the pipeline passes one prompt; rows of different lengths are run in
separate calls, so that no padding enters the attention.
"""

from __future__ import annotations

import torch

from .flux import FluxAdapter, pack, unpack

#: The negative prompt of Qwen-Image's model card, used for guidance when none is given.
DEFAULT_NEGATIVE = " "


class QwenImageAdapter(FluxAdapter):
    """`QwenImagePipeline`. MAD is not offered: the transformer applies rotary positions inside its attention."""

    default_steps = 50
    default_guidance = 4.0

    def encode_prompt(self, prompt, negative_prompt, guidance, view_shape):
        pipe = self.pipe
        captions = [pipe.encode_prompt(prompt, self.device, 1)[0][0]]
        if guidance:
            captions.insert(0, pipe.encode_prompt(negative_prompt or DEFAULT_NEGATIVE, self.device, 1)[0][0])
        longest = max(c.shape[0] for c in captions)
        padded = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, longest - c.shape[0])) for c in captions])
        return {"encoder_hidden_states": padded,
                "text_length": torch.tensor([c.shape[0] for c in captions], device=self.device)}

    def denoise(self, latents, t, cond, guidance_scale):
        views, (h, w) = latents.shape[0], latents.shape[-2:]
        x = pack(latents)
        timestep = t.expand(views).to(x.dtype) / 1000
        text, lengths = cond["encoder_hidden_states"], cond["text_length"]
        positive = self._run(x, timestep, text[-views:], lengths[-views:], (h, w))
        if text.shape[0] == views:
            return unpack(positive, h, w)
        negative = self._run(x, timestep, text[:views], lengths[:views], (h, w))
        combined = negative + guidance_scale * (positive - negative)
        scale = torch.norm(positive, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True)
        return unpack(combined * scale, h, w)

    def _run(self, x, timestep, text, lengths, size):
        """The transformer on views `x` with one caption each, views of equal caption length in one call."""
        out = torch.empty_like(x)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            out[rows] = self.pipe.transformer(
                hidden_states=x[rows],
                timestep=timestep[rows],
                guidance=None,
                encoder_hidden_states_mask=None,
                encoder_hidden_states=text[rows, :length],
                img_shapes=[[(1, size[0] // 2, size[1] // 2)]] * len(rows),
                return_dict=False,
            )[0]
        return out

    def _statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's latent mean and inverse standard deviation, shaped for (batch, channels, 1, h, w) latents."""
        config = self.pipe.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(like.device, like.dtype)
        inverse_std = 1.0 / torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(like.device, like.dtype)
        return mean, inverse_std

    def decode_latents(self, latents):
        vae = self.pipe.vae
        latents = latents[:, :, None].to(vae.dtype)
        mean, inverse_std = self._statistics(latents)
        return vae.decode(latents / inverse_std + mean, return_dict=False)[0][:, :, 0]

    def encode_pixels(self, pixels):
        vae = self.pipe.vae
        latents = vae.encode(pixels[:, :, None].to(vae.dtype)).latent_dist.mode()
        mean, inverse_std = self._statistics(latents)
        return ((latents - mean) * inverse_std)[:, :, 0].to(self.dtype)
