"""LongAudioPipeline end to end on tiny AudioLDM / AudioLDM2 pipelines, against plainly written references."""

import copy

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.core import METHODS

SWAP_AND_AVERAGE = ["safa", "safa-selfloop", "md", "md-tri"]  # MAD and SyncDiffusion: tests/test_baselines.py
WINDOW_S = 0.064  # 32 latent frames of 2 ms in the tiny models
PROMPT = "rain on a tin roof"


def generator(seed=0):
    return torch.Generator("cpu").manual_seed(seed)


@pytest.mark.parametrize("method", list(METHODS))
def test_one_window_reproduces_the_base_pipeline_exactly(audio_pipe, method):
    long = LongAudioPipeline.from_pipe(audio_pipe)
    out = long(PROMPT, audio_length_in_s=WINDOW_S, window_seconds=WINDOW_S, method=method, num_inference_steps=4,
               generator=generator(), progress_bar=False)
    base = audio_pipe(PROMPT, audio_length_in_s=WINDOW_S, num_inference_steps=4, guidance_scale=3.5,
                      generator=generator()).audios
    assert out.audio.shape == base.shape
    assert np.array_equal(out.audio, base)


# --- plain references --------------------------------------------------------------------------------------------


def guided_eps(pipe, x, t, embeds, scale=3.5):
    """One AudioLDM U-Net evaluation of one view with classifier-free guidance, written out as the pipeline does."""
    out = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=None, class_labels=embeds).sample
    uncond, text = out.chunk(2)
    return uncond + scale * (text - uncond)


def plain_multidiffusion(pipe, frames, window, starts, steps, seed):
    """MultiDiffusion as its paper writes it: every view has its own scheduler; overlaps are averaged."""
    embeds = pipe._encode_prompt(PROMPT, "cpu", 1, True, None)
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps)
    x = randn_tensor((1, 4, frames, 8), generator=generator(seed)) * scheduler.init_noise_sigma
    schedulers = [copy.deepcopy(scheduler) for _ in starts]
    for t in scheduler.timesteps:
        value, count = torch.zeros_like(x), torch.zeros_like(x)
        for s, sched in zip(starts, schedulers, strict=False):
            view = x[:, :, s : s + window]
            eps = guided_eps(pipe, sched.scale_model_input(view, t), t, embeds)
            value[:, :, s : s + window] += sched.step(eps, t, view).prev_sample
            count[:, :, s : s + window] += 1
        x = value / count
    return x


