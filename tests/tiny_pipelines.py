"""Tiny, randomly initialised diffusers pipelines built from configs in code (beside the tests, as diffusers keeps
its dummy components; the benchmarks import them from here).

They have the real architectures (same classes, same call paths) at a few thousand parameters, so tests
and CPU benchmarks run the real code end to end without downloading anything. Their sound is noise.
"""

from __future__ import annotations

import torch
from diffusers import (
    AceStepPipeline,
    AceStepTransformer1DModel,
    AudioLDM2Pipeline,
    AudioLDM2ProjectionModel,
    AudioLDM2UNet2DConditionModel,
    AudioLDMPipeline,
    AutoencoderKL,
    AutoencoderKLFlux2,
    AutoencoderKLQwenImage,
    AutoencoderOobleck,
    AutoencoderSAME,
    CosineDPMSolverMultistepScheduler,
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
    FluxPipeline,
    FluxTransformer2DModel,
    LongCatAudioDiTPipeline,
    LongCatAudioDiTTransformer,
    LongCatAudioDiTVae,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
    SD3Transformer2DModel,
    StableAudio3DiTModel,
    StableAudio3Pipeline,
    StableAudioDiTModel,
    StableAudioPipeline,
    StableAudioProjectionModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from transformers import (
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    ClapTextModelWithProjection,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    GemmaTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
    RobertaTokenizer,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    T5Config,
    T5EncoderModel,
    T5GemmaConfig,
    T5GemmaEncoderModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)
from transformers.models.clap.configuration_clap import ClapAudioConfig

#: Sample rate, mel hop (samples) and VAE factor of the tiny audio models: one latent frame is 2 ms.
TINY_SAMPLE_RATE = 16000
TINY_HOP = 16
TINY_MEL_BINS = 16


def _byte_symbols() -> list[str]:
    """GPT-2's 256 printable byte symbols: a character-level vocabulary that tokenises any text."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + n)
            n += 1
    return [chr(c) for c in codes]


def tiny_roberta_tokenizer() -> RobertaTokenizer:
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {tok: i for i, tok in enumerate(specials + _byte_symbols())}
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer with no merges: every character is a token, bare or ending a word (`</w>`)."""
    symbols = _byte_symbols()
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [sym + "</w>" for sym in symbols]
    return CLIPTokenizer(vocab={tok: i for i, tok in enumerate(tokens)}, merges=[], model_max_length=77)


def _clip_config(hidden: int = 16, projection: int = 16) -> CLIPTextConfig:
    # eos must be the tokenizer's <|endoftext|> id (1): another value switches pooling to a legacy argmax.
    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=24,
        num_attention_heads=2,
        num_hidden_layers=1,
        vocab_size=520,
        projection_dim=projection,
        hidden_act="gelu",
    )


def tiny_image_vae(**config) -> AutoencoderKL:
    """A four-level (factor 8) VAE, like Stable Diffusion's, with a handful of channels."""
    return AutoencoderKL(
        **config,
        block_out_channels=[4, 4, 4, 4],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=2,
        layers_per_block=1,
    )


def tiny_sd_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """A Stable Diffusion 2-like pipeline (CLIP text, U-Net with cross-attention, factor-8 VAE), random weights."""
    torch.manual_seed(seed)
    unet = _tiny_unet((8, 16), sample_size=8, cross_attention_dim=16, attention_head_dim=4)
    pipe = StableDiffusionPipeline(
        vae=tiny_image_vae(),
        text_encoder=CLIPTextModel(_clip_config()),
        tokenizer=tiny_clip_tokenizer(),
        unet=unet,
        scheduler=tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return eval_mode(pipe)


def tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """An SDXL-like pipeline: two CLIP encoders, U-Net with added text and time-id embeddings, random weights."""
    torch.manual_seed(seed)
    unet = _tiny_unet(
        (8, 16),
        sample_size=8,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=16 + 6 * 4,  # pooled text + 6 time ids
        cross_attention_dim=32,  # both encoders' hidden states, concatenated
    )
    pipe = StableDiffusionXLPipeline(
        vae=tiny_image_vae(),
        text_encoder=CLIPTextModel(_clip_config()),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config()),
        tokenizer=tiny_clip_tokenizer(),
        tokenizer_2=tiny_clip_tokenizer(),
        unet=unet,
        scheduler=tiny_scheduler(),
    )
    return eval_mode(pipe)


