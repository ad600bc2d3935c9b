"""md-envelope, the project's own reference guidance (core/envelope.py): its operator's algebra, its plan, and its
runs through the pipelines (the lab's tests measure what it buys)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swapforward import LongAudioPipeline
from swapforward.core import METHODS, ViewLayout, plan_joint
from swapforward.core.envelope import ENVELOPE_SHARE, envelope_guidance, envelope_smoothing, mirrored_spectrum
from swapforward.core.merge import reference_swap, triangular_weights
from swapforward.options import AUDIO

WHOLE = torch.ones(3, 1, 1, 1, dtype=torch.bool)


def lanes(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_a_share_of_zero_or_a_view_that_has_the_references_envelope_is_kept():
    views, reference = lanes(6, 2, 48, 3), lanes(2, 2, 48, 3, seed=1)
    kept = envelope_guidance(views, reference, WHOLE, share=0.0, smooth=4, axis=2)
    assert torch.allclose(kept, views, atol=1e-12)
    copies = reference_swap(views, reference, WHOLE)
    assert torch.allclose(envelope_guidance(copies, reference, WHOLE, share=1.0, smooth=4, axis=2), copies,
                          atol=1e-12)


def test_all_the_way_with_no_smoothing_gives_the_references_magnitudes_with_the_views_phases():
    """Share 1, envelope = each frequency's own power: the mirrored spectrum's magnitudes become the reference's and
    its phases stay the view's (the filter is real, so the output is the same mirror-symmetric signal's first half)."""
    views, reference = lanes(3, 2, 40, 3), lanes(1, 2, 40, 3, seed=1)
    out = envelope_guidance(views, reference, WHOLE, share=1.0, smooth=0, axis=2)
    theirs, ours, own = (mirrored_spectrum(x, 2)[:, :, :40] for x in (reference.expand_as(views), out, views))
    assert torch.allclose(ours.abs(), theirs.abs(), atol=1e-9)  # (the last bin of a mirrored lane is 0)
    assert torch.allclose(ours / ours.abs(), own / own.abs(), atol=1e-9)


def test_the_guidance_moves_the_level_toward_the_reference_without_copying_its_frames():
    views, reference = lanes(3, 4, 64, 8), 3 * lanes(1, 4, 64, 8, seed=1)
    out = envelope_guidance(views, reference, WHOLE, share=ENVELOPE_SHARE, smooth=8, axis=2)
    gain = out.pow(2).mean() / views.pow(2).mean()
    assert 9 ** ENVELOPE_SHARE * 0.9 < gain < 9 ** ENVELOPE_SHARE * 1.1, "a quarter of the way in log to 9x"
    copied = torch.corrcoef(torch.stack([out.flatten(), reference.expand_as(out).flatten()]))[0, 1]
    swapped = reference_swap(views, reference, lanes(3, 1, 64, 1, seed=5) > 0)
    copying = torch.corrcoef(torch.stack([swapped.flatten(), reference.expand_as(out).flatten()]))[0, 1]
    assert abs(copied) < 0.05 < copying, "the swap copies frames; the envelope does not"


def test_each_view_follows_its_own_reference_and_half_precision_stays_half():
    views, references = lanes(2, 2, 32, 3), torch.stack([lanes(2, 32, 3, seed=1), 4 * lanes(2, 32, 3, seed=2)])
    index, whole = torch.tensor([0, 1]), torch.ones(2, 1, 1, 1, dtype=torch.bool)
    out = envelope_guidance(views, references, whole, index, share=1.0, smooth=4, axis=2)
    alone = envelope_guidance(views[1:], references[1:], whole[:1], share=1.0, smooth=4, axis=2)
    assert torch.allclose(out[1:], alone, atol=1e-12) and out[1].pow(2).mean() > 4 * out[0].pow(2).mean()
    half = envelope_guidance(views.half(), references.half(), whole, index, share=1.0, smooth=4, axis=2)
    assert half.dtype == torch.float16 and torch.allclose(half.double(), out, atol=0.02, rtol=0.01)


def test_the_plan_guides_whole_views_along_the_long_axis_with_triangular_weights():
    layout = ViewLayout.build(84, 32, stride=26)
    plan = plan_joint(METHODS["md-envelope"], layout, 200, view_shape=(1, 8, 32, 16), axis=2, swap_axis=2,
                      r_guide=0.3, reference_phase="local")
    assert plan.guide_steps == 60 and plan.reference_mask.shape == (3, 1, 1, 1) and bool(plan.reference_mask.all())
    assert torch.equal(plan.weights, triangular_weights(layout))
    assert plan.guidance.keywords == {"share": ENVELOPE_SHARE, "smooth": envelope_smoothing(32), "axis": 2}
    assert AUDIO["envelope_share"].default_for("audio") == ENVELOPE_SHARE, "one default"
    image = plan_joint(METHODS["md-envelope"], ViewLayout.build(26, 8, stride=6), 50, view_shape=(1, 4, 8, 8),
                       axis=3, swap_axis=2, r_guide=0.3, reference_phase="local", envelope_share=0.5)
    assert image.guidance.keywords["axis"] == 3 and image.guidance.keywords["share"] == 0.5
    assert envelope_smoothing(64) == 8 and envelope_smoothing(4) == 1


def test_md_envelope_is_md_tri_with_a_reference_at_safas_cost(audio_pipe):
    long = LongAudioPipeline.from_pipe(audio_pipe)
    kwargs = dict(audio_length_in_s=0.15, window_seconds=0.064, num_inference_steps=10, seed=3, progress_bar=False)
    envelope, tri, safa = (long("rain", method=m, **kwargs) for m in ("md-envelope", "md-tri", "safa"))
    assert envelope.layout.num_views == tri.layout.num_views == 3 and envelope.info["guide_steps"] == 3
    assert envelope.model_calls == safa.model_calls and np.isfinite(envelope.audio).all()
    assert not np.array_equal(envelope.audio, tri.audio)
    unguided = long("rain", method="md-envelope", r_guide=0.0, **kwargs)
    assert np.array_equal(unguided.audio, tri.audio), "without guided steps it is MD*"


def test_md_envelope_refuses_a_share_out_of_range_in_one_sentence():
    from swapforward.errors import SwapForwardError

    with pytest.raises(SwapForwardError, match="envelope_share"):
        AUDIO.check({"prompt": "x", "method": "md-envelope", "envelope_share": 0})
    with pytest.raises(SwapForwardError, match="envelope_share is used by md-envelope only"):
        AUDIO.check({"prompt": "x", "method": "safa", "envelope_share": 0.5})


def test_md_envelope_follows_each_segments_reference_and_a_users_clip(audioldm, tmp_path):
    """A timeline of one prompt repeated is the plain prompt (one reference per segment, all alike); a user's clip as
    the reference (`--like`) costs no model call, changes the output, and with r_guide 0 is MD* exactly."""
    import soundfile as sf

    pipe = LongAudioPipeline.from_pipe(audioldm)
    args = dict(audio_length_in_s=3.0, window_seconds=0.5, num_inference_steps=3, seed=4, progress_bar=False,
                method="md-envelope")
    plain = pipe("rain", **args)
    assert torch.equal(pipe(prompt=[(0, "rain"), (1.5, "rain")], **args).latents, plain.latents)
    two = pipe(prompt=[(0, "rain"), (1.5, "storm")], **args)
    assert two.info["guide_steps"] == 1 and torch.isfinite(two.latents).all()
    path = tmp_path / "clip.wav"
    sf.write(path, (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32), 16000,
             subtype="FLOAT")
    liked = pipe("rain", reference_audio=str(path), **args)
    assert not torch.equal(liked.latents, plain.latents)
    assert liked.info["view_evaluations"] == 3 * liked.layout.num_views, "an observed reference costs no model call"
    tri = pipe("rain", **{**args, "method": "md-tri"})
    assert torch.equal(pipe("rain", reference_audio=str(path), r_guide=0.0, **args).latents, tri.latents)
