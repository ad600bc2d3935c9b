"""Prompts that change along the canvas: timelines for audio, regions for panoramas (issue 12)."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, PanoramaPipeline, SwapForwardError
from swapforward.core import ViewLayout
from swapforward.core.timeline import frame_segments, view_mix, view_reference
from swapforward.frontends.cli import app
from swapforward.options import AUDIO, PANORAMA
from swapforward.prompts import Segment, parse_lines

AUDIO_ARGS = dict(audio_length_in_s=3.0, window_seconds=0.5, num_inference_steps=3, seed=4, progress_bar=False)
PANO_ARGS = dict(height=64, width=256, view_width=64, num_inference_steps=2, seed=4, progress_bar=False)


def test_the_timeline_text_form():
    segments = parse_lines("0:00 light rain on leaves\n# a comment\n\n1:02.5 thunderstorm | music, speech\n")
    assert segments == [Segment(0.0, "light rain on leaves"), Segment(62.5, "thunderstorm", "music, speech")]
    with pytest.raises(SwapForwardError) as info:
        parse_lines("0:00 rain\nsoon storm\n", "--timeline")
    assert str(info.value) == "--timeline line 2 is not 'START PROMPT' (START as m:ss or seconds): 'soon storm'."


@pytest.mark.parametrize("segments,message", [
    ([(0, "rain"), (0, "storm")], "starts must increase; 0 s comes after 0 s."),
    ([(10, "rain"), (5, "storm")], "starts must increase; 5 s comes after 10 s."),
    ([(0, "rain"), (30, "storm")], "segment at 30 s starts outside the output, which is 20 s long."),
    ([(0, "rain"), (19.5, "storm")], "segment at 19.5 s lasts 0.5 s; a segment must last at least 1 s."),
    ([(0, "rain"), (10, " ")], "segment 1 has an empty prompt"),
    ([(0, "rain"), (-1, "storm")], "segment 1 has start -1; give a number >= 0 (or m:ss)."),
    ([(0, "rain", 3)], "segment 0 has a negative prompt that is not text: 3."),
    ([], "has no segments"),
])
def test_bad_timelines_are_one_sentence_before_any_model(segments, message):
    with pytest.raises(SwapForwardError) as info:
        AUDIO.check({"prompt": segments, "audio_length_in_s": 20})
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_timelines_for_panoramas_take_pixels_or_fractions():
    request = PANORAMA.check({"prompt": [(0, "forest"), (0.5, "lake"), (3000, "city")], "width": 4096})
    assert [s.start for s in request.prompt] == [0.0, 2048.0, 3000.0]
    with pytest.raises(SwapForwardError, match="segment at 4050 px lasts 46 px; a segment must last at least 64 px"):
        PANORAMA.check({"prompt": [(0, "forest"), (4050, "lake")], "width": 4096})
    with pytest.raises(SwapForwardError,
                       match="with several prompts works with safa, safa-selfloop, md-envelope, md and md-tri"):
        PANORAMA.check({"prompt": [(0, "forest"), (0.5, "lake")], "method": "mad"})


def test_equal_neighbours_merge_and_one_segment_is_a_plain_prompt():
    request = AUDIO.check({"prompt": [(0, "rain"), (10, "rain"), (20, "storm")], "audio_length_in_s": 30})
    assert [s.prompt for s in request.prompt] == ["rain", "storm"]
    single = AUDIO.check({"timeline": "0:00 rain | music\n0:10 rain | music", "audio_length_in_s": 30})
    assert single.prompt == "rain" and single.negative_prompt == "music"
    looped = AUDIO.check({"prompt": [(0, "rain"), (10, "storm"), (20, "rain")], "audio_length_in_s": 30,
                          "loop": True})
    assert [(s.start, s.prompt) for s in looped.prompt] == [(10, "storm"), (20, "rain")], "the ends join round"


def test_frames_views_and_references_follow_the_segments():
    layout = ViewLayout.build(40, 10, stride=8)  # starts 0, 8, 15, 23, 30
    segments = frame_segments([0, 20], 40, loop=False)
    assert segments.tolist() == [0] * 20 + [1] * 20
    cut = view_mix(layout, segments, 2, "cut")
    assert cut.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]  # centres 5, 13, 20, 28, 35
    blend = view_mix(layout, segments, 2, "blend")
    assert blend[1].tolist() == [1.0, 0.0] and blend[2].tolist() == [0.5, 0.5] and torch.allclose(blend.sum(1),
                                                                                                   torch.ones(5))
    assert view_reference(layout, segments).tolist() == [0, 0, 1, 1, 1]
    looped = frame_segments([5, 20], 40, loop=True)
    assert looped[:5].tolist() == [1] * 5, "before the first start, the last segment wraps round"


@pytest.mark.parametrize("kind", ["audio", "panorama"])
def test_one_segment_and_same_prompt_everywhere_equal_the_plain_prompt(kind, audioldm, sd):
    if kind == "audio":
        pipe, args, timeline = LongAudioPipeline.from_pipe(audioldm), AUDIO_ARGS, [(0, "rain"), (1.5, "rain")]
    else:
        pipe, args, timeline = PanoramaPipeline.from_pipe(sd), PANO_ARGS, [(0, "rain"), (0.5, "rain")]
    plain = pipe("rain", **args)
    assert torch.equal(pipe(prompt=[(0, "rain")], **args).latents, plain.latents)
    assert torch.equal(pipe(prompt=timeline, **args).latents, plain.latents)
    assert torch.equal(pipe(timeline="0 rain", **args).latents, plain.latents)


@pytest.mark.parametrize("transition", ["cut", "blend"])
def test_every_view_is_conditioned_by_its_segment(audioldm, monkeypatch, transition):
    """A denoiser that records its conditioning: each view row gets its segment's embedding (or the blend)."""
    pipe = LongAudioPipeline.from_pipe(audioldm)
    adapter = pipe.adapter
    embeddings = {p: adapter.encode_prompt(p, None, True, (1, 4, 250, 8))["class_labels"] for p in ("rain", "storm")}
    seen = []
    real = adapter.denoise

    def recording(x, t, cond, scale):
        seen.append(cond["class_labels"])
        return real(x, t, cond, scale)

    monkeypatch.setattr(adapter, "denoise", recording)
    out = pipe(prompt=[(0, "rain"), (1.5, "storm")], transition=transition, r_guide=0.0, view_batch_size=100,
               **AUDIO_ARGS)
    layout = out.layout
    segments = frame_segments([0, pipe.start_frame(1.5)], layout.length, False)
    mix = view_mix(layout, segments, 2, transition)
    rows = seen[0]  # [negative] * n + [positive] * n, one step's call
    n = layout.num_views
    for i in range(n):
        for g in range(2):
            expected = mix[i, 0] * embeddings["rain"][g] + mix[i, 1] * embeddings["storm"][g]
            got = rows[g * n + i]
            assert torch.allclose(got, expected, atol=1e-6), (i, g)
            if mix[i].max() == 1:
                assert torch.equal(got, embeddings["rain" if mix[i, 0] == 1 else "storm"][g]), "one segment: exact"
    assert (mix.max(1).values < 1).any() == (transition == "blend")