def tiny_sd3_pipeline(seed: int = 0) -> StableDiffusion3Pipeline:
    """An SD 3-like pipeline: MMDiT transformer, two CLIP encoders and T5, flow-matching scheduler, random weights."""
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_projection_dim=16,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        out_channels=4,
        pos_embed_max_size=64,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_image_vae(shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=CLIPTextModelWithProjection(_clip_config()),
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config()),
        tokenizer_2=tiny_clip_tokenizer(),
        text_encoder_3=T5EncoderModel(T5Config(vocab_size=100, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=1)),
        tokenizer_3=tiny_t5_tokenizer(),
    )
    return eval_mode(pipe)


def tiny_flux_pipeline(seed: int = 0, distilled: bool = False) -> FluxPipeline:
    """A FLUX.1-like pipeline (dual-stream and single-stream blocks with rotary ids, CLIP pooled + T5 text, packed
    latents), random weights: dev with its guidance embedding, or schnell (`distilled`) without. Its native size is
    set to 64 px (the real models' 1024 px is the pipeline's default_sample_size 128)."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=16, guidance_embeds=not distilled,
                                         axes_dims_rope=(4, 4, 8))
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                  base_image_seq_len=256, max_image_seq_len=4096),
        vae=tiny_image_vae(shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=CLIPTextModel(_clip_config()),
        tokenizer=tiny_clip_tokenizer(),
        text_encoder_2=T5EncoderModel(T5Config(vocab_size=100, d_model=32, d_ff=37, d_kv=8, num_heads=2,
                                               num_layers=1)),
        tokenizer_2=tiny_t5_tokenizer(),
    )
    pipe.default_sample_size = 8
    return eval_mode(pipe)


#: Qwen's chat format, enough of it for the pipelines that wrap a prompt in a user turn.
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_qwen_tokenizer() -> Qwen2Tokenizer:
    """A Qwen2 tokenizer over GPT-2's byte symbols (no merges) with a chat template."""
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + _byte_symbols()
    tokenizer = Qwen2Tokenizer(vocab={tok: i for i, tok in enumerate(tokens)}, merges=[], model_max_length=512,
                               pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_z_image_pipeline(seed: int = 0, name: str = "tiny/Z-Image") -> ZImagePipeline:
    """A Z-Image-like pipeline (single-stream DiT with caption and noise refiners, Qwen3 text), random weights;
    `name` stands for the checkpoint's id (Turbo is recognised by it)."""
    torch.manual_seed(seed)
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=300, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                          max_position_embeddings=512))
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=32,
                                           n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=16,
                                           axes_dims=[4, 6, 6], axes_lens=[256, 64, 64])
    pipe = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, shift=3.0),
                          vae=tiny_image_vae(shift_factor=0.1159, scaling_factor=0.3611), text_encoder=text_encoder,
                          tokenizer=tiny_qwen_tokenizer(), transformer=transformer)
    pipe.register_to_config(_name_or_path=name)
    return eval_mode(pipe)


