"""Stable Audio Open through LongAudioPipeline: 1-D latents, duration conditioning, a rotary DiT, stereo output."""

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.frontends.cli import app

WINDOW_S = 0.016  # the tiny model's 32 latent frames of 8 samples at 16 kHz


@pytest.mark.parametrize("method", ["safa", "safa-selfloop", "md", "md-tri"])
def test_one_window_reproduces_stable_audio_exactly(stable_audio, method):
    out = LongAudioPipeline.from_pipe(stable_audio)("rain", audio_length_in_s=WINDOW_S, method=method,
                                                    num_inference_steps=4, guidance_scale=7.0,
                                                    generator=torch.Generator().manual_seed(0), progress_bar=False)
    base = stable_audio("rain", num_inference_steps=4, guidance_scale=7.0, generator=torch.Generator().manual_seed(0),
                        output_type="np").audios[0]
    assert out.audio.shape == base.shape == (2, 256)
    assert np.array_equal(out.audio, base)


def test_views_are_full_windows_conditioned_on_their_length(stable_audio):
    long = LongAudioPipeline.from_pipe(stable_audio)
    assert long.adapter.trained_window_seconds == pytest.approx(WINDOW_S) and long.adapter.long_axis == -1
    cond = long.adapter.encode_prompt("rain", None, True, (1, 4, 32))
    end = stable_audio.encode_duration(0.0, WINDOW_S, "cpu", False, 1)[1]
    assert torch.equal(cond["global_hidden_states"][1, :, 4:], end[0])
    assert torch.equal(cond["encoder_hidden_states"][0], torch.zeros_like(cond["encoder_hidden_states"][0]))


@pytest.mark.parametrize("loop", [False, True])
def test_long_stereo_audio_with_the_requested_length(stable_audio, loop):
    out = LongAudioPipeline.from_pipe(stable_audio)("rain", audio_length_in_s=0.1, loop=loop, num_inference_steps=4,
                                                    seed=0, progress_bar=False)
    assert out.audio.shape == (2, 1600) and np.isfinite(out.audio).all()
    assert out.layout.num_views == 8 and out.info["guide_steps"] == 1
    assert out.mel_spectrogram.shape[1] == 64


def test_mad_is_refused_for_the_rotary_dit(stable_audio):
    with pytest.raises(SwapForwardError, match="MAD is not available for StableAudioPipeline"):
        LongAudioPipeline.from_pipe(stable_audio)("rain", audio_length_in_s=0.05, method="mad", progress_bar=False)


def test_cli_writes_stereo_flac_from_a_local_stable_audio_folder(stable_audio, tmp_path):
    stable_audio.save_pretrained(tmp_path / "sao")
    out = tmp_path / "sao.flac"
    result = CliRunner().invoke(app, ["audio", "rain", "--model", str(tmp_path / "sao"), "--seconds", "0.05",
                                      "--steps", "3", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data, rate = sf.read(out)
    assert rate == 16000 and data.shape == (800, 2)