@pytest.mark.parametrize("scheduler_cls", [None, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_md_equals_plain_per_view_multidiffusion(audioldm, scheduler_cls):
    pipe = copy.copy(audioldm)
    if scheduler_cls is not None:
        pipe.scheduler = scheduler_cls.from_config(audioldm.scheduler.config)
    long = LongAudioPipeline.from_pipe(pipe)
    out = long(PROMPT, audio_length_in_s=0.15, window_seconds=WINDOW_S, method="md", overlap=0.5,
               num_inference_steps=5, seed=3, view_batch_size=1, progress_bar=False)
    expected = plain_multidiffusion(pipe, frames=75, window=32, starts=(0, 14, 29, 43), steps=5, seed=3)
    assert out.layout.starts == (0, 14, 29, 43), "the fewest views with overlap >= 16 frames, evenly spread"
    assert torch.equal(out.latents, expected)


def plain_safa(pipe, frames, window, stride, steps, seed, r_guide, loop, phase="local"):
    """Algorithm 1 written out frame by frame (w = 1, overlaps <= half a window), independently of the core; the
    reference swap takes a view's odd frames (phase local) or its odd middle frames counted from the first one."""
    embeds = pipe._encode_prompt(PROMPT, "cpu", 1, True, None)
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps)
    gen = generator(seed)
    x = randn_tensor((1, 4, frames, 8), generator=gen) * scheduler.init_noise_sigma
    ref = randn_tensor((1, 4, window, 8), generator=gen) * scheduler.init_noise_sigma
    if loop:  # the fewest views whose overlaps are all >= window - stride, spread evenly (halves rounded up)
        n = -(-frames // stride)
        starts = [int(i * frames / n + 0.5) for i in range(n)]
    else:
        n = -(-(frames - window) // stride) + 1
        starts = [int(i * (frames - window) / (n - 1) + 0.5) for i in range(n)]
    frames_of = [[(s + o) % frames for o in range(window)] for s in starts]
    guide = round(r_guide * steps)
    for k, t in enumerate(scheduler.timesteps):
        views = []
        for f in frames_of:
            view = x[:, :, f]
            views.append(scheduler.step(guided_eps(pipe, view, t, embeds), t, view).prev_sample)
        if k < guide:
            ref = scheduler.step(guided_eps(pipe, ref, t, embeds), t, ref).prev_sample
        new = torch.empty_like(x)
        for p in range(frames):
            covering = [(i, f.index(p)) for i, f in enumerate(frames_of) if p in f]
            if len(covering) == 1:  # middle region: Reference-Guided Swap on every second frame
                i, o = covering[0]
                middle = [q for q in range(window) if sum(frames_of[i][q] in g for g in frames_of) == 1]
                rank = o if phase == "local" else middle.index(o)
                from_ref = k < guide and len(starts) > 1 and rank % 2 == 1
                new[:, :, p] = ref[:, :, o] if from_ref else views[i][:, :, o]
            else:  # overlap: Self-Loop Swap, left view on even positions counted from the right view's start
                (a, oa), (b, ob) = sorted(covering, key=lambda c: -c[1])
                new[:, :, p] = views[a][:, :, oa] if ob % 2 == 0 else views[b][:, :, ob]
        x = new
    return x


@pytest.mark.parametrize("loop,phase", [(False, "local"), (True, "local"), (False, "middle"), (True, "middle")])
def test_safa_equals_plain_algorithm_1(audioldm, loop, phase):
    long = LongAudioPipeline.from_pipe(audioldm)
    out = long(PROMPT, audio_length_in_s=0.15, window_seconds=WINDOW_S, method="safa", overlap=0.2, loop=loop,
               num_inference_steps=6, r_guide=0.5, seed=5, view_batch_size=1, progress_bar=False,
               reference_phase=phase)
    expected = plain_safa(audioldm, frames=75, window=32, stride=26, steps=6, seed=5, r_guide=0.5, loop=loop,
                          phase=phase)
    assert out.info["guide_steps"] == 3
    assert torch.equal(out.latents, expected)


# --- invariants ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds,loop,samples,stretch", [
    (0.15, False, 2400, 1.0), (0.1234, False, 1974, 1.0), (0.15, True, 2400, 1.0),
    (0.1505, True, 2408, 2408 / 2400), (0.1515, True, 2424, 2424 / 2432), (0.03, False, 480, 1.0)])
def test_output_has_exactly_the_requested_samples(audioldm, seconds, loop, samples, stretch):
    """A loop's canvas is whole latent frames (32 samples here); its period is resampled as a circle to the count."""
    out = LongAudioPipeline.from_pipe(audioldm)(PROMPT, audio_length_in_s=seconds, window_seconds=WINDOW_S,
                                                 loop=loop, num_inference_steps=2, seed=0, progress_bar=False)
    assert out.audio.shape == (1, samples) and out.audio.dtype == np.float32
    assert out.sample_rate == 16000 and np.isfinite(out.audio).all()
    assert out.info["time_stretch"] == pytest.approx(stretch)


def test_same_seed_same_audio_and_other_seed_other_audio(audio_pipe):
    long = LongAudioPipeline.from_pipe(audio_pipe)
    kwargs = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, num_inference_steps=3, progress_bar=False)
    a, b, c = (long(PROMPT, seed=s, **kwargs).audio for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_view_batch_size_changes_calls_not_results(audio_pipe):
    long = LongAudioPipeline.from_pipe(audio_pipe)
    kwargs = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, num_inference_steps=10, seed=1, progress_bar=False)
    one = long(PROMPT, view_batch_size=1, **kwargs)
    all_ = long(PROMPT, **kwargs)
    assert one.layout.num_views == 3 and one.info["guide_steps"] == 3
    assert one.model_calls == 3 * 4 + 7 * 3 and all_.model_calls == 10
    assert torch.allclose(one.latents, all_.latents, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "scheduler_cls", [DPMSolverMultistepScheduler, UniPCMultistepScheduler, EulerDiscreteScheduler]
)
def test_multistep_schedulers_run_every_method(audioldm, scheduler_cls):
    pipe = copy.copy(audioldm)
    pipe.scheduler = scheduler_cls.from_config(audioldm.scheduler.config)
    long = LongAudioPipeline.from_pipe(pipe)
    for method in SWAP_AND_AVERAGE + ["mad"]:
        out = long(PROMPT, audio_length_in_s=0.15, window_seconds=WINDOW_S, method=method, loop=True,
                   num_inference_steps=4, seed=0, progress_bar=False)
        assert np.isfinite(out.audio).all() and out.audio.shape == (1, 2400)