def tiny_qwen_image_pipeline(seed: int = 0) -> QwenImagePipeline:
    """A Qwen-Image-like pipeline (MMDiT with 3-axis rotary positions, Qwen2.5-VL text, causal 3-D VAE used on one
    frame), random weights, with the real scheduler's exponential time shift. Native size set to 64 px."""
    torch.manual_seed(seed)
    text = dict(vocab_size=300, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0,
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]})
    vision = dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16, patch_size=2,
                  spatial_merge_size=1, temporal_patch_size=1, window_size=4, fullatt_block_indexes=[0])
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=300, bos_token_id=0, eos_token_id=0))
    vae = AutoencoderKLQwenImage(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.0],
                                 latents_std=[1.5, 0.8, 1.2, 2.0])
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=1,
                                              attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                              axes_dims_rope=(4, 6, 6))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                                                base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02,
                                                time_shift_type="exponential")
    pipe = QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tiny_qwen_tokenizer(),
                             transformer=transformer)
    pipe.default_sample_size = 8
    return eval_mode(pipe)


def tiny_flux2_klein_pipeline(seed: int = 0, distilled: bool = False) -> Flux2KleinPipeline:
    """A FLUX.2 klein-like pipeline (Qwen3 text from layers 9, 18 and 27, dual- and single-stream blocks with 4-axis
    rotary ids, the batch-normalised patchified VAE latents), random weights; native size set to 64 px."""
    torch.manual_seed(seed)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(vocab_size=300, hidden_size=16, intermediate_size=24,
                                                num_hidden_layers=28, num_attention_heads=2, num_key_value_heads=1,
                                                head_dim=8, max_position_embeddings=512))
    transformer = Flux2Transformer2DModel(in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                          num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=16,
                                          axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False)
    vae = AutoencoderKLFlux2(block_out_channels=(4, 4, 4, 4), latent_channels=4, norm_num_groups=2,
                             layers_per_block=1)
    vae.bn.running_mean.normal_(0, 0.1)
    vae.bn.running_var.uniform_(0.5, 2.0)
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), vae=vae,
                              text_encoder=text_encoder, tokenizer=tiny_qwen_tokenizer(), transformer=transformer,
                              is_distilled=distilled)
    pipe.default_sample_size = 8
    return eval_mode(pipe)


def tiny_t5_tokenizer() -> T5Tokenizer:
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(chr(c), -2.0) for c in range(32, 127)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=77)


def tiny_scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _tiny_unet(channels: tuple[int, int], cls: type = UNet2DConditionModel, **config) -> torch.nn.Module:
    """A two-level U-Net, plain then cross-attention blocks, with a handful of channels."""
    return cls(
        block_out_channels=channels,
        layers_per_block=1,
        norm_num_groups=channels[0] // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **config,
    )


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )


def _tiny_vocoder() -> SpeechT5HifiGan:
    config = SpeechT5HifiGanConfig(
        model_in_dim=TINY_MEL_BINS,
        sampling_rate=TINY_SAMPLE_RATE,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
    )
    return SpeechT5HifiGan(config)


def _clap_text_config() -> ClapTextConfig:
    return ClapTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        hidden_size=16,
        intermediate_size=24,
        num_attention_heads=2,
        num_hidden_layers=1,
        vocab_size=300,
        projection_dim=16,
        max_position_embeddings=80,
    )


def tiny_audioldm_pipeline(seed: int = 0) -> AudioLDMPipeline:
    """An AudioLDM pipeline (CLAP text, U-Net with class embeddings, VAE, HiFi-GAN) with random weights."""
    torch.manual_seed(seed)
    unet = _tiny_unet(
        (16, 32),
        sample_size=16,
        cross_attention_dim=(16, 32),
        attention_head_dim=4,
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True,
    )
    vae = _tiny_vae()
    text_encoder = ClapTextModelWithProjection(_clap_text_config())
    vocoder = _tiny_vocoder()
    pipe = AudioLDMPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_roberta_tokenizer(),
        unet=unet,
        scheduler=tiny_scheduler(),
        vocoder=vocoder,
    )
    return eval_mode(pipe)