def test_a_view_in_a_mixed_batch_equals_it_alone_with_its_prompt(audioldm):
    pipe = LongAudioPipeline.from_pipe(audioldm)
    adapter = pipe.adapter
    views = torch.randn(3, 4, 32, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)
    prompts = ["rain", "storm", "rain"]
    encoded = {p: adapter.encode_prompt(p, None, True, (1, 4, 32, 8)) for p in set(prompts)}
    batch_cond = {"class_labels": torch.cat([torch.stack([encoded[p]["class_labels"][g] for p in prompts])
                                             for g in range(2)])}
    together = adapter.denoise(views, t, batch_cond, 3.5)
    from swapforward.models.base import per_row

    for i, prompt in enumerate(prompts):
        same_size = adapter.denoise(views, t, per_row(encoded[prompt], 3), 3.5)
        assert torch.equal(together[i], same_size[i]), "no row's conditioning leaks into another's"
        alone = adapter.denoise(views[i : i + 1], t, per_row(encoded[prompt], 1), 3.5)
        # alone, the convolutions run at another batch size: equal up to float32 rounding
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-4, atol=1e-5)


def test_each_segment_has_its_own_reference_view(audioldm, sd):
    audio = LongAudioPipeline.from_pipe(audioldm)(prompt=[(0, "rain"), (1.5, "storm")], view_batch_size=100,
                                                  **AUDIO_ARGS)
    plain = LongAudioPipeline.from_pipe(audioldm)("rain", view_batch_size=100, **AUDIO_ARGS)
    assert audio.info["references"] == 2 and plain.info["references"] == 1
    assert audio.info["view_evaluations"] == plain.info["view_evaluations"] + audio.info["guide_steps"]
    assert audio.segments == [(0.0, "rain"), (1.5, "storm")] and np.isfinite(audio.audio).all()
    pano = PanoramaPipeline.from_pipe(sd)(prompt=[(0, "forest"), (0.5, "lake")], loop=True, **PANO_ARGS)
    assert pano.segments == [(0.0, "forest"), (128.0, "lake")] and np.isfinite(pano.array).all()


def test_the_command_line_takes_prompt_at_and_timeline_files(tiny_model_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "evolving.wav"
    result = runner.invoke(app, ["audio", "--prompt-at", "0", "light rain", "--prompt-at", "0:01.5", "thunderstorm",
                                 "--seconds", "3", "--window-seconds", "0.5", "--steps", "2", "--model",
                                 tiny_model_dir, "--out", str(out), "--spectrogram", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert "(+2 references for 1 of 2 steps)" in result.stdout
    assert "timeline: 0:00 light rain -> 0:01.5 thunderstorm" in result.stdout and out.exists()
    timeline = tmp_path / "timeline.txt"
    timeline.write_text("0:00 rain\nnot a line\n")
    bad = runner.invoke(app, ["audio", "--timeline", str(timeline), "--model", tiny_model_dir])
    assert bad.exit_code == 2 and "--timeline line 2 is not 'START PROMPT'" in bad.stderr
    missing = runner.invoke(app, ["audio", "--timeline", str(tmp_path / "none.txt")])
    assert missing.exit_code == 2 and "Cannot read --timeline" in missing.stderr


def test_batch_jobs_and_the_app_take_timelines(tiny_model_dir, tmp_path):
    import json

    from swapforward.frontends.app import Studio
    from swapforward.frontends.batch import load_jobs

    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"prompt": [[0, "rain"], ["0:02", "storm", "music"]], "out": "a.wav", "seconds": 4})
                    + "\n" + json.dumps({"timeline": "0:00 wind\n0:02 sea", "out": "b.wav", "seconds": 4}) + "\n")
    first, second = load_jobs(path)
    assert first.request.prompt == (Segment(0.0, "rain"), Segment(2.0, "storm", "music"))
    assert [s.prompt for s in second.request.prompt] == ["wind", "sea"]
    studio = Studio(tiny_model_dir, "unused", tmp_path / "app", device="cpu")
    sound, picture, _, summary = studio.audio("ignored when a timeline is given", seconds=3, window_seconds=0.5,
                                              steps=2, seed=1, timeline="0:00 rain\n0:01.5 storm", progress_bar=False)
    assert "rain-then-storm" in sound and "(+2 references" in summary