def test_loop_makes_a_circular_latent_decoded_circularly(audioldm):
    long = LongAudioPipeline.from_pipe(audioldm)
    seen = []
    decode = long.adapter.decode_chunks
    long.adapter.decode_chunks = lambda latents, window, loop: seen.append(loop) or decode(latents, window, loop)
    out = long(PROMPT, audio_length_in_s=0.15, window_seconds=WINDOW_S, loop=True, num_inference_steps=3, seed=0,
               progress_bar=False)
    last = out.layout.indices[-1].tolist()
    assert last[0] == out.layout.starts[-1] and last[-1] < out.layout.starts[-1], "the last view wraps onto the first"
    assert seen == [True]


@pytest.mark.parametrize("method", SWAP_AND_AVERAGE)
def test_looping_canvas_has_no_edge(audioldm, method):
    """On a loop the canvas edge is an overlap like any other: rolling the initial noise by a view rolls the result."""
    long = LongAudioPipeline.from_pipe(audioldm)
    noise = randn_tensor((1, 4, 75, 8), generator=generator(11))
    kwargs = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, loop=True, method=method, num_inference_steps=4,
                  seed=2, view_batch_size=1, progress_bar=False)
    plain = long(PROMPT, latents=noise, **kwargs)
    rolled = long(PROMPT, latents=noise.roll(25, 2), **kwargs)
    assert plain.layout.starts == (0, 25, 50)
    assert torch.equal(rolled.latents, plain.latents.roll(25, 2))


def test_reference_guidance_only_in_the_first_r_guide_steps(audioldm):
    long = LongAudioPipeline.from_pipe(audioldm)
    batches = []
    original = long.adapter.denoise
    long.adapter.denoise = lambda x, *a: batches.append(x.shape[0]) or original(x, *a)
    out = long(PROMPT, audio_length_in_s=0.15, window_seconds=WINDOW_S, num_inference_steps=10, r_guide=0.3,
               seed=0, progress_bar=False)
    assert batches == [4] * 3 + [3] * 7 and out.info["guide_steps"] == 3


def test_from_pretrained_loads_a_local_folder(tiny_model_dir):
    long = LongAudioPipeline.from_pretrained(tiny_model_dir, device="cpu")
    out = long(PROMPT, audio_length_in_s=0.1, window_seconds=WINDOW_S, num_inference_steps=2, seed=0,
               progress_bar=False)
    assert out.audio.shape == (1, 1600)


# --- bad input --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(audio_length_in_s=0), "audio_length_in_s must be a finite number > 0 and <= 86400, got 0."),
        (dict(audio_length_in_s=-3.0), "audio_length_in_s must be a finite number > 0 and <= 86400, got -3.0."),
        (dict(audio_length_in_s=float("nan")), "audio_length_in_s must be a finite number > 0 and <= 86400, got nan."),
        (dict(audio_length_in_s="10"), "audio_length_in_s must be a finite number > 0 and <= 86400, got '10'."),
        (dict(audio_length_in_s=1e12), "audio_length_in_s must be a finite number > 0 and <= 86400, got 1000000000"),
        (dict(audio_length_in_s=80000), "needs about"),
        (dict(audio_length_in_s=float("inf")), "audio_length_in_s must be a finite number > 0 and <= 86400, got inf."),
        (dict(method="foo"),
         "Unknown method 'foo'; use one of: safa, safa-selfloop, md-envelope, md, md-tri, mad, syncd."),
        (dict(overlap=0.0), "overlap must be a finite number between 0 and 1 (exclusive), got 0.0"),
        (dict(overlap=1.2), "overlap must be a finite number between 0 and 1 (exclusive), got 1.2"),
        (dict(r_guide=1.5), "r_guide must be a finite number between 0 and 1, got 1.5"),
        (dict(r_guide=-0.1), "r_guide must be a finite number between 0 and 1, got -0.1"),
        (dict(swap_interval=0), "swap_interval must be a whole number >= 1 and <= 4096, got 0"),
        (dict(swap_interval=1.5), "swap_interval must be a whole number >= 1 and <= 4096, got 1.5"),
        (dict(num_inference_steps=0), "num_inference_steps must be a whole number >= 1 and <= 10000, got 0"),
        (dict(window_seconds=0), "window_seconds must be a finite number > 0 and <= 86400, got 0"),
        (dict(view_batch_size=0), "view_batch_size must be a whole number >= 1 and <= 100000, got 0"),
        (dict(colour="red"), "Unknown option 'colour' for audio; known:"),
        (dict(tail_shift=40), "tail_shift must be smaller than the window (32 frames), got 40"),
        (dict(seed=1, generator=torch.Generator()), "Give either seed or generator, not both."),
        (dict(latents=torch.zeros(1, 4, 10, 8)), "latents must have shape (1, 4, 75, 8)"),
    ],
)
def test_bad_input_gets_one_clear_sentence(audioldm, kwargs, message, monkeypatch):
    from swapforward.runtime import memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 16 * 2**30)  # whatever this machine has
    args = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, num_inference_steps=2, progress_bar=False)
    args.update(kwargs)
    with pytest.raises(SwapForwardError) as info:
        LongAudioPipeline.from_pipe(audioldm)(PROMPT, **args)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_empty_prompt_is_refused(audioldm, prompt):
    with pytest.raises(SwapForwardError, match="The prompt is empty"):
        LongAudioPipeline.from_pipe(audioldm)(prompt, audio_length_in_s=0.1, window_seconds=WINDOW_S)