def tiny_audioldm2_pipeline(seed: int = 0) -> AudioLDM2Pipeline:
    """An AudioLDM2 pipeline (CLAP + T5 + GPT-2 conditioning, two-stream U-Net) with random weights."""
    torch.manual_seed(seed)
    unet = _tiny_unet(
        (16, 32),
        AudioLDM2UNet2DConditionModel,
        sample_size=16,
        cross_attention_dim=([None, 16, 32], [None, 16, 32]),
        attention_head_dim=4,
    )
    vae = _tiny_vae()
    audio_config = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        intermediate_size=24,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
        hidden_size=16,
        projection_dim=16,
        patch_size=2,
        patch_stride=2,
        patch_embed_input_channels=4,
    )
    clap_config = ClapConfig(
        text_config=_clap_text_config().to_dict(), audio_config=audio_config.to_dict(), projection_dim=16
    )
    text_encoder = ClapModel(clap_config)
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=100, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=1)
    )
    language_model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=16, n_head=2, n_layer=1, vocab_size=100, n_ctx=99, n_positions=99, bos_token_id=0, eos_token_id=0
        )
    )
    language_model.config.max_new_tokens = 4
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
    pipe = AudioLDM2Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        projection_model=projection_model,
        language_model=language_model,
        tokenizer=tiny_roberta_tokenizer(),
        tokenizer_2=tiny_t5_tokenizer(),
        feature_extractor=ClapFeatureExtractor(),
        unet=unet,
        scheduler=tiny_scheduler(),
        vocoder=_tiny_vocoder(),
    )
    return eval_mode(pipe)


def tiny_stable_audio_pipeline(seed: int = 0) -> StableAudioPipeline:
    """A Stable Audio Open-like pipeline (T5, duration conditioning, DiT with rotary positions, Oobleck VAE, cosine
    DPM-Solver), random weights. 16 kHz stereo, 8 samples per latent frame, a window of 32 frames (16 ms)."""
    torch.manual_seed(seed)
    transformer = StableAudioDiTModel(
        sample_size=32, in_channels=4, num_layers=1, attention_head_dim=4, num_attention_heads=2,
        num_key_value_attention_heads=2, out_channels=4, cross_attention_dim=8, time_proj_dim=8,
        global_states_input_dim=8, cross_attention_input_dim=4,
    )
    vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], channel_multiples=[1, 2],
                             decoder_channels=6, decoder_input_channels=4, audio_channels=2, sampling_rate=16000)
    text_encoder = T5EncoderModel(T5Config(vocab_size=100, d_model=16, d_ff=24, d_kv=8, num_heads=2, num_layers=1))
    projection = StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=4, min_value=0, max_value=512)
    pipe = StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection,
                               tokenizer=tiny_t5_tokenizer(), transformer=transformer,
                               scheduler=CosineDPMSolverMultistepScheduler())
    return eval_mode(pipe)


