"""Methods are data: a new one is a `Method` and a `register` call (shown here with a method defined in this file),
and the option checks ask the method instead of comparing names."""

import numpy as np
import pytest
import torch

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.core.methods import METHODS, Method, register
from swapforward.options import AUDIO, PANORAMA


def cosine_weights(layout, swap_interval=1, tail_shift=0):
    """A raised-cosine window (a smoother MD*), 1 where a view is alone, as the package's own windows are."""
    pos = (torch.arange(layout.window) + 0.5) / layout.window
    window = (0.5 - 0.5 * torch.cos(2 * torch.pi * pos)).expand(layout.num_views, -1)
    return torch.where(layout.middle, torch.ones_like(window), window)


@pytest.fixture
def md_cos():
    method = register(Method("md-cos", cosine_weights, reference=False, summary="MD with a raised-cosine window",
                             panorama_overlap=0.5))
    yield method
    del METHODS["md-cos"]


def test_a_method_defined_elsewhere_plugs_in_and_runs(md_cos, audioldm, sd):
    audio = LongAudioPipeline.from_pipe(audioldm)
    one = audio("rain", audio_length_in_s=0.064, method="md-cos", num_inference_steps=3, seed=0, progress_bar=False)
    base = audio("rain", audio_length_in_s=0.064, method="md", num_inference_steps=3, seed=0, progress_bar=False)
    assert np.array_equal(one.audio, base.audio), "one view is the plain model, whatever the merge"
    long = dict(audio_length_in_s=0.2, window_seconds=0.064, num_inference_steps=3, seed=0, progress_bar=False)
    cos, tri = audio("rain", method="md-cos", **long), audio("rain", method="md-tri", **long)
    assert cos.layout.num_views == tri.layout.num_views > 1 and not np.array_equal(cos.audio, tri.audio)
    pano = PanoramaPipeline.from_pipe(sd)("a lake", height=64, width=192, view_width=64, method="md-cos",
                                         num_inference_steps=2, seed=0, progress_bar=False)
    assert pano.info["overlap"] == 0.5 and pano.array.shape == (64, 192, 3), "its own panorama overlap"


def test_a_method_specific_option_given_to_another_method_is_one_sentence():
    with pytest.raises(SwapForwardError, match="r_guide is used by safa and md-envelope only; method md ignores it"):
        AUDIO.check({"prompt": "x", "method": "md", "r_guide": 0.5})
    with pytest.raises(SwapForwardError, match="--swap-interval is used by safa and safa-selfloop only; method mad"):
        PANORAMA.check({"prompt": "x", "method": "mad", "swap_interval": "2"}, "cli")
    assert AUDIO.check({"prompt": "x", "method": "md", "r_guide": 0.3}).method == "md", "its default is harmless"
    assert PANORAMA.check({"prompt": "x"}).reference_phase == "middle", "both kinds share the joint options"


def test_the_options_ask_the_method(md_cos):
    assert AUDIO["r_guide"].methods == ("safa", "md-envelope") and "md-cos" in AUDIO["method"].choice_names()
    assert PANORAMA.check({"prompt": "x", "method": "md-cos"}).overlap == 0.5
    with pytest.raises(SwapForwardError, match="guides the reference view, which only safa and md-envelope have"):
        AUDIO.check({"prompt": "x", "method": "md-cos", "reference_audio": np.zeros((1, 16000), np.float32),
                     "init_sample_rate": 16000})