def test_unsupported_pipeline_is_refused():
    with pytest.raises(SwapForwardError, match="is not a supported audio pipeline; supported: AudioLDMPipeline"):
        LongAudioPipeline.from_pipe(object())


def test_half_precision_loads_and_runs_end_to_end(tiny_model_dir):
    """bfloat16 on the CPU stands in for fp16/bf16 on a GPU: the latents stay in the model's dtype, the file is fp32."""
    long = LongAudioPipeline.from_pretrained(tiny_model_dir, device="cpu", torch_dtype="bfloat16")
    assert long.pipe.unet.dtype == torch.bfloat16
    kwargs = dict(audio_length_in_s=0.15, window_seconds=WINDOW_S, num_inference_steps=3, progress_bar=False)
    a, b = (long(PROMPT, seed=2, **kwargs) for _ in range(2))
    assert a.latents.dtype == torch.bfloat16 and a.audio.dtype == np.float32
    assert np.isfinite(a.audio).all() and np.abs(a.audio).max() > 0
    assert np.array_equal(a.audio, b.audio)


@pytest.mark.parametrize("method", ["safa", "md"])
def test_one_window_with_eta_reproduces_the_base_pipeline_exactly(audioldm, method):
    """DDIM with eta > 0: the canvas's step noise is one draw of the view's shape, as the base pipeline draws it."""
    long = LongAudioPipeline.from_pipe(audioldm)
    out = long(PROMPT, audio_length_in_s=WINDOW_S, window_seconds=WINDOW_S, method=method, num_inference_steps=4,
               eta=0.8, generator=generator(), progress_bar=False)
    base = audioldm(PROMPT, audio_length_in_s=WINDOW_S, num_inference_steps=4, guidance_scale=3.5, eta=0.8,
                    generator=generator()).audios
    assert np.array_equal(out.audio, base)


def test_overlapping_views_receive_the_same_step_noise_at_every_shared_frame(audioldm, monkeypatch):
    """A stochastic step's noise is drawn once per canvas frame and cropped for the views, so that averaging views
    does not average independent noises (which would halve the noise variance in a two-view overlap)."""
    from diffusers import DDIMScheduler

    seen = []
    step = DDIMScheduler.step

    def recorded(self, model_output, timestep, sample, *args, variance_noise=None, **kwargs):
        seen.append(variance_noise)
        return step(self, model_output, timestep, sample, *args, variance_noise=variance_noise, **kwargs)

    monkeypatch.setattr(DDIMScheduler, "step", recorded)
    long = LongAudioPipeline.from_pipe(audioldm)
    out = long(PROMPT, audio_length_in_s=0.3, window_seconds=WINDOW_S, method="md", overlap=0.5,
               num_inference_steps=2, eta=1.0, seed=3, view_batch_size=1, progress_bar=False)
    layout = out.layout
    views = [noise for noise in seen if noise is not None and noise.shape[0] == layout.num_views]
    assert len(views) == 2, "one batch of views a step, each with its cropped noise"
    for noise in views:
        for a in range(layout.num_views - 1):
            b = a + 1
            shared = sorted(set(layout.indices[a].tolist()) & set(layout.indices[b].tolist()))
            at_a = [layout.indices[a].tolist().index(f) for f in shared]
            at_b = [layout.indices[b].tolist().index(f) for f in shared]
            assert shared and torch.equal(noise[a][:, at_a], noise[b][:, at_b])
    assert not torch.equal(views[0], views[1]), "fresh noise each step"