def tiny_gemma_tokenizer(max_length: int = 16) -> GemmaTokenizer:
    """A Gemma tokenizer over GPT-2's byte symbols (no merges): every character is a token."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab = {tok: i for i, tok in enumerate(specials + _byte_symbols())}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


#: Stable Audio 3's tiny window: 32 latent frames of 32 samples at 16 kHz.
TINY_SA3_WINDOW_S = 0.064


def tiny_stable_audio_3_pipeline(seed: int = 0, distilled: bool = True) -> StableAudio3Pipeline:
    """A Stable Audio 3-like pipeline (T5Gemma encoder, duration embedder, differential-attention DiT with memory
    tokens, SAME autoencoder), random weights: 16 kHz stereo, 32 samples per latent frame, a 32-frame window. The
    distilled one samples with the stochastic ping-pong scheduler, the base one deterministically."""
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    torch.manual_seed(seed)
    module = dict(vocab_size=300, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                  max_position_embeddings=64)
    text_encoder = T5GemmaEncoderModel(T5GemmaConfig(encoder=module, decoder=module, vocab_size=300,
                                                     is_encoder_decoder=False))
    vae = AutoencoderSAME(audio_channels=2, patch_size=16, encoder_channels=8, encoder_c_mults=(2,),
                          encoder_strides=(2,), encoder_transformer_depths=(1,), latent_dim=4, dim_heads=8, ff_mult=2,
                          sampling_rate=16000)
    transformer = StableAudio3DiTModel(io_channels=4, embed_dim=16, depth=1, num_heads=2, cond_token_dim=16,
                                       global_cond_dim=16, local_add_cond_dim=5, timestep_features_dim=8, ff_mult=2,
                                       num_memory_tokens=2)
    duration = StableAudio3DurationEmbedder(output_dim=16, fourier_dim=8, max_val=TINY_SA3_WINDOW_S)
    pipe = StableAudio3Pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tiny_gemma_tokenizer(),
                                duration_embedder=duration, transformer=transformer,
                                scheduler=FlowMatchEulerDiscreteScheduler(stochastic_sampling=distilled))
    return eval_mode(pipe)


#: LongCat-AudioDiT's tiny window: 32 latent frames of 8 samples at 16 kHz.
TINY_LONGCAT_WINDOW_S = 0.016


def tiny_longcat_audio_pipeline(seed: int = 0) -> LongCatAudioDiTPipeline:
    """A LongCat-AudioDiT-like pipeline (UMT5 text, rotary DiT with text ConvNeXt and global AdaLN, snake-activation
    waveform VAE), random weights: 16 kHz mono, 8 samples per latent frame; its longest clip (the real one's 30 s)
    set to a 32-frame window."""
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=100, d_model=16, d_ff=24, d_kv=8, num_heads=2, num_layers=1))
    vae = LongCatAudioDiTVae(in_channels=1, channels=4, c_mults=[1, 2], strides=[2, 4], latent_dim=4,
                             encoder_latent_dim=8, downsampling_ratio=8, sample_rate=16000)
    transformer = LongCatAudioDiTTransformer(dit_dim=16, dit_depth=1, dit_heads=2, dit_text_dim=16, latent_dim=4,
                                             ff_mult=2.0)
    pipe = LongCatAudioDiTPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tiny_t5_tokenizer(),
                                   transformer=transformer)
    pipe.max_wav_duration = TINY_LONGCAT_WINDOW_S
    return eval_mode(pipe)


def tiny_ace_step_pipeline(seed: int = 0, turbo: bool = True) -> AceStepPipeline:
    """An ACE-Step 1.5-like pipeline (Qwen3 text, lyric and timbre encoders packed by the condition encoder, a
    patchified DiT with sliding-window layers, Oobleck VAE), random weights: 16 kHz stereo, 320 samples per latent
    frame (50 a second)."""
    from diffusers.pipelines.ace_step.modeling_ace_step import AceStepConditionEncoder

    torch.manual_seed(seed)
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=300, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                          max_position_embeddings=4096))
    common = dict(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                  sliding_window=8)
    condition = AceStepConditionEncoder(text_hidden_dim=16, timbre_hidden_dim=4, num_lyric_encoder_hidden_layers=1,
                                        num_timbre_encoder_hidden_layers=1, **common)
    condition.silence_latent.normal_(0, 0.1)
    transformer = AceStepTransformer1DModel(num_hidden_layers=1, in_channels=12, audio_acoustic_hidden_dim=4,
                                            patch_size=2, is_turbo=turbo, **common)
    vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[4, 8, 10], channel_multiples=[1, 1, 1],
                             decoder_channels=6, decoder_input_channels=4, audio_channels=2, sampling_rate=16000)
    pipe = AceStepPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tiny_qwen_tokenizer(),
                           transformer=transformer, condition_encoder=condition,
                           scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0))
    return eval_mode(pipe)


def eval_mode(pipe):
    """Modules built from configs start in train mode (dropout): put every component in eval mode."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
