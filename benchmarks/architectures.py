"""Full-size Stable Diffusion 2 (base) and AudioLDM-S pipelines with random weights, built from configs in code.

Timings depend on the architecture, not on the weights, so benchmarks need no download. The denoiser, VAE and
vocoder are the released models' architectures; the text encoders keep the released hidden sizes but only two
layers (the prompt is encoded once per run, so this does not change what is measured).
"""

from __future__ import annotations

import os
import sys

import torch
from diffusers import (
    AudioLDMPipeline,
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import (
    ClapTextConfig,
    ClapTextModelWithProjection,
    CLIPTextConfig,
    CLIPTextModel,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests"))
from tiny_pipelines import eval_mode, tiny_clip_tokenizer, tiny_roberta_tokenizer  # noqa: E402


def _ddim() -> DDIMScheduler:
    with torch.device("cpu"):  # as diffusers builds it, whatever device the modules are built on
        return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                             set_alpha_to_one=False, steps_offset=1)


def sd2_base_pipeline(dtype: torch.dtype = torch.float16, device: str | torch.device = "cpu") -> StableDiffusionPipeline:  # noqa: E501
    """stabilityai/stable-diffusion-2-base's U-Net (866 M parameters) and VAE, random weights, built on `device`."""
    with torch.device(device):
        return _sd2_base(dtype)


def _sd2_base(dtype: torch.dtype) -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512,
    )
    text = CLIPTextModel(CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                        num_hidden_layers=2, vocab_size=520, eos_token_id=1, bos_token_id=0,
                                        pad_token_id=1, projection_dim=1024))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tiny_clip_tokenizer(), unet=unet,
                                   scheduler=_ddim(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return eval_mode(pipe).to(dtype=dtype)


def audioldm_s_pipeline(dtype: torch.dtype = torch.float16, device: str | torch.device = "cpu") -> AudioLDMPipeline:
    """cvssp/audioldm-s-full-v2's U-Net (185 M parameters), VAE and HiFi-GAN vocoder, random weights, built on
    `device` (initialising on a GPU takes seconds instead of a minute of CPU time)."""
    with torch.device(device):
        return _audioldm_s(dtype)


def _audioldm_s(dtype: torch.dtype) -> AudioLDMPipeline:
    unet = UNet2DConditionModel(
        sample_size=128,
        in_channels=8,
        out_channels=8,
        block_out_channels=(128, 256, 384, 640),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
        cross_attention_dim=(128, 256, 384, 640),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=512,
        class_embeddings_concat=True,
    )
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        block_out_channels=(128, 256, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        sample_size=512,
    )
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False))
    text = ClapTextModelWithProjection(ClapTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                                      num_hidden_layers=2, vocab_size=300, projection_dim=512,
                                                      bos_token_id=0, eos_token_id=2, pad_token_id=1))
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text, tokenizer=tiny_roberta_tokenizer(), unet=unet,
                            scheduler=_ddim(), vocoder=vocoder)
    return eval_mode(pipe).to(dtype=dtype)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
