"""The model-agnostic core: view layout, merge operators (Eq. 4, 7, 9, 10) and the joint loop."""

from collections.abc import Callable

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from swapforward.core import (
    Joint,
    ViewLayout,
    average_weights,
    decode_tiled,
    joint_denoise,
    merge_views,
    reference_swap,
    reference_swap_mask,
    swap_mask,
    swap_weights,
    tiling,
    triangular_weights,
)
from swapforward.core.methods import REFERENCE_PHASES
from swapforward.options import AUDIO

#: The paper's settings of the reference swap, as the options declare them.
PAPER = {name: AUDIO[name].default_for("audio") for name in ("r_guide", "reference_phase")}


def owners(layout, weights):
    """Canvas frame -> list of views with non-zero weight there."""
    result = [[] for _ in range(layout.length)]
    for i in range(layout.num_views):
        for o, p in enumerate(layout.indices[i].tolist()):
            if weights[i, o] > 0:
                result[p].append(i)
    return result


# --- layout -------------------------------------------------------------------------------------------------


def test_layout_spreads_the_fewest_views_evenly_from_start_to_end():
    layout = ViewLayout.build(100, 32, overlap=0.2)
    assert layout.starts == (0, 23, 45, 68)
    assert layout.indices[-1, -1].item() == 99
    assert (layout.coverage >= 1).all()
    assert ViewLayout.build(30, 16, overlap=0.2).starts == (0, 7, 14), "not (0, 13, 14): no near-duplicate view"
    assert ViewLayout.build(320, 64, overlap=0.2).starts == (0, 43, 85, 128, 171, 213, 256)


@pytest.mark.parametrize("loop", [False, True])
def test_every_overlap_is_alike_and_at_least_the_requested_one(loop):
    for window in (1, 2, 3, 8, 16, 32, 64, 80):
        for overlap in (0.05, 0.2, 0.5, 0.8, 0.875, 0.95):
            for length in range(window + 1, 4 * window + 40, 3):
                layout = ViewLayout.build(length, window, overlap=overlap, loop=loop)
                stride = max(1, min(window - 1, round(window * (1 - overlap)))) if window > 1 else 1
                starts = list(layout.starts) + ([length] if loop else [])
                gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
                if not loop:
                    assert layout.starts[0] == 0 and layout.starts[-1] == length - layout.window
                    assert len(gaps) == max(1, -(-(length - window) // stride))  # the fewest views
                assert max(gaps) - min(gaps) <= 1, (length, window, overlap, layout.starts)
                assert max(gaps) <= stride, "every overlap at least the requested one"
                assert int(layout.coverage.max()) <= -(-layout.window // min(gaps)), "no frame in extra views"
                assert (layout.coverage >= 1).all()


def test_layout_stride_and_overlap_agree():
    assert ViewLayout.build(100, 32, stride=26).starts == ViewLayout.build(100, 32, overlap=0.2).starts


def test_layout_shorter_than_window_is_one_view_of_that_length():
    layout = ViewLayout.build(20, 32, overlap=0.2)
    assert layout.starts == (0,) and layout.window == 20


def test_loop_layout_wraps_last_view_onto_first():
    layout = ViewLayout.build(75, 32, overlap=0.2, loop=True)
    assert layout.starts == (0, 25, 50)
    last = layout.indices[-1].tolist()
    assert last[:25] == list(range(50, 75)) and last[25:] == list(range(0, 7))
    assert (layout.coverage[:7] == 2).all() and (layout.coverage[7:25] == 1).all()


def test_layout_middle_is_the_frames_only_one_view_covers():
    layout = ViewLayout.build(84, 32, stride=26)
    assert layout.middle[0].tolist() == [True] * 26 + [False] * 6
    assert layout.middle[1].tolist() == [False] * 6 + [True] * 20 + [False] * 6


@pytest.mark.parametrize("kwargs", [dict(overlap=0.0), dict(overlap=1.0), dict(stride=40), dict()])
def test_layout_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ViewLayout.build(100, 32, **kwargs)


# --- Eq. 9 and the Self-Loop swap ------------------------------------------------------------------------------


def test_swap_mask_is_eq9():
    assert swap_mask(6, 1).tolist() == [0, 1, 0, 1, 0, 1]
    assert swap_mask(7, 2).tolist() == [0, 0, 1, 1, 0, 0, 1]
    assert swap_mask(7, 3).tolist() == [0, 0, 0, 1, 1, 1, 0]


@pytest.mark.parametrize("interval", [1, 2, 3])
def test_self_loop_swap_alternates_overlap_frames_with_interval(interval):
    layout = ViewLayout.build(84, 32, stride=26)  # overlaps [26, 32) and [52, 58)
    weights = swap_weights(layout, interval)
    own = owners(layout, weights)
    assert all(len(o) == 1 for o in own), "every canvas frame has exactly one owning view"
    for left, start in ((0, 26), (1, 52)):
        expected = [left + int(v) for v in swap_mask(6, interval)]
        assert [own[p][0] for p in range(start, start + 6)] == expected
    assert own[10] == [0] and own[40] == [1] and own[70] == [2]


def test_self_loop_swap_joins_last_and_first_views_when_looping():
    layout = ViewLayout.build(75, 32, overlap=0.2, loop=True)
    own = owners(layout, swap_weights(layout, 1))
    assert [own[p][0] for p in range(7)] == [2, 0, 2, 0, 2, 0, 2]
    assert [own[p][0] for p in range(25, 32)] == [0, 1, 0, 1, 0, 1, 0]


def test_tail_shift_gives_each_overlaps_last_frames_to_the_right_view():
    layout = ViewLayout.build(84, 32, stride=26)
    own = owners(layout, swap_weights(layout, 1, tail_shift=2))
    assert [own[p][0] for p in range(26, 32)] == [0, 1, 0, 1, 1, 1]


def test_swap_with_three_covering_views_cycles_through_them():
    layout = ViewLayout.build(48, 32, stride=8)
    own = owners(layout, swap_weights(layout, 1))
    assert all(len(o) == 1 for o in own)
    assert [own[p][0] for p in range(16, 24)] == [0, 1, 2, 0, 1, 2, 0, 1]


def swap_weights_by_comparing_every_view(layout, interval=1, tail_shift=0):
    """The first implementation of `swap_weights`, kept as the oracle: it ranks every view against every other at
    every frame, (views, views, frames) memory, cubic in the canvas's length for a fixed window."""
    starts = torch.tensor(layout.starts)[:, None]
    frames = torch.arange(layout.length)[None, :]
    offset = frames - starts
    if layout.loop:
        offset = offset % layout.length
    covers = (offset >= 0) & (offset < layout.window)
    if tail_shift > 0:
        usable = covers & (offset < layout.window - tail_shift)
        covers = torch.where(usable.any(0, keepdim=True), usable, covers)
    big = layout.length + layout.window
    off = torch.where(covers, offset, torch.full_like(offset, -1))
    rank = (off[None, :, :] > off[:, None, :]).sum(1)
    count = covers.sum(0)
    j = torch.where(covers, offset, torch.full_like(offset, big)).min(0).values
    owner_rank = (j // interval) % count
    owns = covers & (rank == owner_rank[None, :])
    return owns.gather(1, layout.indices).float()


@pytest.mark.parametrize("loop", [False, True])
def test_linear_swap_weights_equal_the_first_implementation(loop):
    """Every overlap from 0.2 to 0.9, intervals 1 to 3, tail shifts, odd lengths, two views and many."""
    checked = 0
    for length in (33, 75, 84, 200, 517):
        for window in (8, 32, 64):
            for overlap in (0.2, 0.35, 0.5, 0.6, 0.75, 0.9):
                if window > length:
                    continue
                layout = ViewLayout.build(length, window, overlap=overlap, loop=loop)
                for interval in (1, 2, 3):
                    for tail_shift in (0, 2):
                        if tail_shift >= window:
                            continue
                        expected = swap_weights_by_comparing_every_view(layout, interval, tail_shift)
                        assert torch.equal(swap_weights(layout, interval, tail_shift), expected), \
                            (length, window, overlap, interval, tail_shift)
                        checked += 1
    assert checked > 400


def test_swap_weights_of_an_eight_hour_canvas():
    """AudioLDM's geometry for 8 hours (720,000 frames of 40 ms, 256-frame views, overlap 0.2, loop): 3,513 views.
    The first implementation asked for (views, views, frames) booleans, 8.9 TB; this one needs a few (K, frames)."""
    layout = ViewLayout.build(720_000, 256, overlap=0.2, loop=True)
    weights = swap_weights(layout)
    assert weights.shape == (3513, 256)
    covered = torch.zeros(layout.length).index_add_(0, layout.indices.flatten(), weights.flatten())
    assert torch.equal(covered, torch.ones(layout.length)), "every frame has exactly one owner"


def merge_by_adding_view_by_view(views, layout, weights, axis):
    """The first implementation of `merge_views`, kept as the oracle: one index_add per view, in view order."""
    n = layout.num_views
    grouped = views.view(views.shape[0] // n, n, *views.shape[1:])
    shape = list(views.shape)
    shape[0], shape[axis] = grouped.shape[0], layout.length
    numerator, denominator = views.new_zeros(shape), views.new_zeros(layout.length)
    view_shape = [1] * views.ndim
    view_shape[axis] = layout.window
    for i in range(n):
        numerator.index_add_(axis, layout.indices[i], grouped[:, i] * weights[i].view(view_shape))
        denominator.index_add_(0, layout.indices[i], weights[i])
    canvas_shape = [1] * views.ndim
    canvas_shape[axis] = layout.length
    return numerator / denominator.view(canvas_shape)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("axis", [2, 3])
def test_one_scatter_crops_and_merges_as_view_by_view_did(loop, axis):
    generator = torch.Generator().manual_seed(0)
    for length, window, overlap in ((75, 32, 0.2), (300, 64, 0.5), (300, 32, 0.8), (64, 64, 0.2)):
        layout = ViewLayout.build(length, window, overlap=overlap, loop=loop)
        shape = [2, 3, 5, 5]
        shape[axis] = length
        canvas = torch.randn(shape, generator=generator)
        expected = torch.stack([canvas.index_select(axis, layout.indices[i]) for i in range(layout.num_views)], 1)
        assert torch.equal(layout.crop(canvas, axis), expected.flatten(0, 1))
        views = torch.randn(expected.flatten(0, 1).shape, generator=generator)
        for weights in (swap_weights(layout), triangular_weights(layout), average_weights(layout)):
            assert torch.equal(merge_views(views, layout, weights, axis),
                               merge_by_adding_view_by_view(views, layout, weights, axis))


# --- merges (Eq. 4) --------------------------------------------------------------------------------------------


def test_average_merge_matches_hand_computed_mean():
    layout = ViewLayout.build(10, 6, stride=4)  # views [0, 6) and [4, 10)
    views = torch.stack([torch.full((1, 6, 2), 1.0), torch.full((1, 6, 2), 3.0)])
    canvas = merge_views(views, layout, average_weights(layout), axis=2)
    assert canvas[0, 0, :, 0].tolist() == [1, 1, 1, 1, 2, 2, 3, 3, 3, 3]


def test_swap_merge_copies_values_exactly():
    layout = ViewLayout.build(84, 32, stride=26)
    views = torch.randn(layout.num_views, 4, 32, 3)
    weights = swap_weights(layout)
    canvas = merge_views(views, layout, weights, axis=2)
    for p, (v,) in enumerate(owners(layout, weights)):
        o = layout.indices[v].tolist().index(p)
        assert torch.equal(canvas[0, :, p], views[v, :, o])


def test_triangular_merge_weights_views_by_distance_from_their_centre():
    layout = ViewLayout.build(10, 6, stride=4)
    views = torch.stack([torch.zeros(1, 6, 1), torch.ones(1, 6, 1)])
    canvas = merge_views(views, layout, triangular_weights(layout), axis=2)[0, 0, :, 0]
    assert canvas[:4].tolist() == [0, 0, 0, 0] and canvas[6:].tolist() == [1, 1, 1, 1]
    # frame 4: left view offset 4 (tri 3/12), right view offset 0 (tri 1/12) -> 1/4; frame 5 mirrors it
    assert canvas[4].item() == pytest.approx(0.25) and canvas[5].item() == pytest.approx(0.75)


def test_merge_along_last_axis_for_image_latents():
    layout = ViewLayout.build(20, 8, stride=6, loop=True)
    canvas = torch.randn(1, 4, 5, 20)
    views = layout.crop(canvas, axis=-1)
    assert views.shape == (layout.num_views, 4, 5, 8)
    for weights in (average_weights(layout), swap_weights(layout), triangular_weights(layout)):
        assert torch.allclose(merge_views(views, layout, weights, axis=-1), canvas)


# --- Eq. 10 ----------------------------------------------------------------------------------------------------


def test_reference_mask_alternates_inside_the_middle_region_only():
    layout = ViewLayout.build(84, 32, stride=26)
    mask = reference_swap_mask(layout, ndim=4, axis=2, swap_axis=2, swap_axis_size=32, phase="local")[:, 0, :, 0]
    assert mask[0].tolist() == [False, True] * 13 + [False] * 6
    assert mask[1].tolist() == [False] * 6 + [False, True] * 10 + [False] * 6
    ref = torch.full((1, 1, 32, 2), 7.0)
    views = torch.zeros(3, 1, 32, 2)
    swapped = reference_swap(views, ref, mask[:, None, :, None])
    assert swapped[1, 0, :, 0].tolist() == [7.0 if m else 0.0 for m in mask[1].tolist()]


def test_reference_mask_phases_with_an_odd_overlap():
    layout = ViewLayout.build(79, 32, stride=24)  # starts 0, 24, 47: overlaps of 8 and 9 frames
    assert layout.starts == (0, 24, 47)
    masks = {phase: reference_swap_mask(layout, 4, 2, 2, 32, phase=phase)[:, 0, :, 0] for phase in REFERENCE_PHASES}
    odd = torch.arange(32) % 2 == 1
    middle = layout.middle
    assert torch.equal(masks["local"], middle & odd), "the same local frames in every view"
    assert torch.equal(masks["alternate"][1], middle[1] & ~odd), "a view's neighbours take the other frames"
    assert torch.equal(masks["alternate"][0::2], (middle & odd)[0::2])
    counted = middle.long().cumsum(1) - 1  # Eq. 9's index counted from the first middle frame
    assert torch.equal(masks["middle"], middle & (counted % 2 == 1))
    assert masks["middle"][2, 9 + 1] and not masks["local"][2, 9 + 1], "the phases differ after an odd overlap"
    with pytest.raises(ValueError, match="reference phase 'centre'"):
        reference_swap_mask(layout, 4, 2, 2, 32, phase="centre")


def test_reference_mask_swaps_whole_rows_for_images():
    layout = ViewLayout.build(84, 32, stride=26)
    mask = reference_swap_mask(layout, ndim=4, axis=3, swap_axis=2, swap_axis_size=4, interval=1, phase="local")
    assert mask.shape == (3, 1, 4, 32)
    assert mask[0, 0, :, 0].tolist() == [False, True, False, True]
    assert not mask[0, 0, :, 26:].any()


# --- the joint loop ---------------------------------------------------------------------------------------------


def toy_denoiser(calls):
    def denoise(x, t, ids):
        calls.append(x.shape[0])
        return 0.1 * x + 0.01 * torch.sin(x * 3.0)

    return denoise


def make_scheduler(steps=10):
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    scheduler.set_timesteps(steps)
    return scheduler


def run_loop(guide_steps, calls, view_batch_size=None, reference=True):
    torch.manual_seed(0)
    layout = ViewLayout.build(84, 32, stride=26)
    canvas, ref = torch.randn(1, 2, 84, 3), torch.randn(1, 2, 32, 3)
    mask = reference_swap_mask(layout, 4, 2, 2, 32, phase="local")
    joint = Joint(layout, 2, swap_weights(layout), guide_steps, mask, view_batch_size=view_batch_size)
    return joint_denoise(canvas, toy_denoiser(calls), make_scheduler(), joint, reference=ref if reference else None)


def test_reference_is_followed_only_during_the_guide_steps():
    calls = []
    run_loop(guide_steps=3, calls=calls)
    assert calls == [4, 4, 4] + [3] * 7


def test_without_guide_steps_safa_is_safa_star():
    a, b = [], []
    assert torch.equal(run_loop(0, a), run_loop(0, b, reference=False))
    assert not torch.equal(run_loop(3, []), run_loop(0, []))


def test_view_batch_size_bounds_each_model_call():
    """Calls of views 0-1 and 2 (batches fixed in view index); the reference does not fit beside views 0-1, so it
    takes a call of its own in the guided steps."""
    calls = []
    out = run_loop(guide_steps=3, calls=calls, view_batch_size=2)
    assert calls == [1, 2, 1] * 3 + [2, 1] * 7
    calls = []
    run_loop(guide_steps=3, calls=calls, view_batch_size=4)
    assert calls == [4] * 3 + [3] * 7, "with room in the first batch the reference rides in it"
    assert torch.allclose(out, run_loop(3, []), atol=1e-6)


@pytest.mark.parametrize("method", ["safa", "md", "md-tri"])
def test_a_batch_of_canvases_equals_each_canvas_alone(method):
    """Several takes in one call: each canvas keeps its own noise, reference and result, bit for bit."""
    from swapforward.core import METHODS, plan_joint

    layout = ViewLayout.build(84, 32, stride=26, loop=method == "safa")
    plan = plan_joint(METHODS[method], layout, 10, view_shape=(1, 2, 32, 3), axis=2, swap_axis=2, **PAPER)
    torch.manual_seed(1)
    canvases, refs = torch.randn(3, 2, 84, 3), torch.randn(3, 2, 32, 3)

    def run(canvas, ref, calls):
        joint = Joint(layout, 2, plan.weights, plan.guide_steps, plan.reference_mask)
        return joint_denoise(canvas, toy_denoiser(calls), make_scheduler(), joint, reference=ref)

    together_calls = []
    together = run(canvases, refs, together_calls)
    alone = [run(canvases[b : b + 1], refs[b : b + 1], []) for b in range(3)]
    assert together.shape == canvases.shape
    assert all(torch.equal(together[b : b + 1], alone[b]) for b in range(3))
    views = layout.num_views * 3
    assert together_calls[0] == views + (3 if plan.guide_steps else 0) and together_calls[-1] == views


def test_the_plan_guides_the_first_steps_of_safa_only():
    from swapforward.core import METHODS, plan_joint

    layout = ViewLayout.build(84, 32, stride=26)
    safa = plan_joint(METHODS["safa"], layout, 200, view_shape=(1, 8, 32, 16), axis=2, swap_axis=2, **PAPER)
    assert safa.guide_steps == 60 and safa.reference_mask.shape == (3, 1, 32, 1)
    assert torch.equal(safa.weights, swap_weights(layout))
    star = plan_joint(METHODS["safa-selfloop"], layout, 200, view_shape=(1, 8, 32, 16), axis=2, swap_axis=2, **PAPER)
    assert star.guide_steps == 0 and star.reference_mask is None
    one = plan_joint(METHODS["safa"], ViewLayout.build(20, 32, stride=26), 200, view_shape=(1, 8, 20, 16), axis=2,
                     swap_axis=2, **PAPER)
    assert one.guide_steps == 0, "one view is the plain model"
    image = plan_joint(METHODS["safa"], ViewLayout.build(26, 8, stride=6), 50, view_shape=(1, 4, 8, 8), axis=3,
                       swap_axis=2, **PAPER)
    assert image.guide_steps == 15 and image.reference_mask.shape == (4, 1, 8, 8)


def test_a_callback_may_replace_the_canvas():
    layout = ViewLayout.build(84, 32, stride=26)
    seen = []

    def zero_after_first(k, t, canvas):
        seen.append(canvas.abs().sum().item())
        return torch.zeros_like(canvas) if k == 0 else None

    joint_denoise(torch.randn(1, 2, 84, 3), toy_denoiser([]), make_scheduler(3), Joint(layout, 2, swap_weights(layout)),
                  callback=zero_after_first)
    assert seen[0] > 0 and seen[1] == 0.0


def test_joint_loop_leaves_the_callers_scheduler_untouched():
    scheduler = DPMSolverMultistepScheduler()
    scheduler.set_timesteps(10)
    layout = ViewLayout.build(40, 32, stride=26)
    joint_denoise(torch.randn(1, 1, 40, 2), toy_denoiser([]), scheduler, Joint(layout, 2, swap_weights(layout)))
    assert scheduler.step_index is None and all(m is None for m in scheduler.model_outputs)


# --- tiled decoding ----------------------------------------------------------------------------------------------


def conv_decoder():
    """A local decoder (3-tap convolution, then x4 nearest upsampling) whose exact circular output is known."""
    kernel = torch.tensor([[[0.25, 0.5, 0.25]]])

    def decode(x):
        return torch.nn.functional.conv1d(x, kernel, padding=1).repeat_interleave(4, dim=-1)

    def circular(x):
        padded = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
        return torch.nn.functional.conv1d(padded, kernel).repeat_interleave(4, dim=-1)

    return decode, circular


def test_tiled_decoding_of_one_tile_is_a_single_plain_call():
    decode, _ = conv_decoder()
    x = torch.randn(1, 1, 16)
    assert torch.equal(decode_tiled(x, decode, axis=-1, out_axis=-1, factor=4, tile=16, overlap=4), decode(x))


def test_tiled_decoding_matches_whole_decoding_away_from_the_ends():
    decode, _ = conv_decoder()
    x = torch.randn(1, 1, 100)
    tiled = decode_tiled(x, decode, axis=-1, out_axis=-1, factor=4, tile=16, overlap=4)
    assert tiled.shape == (1, 1, 400)
    assert torch.allclose(tiled, decode(x), atol=1e-6)


def test_looped_tiled_decoding_is_circular():
    decode, circular = conv_decoder()
    x = torch.randn(1, 1, 100)
    tiled = decode_tiled(x, decode, axis=-1, out_axis=-1, factor=4, tile=16, overlap=4, loop=True)
    assert torch.allclose(tiled, circular(x), atol=1e-6)
    rolled = decode_tiled(x.roll(37, -1), decode, axis=-1, out_axis=-1, factor=4, tile=16, overlap=4, loop=True)
    assert torch.allclose(rolled, tiled.roll(37 * 4, -1), atol=1e-6)


def decode_tiled_in_one_buffer(
    latents: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    *,
    axis: int,
    out_axis: int,
    factor: int,
    tile: int,
    overlap: int,
    loop: bool = False,
) -> torch.Tensor:
    """The tiled decoder as it was before it streamed: the whole output summed in one buffer (the oracle)."""
    axis = axis % latents.ndim
    length = latents.shape[axis]
    overlap = min(overlap, max(0, tile - 1))
    pad = min(overlap, length) if loop else 0
    if pad:
        latents = torch.cat(
            [latents.narrow(axis, length - pad, pad), latents, latents.narrow(axis, 0, pad)], dim=axis
        )
    total = latents.shape[axis]
    starts = tiling.tile_starts(total, tile, overlap)
    if len(starts) == 1:
        out = decode(latents)
        out_axis = out_axis % out.ndim
    else:
        out = None
        weight = latents.new_zeros(total * factor, dtype=torch.float32)
        for i, start in enumerate(starts):
            size = min(tile, total)
            piece = decode(latents.narrow(axis, start, size))
            out_axis = out_axis % piece.ndim
            piece = piece.narrow(out_axis, 0, size * factor)
            fade_in = (starts[i - 1] + size - start) * factor if i > 0 else 0
            fade_out = (start + size - starts[i + 1]) * factor if i + 1 < len(starts) else 0
            w = tiling._ramp(size * factor, fade_in, fade_out).to(weight)
            shape = [1] * piece.ndim
            shape[out_axis] = size * factor
            if out is None:
                full = list(piece.shape)
                full[out_axis] = total * factor
                out = piece.new_zeros(full)
            out.narrow(out_axis, start * factor, size * factor).add_(piece * w.to(piece.dtype).view(shape))
            weight.narrow(0, start * factor, size * factor).add_(w)
        shape = [1] * out.ndim
        shape[out_axis] = total * factor
        out = out / weight.to(out.dtype).view(shape)
    if pad:
        out = out.narrow(out_axis, pad * factor, length * factor)
    return out


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("length,tile,overlap,factor", [(100, 16, 4, 4), (37, 8, 7, 3), (64, 16, 2, 1), (9, 16, 4, 4),
                                                        (16, 16, 4, 2), (17, 16, 15, 5), (250, 32, 4, 8)])
def test_streamed_tiles_join_to_the_one_buffer_decode_bit_for_bit(loop, length, tile, overlap, factor):
    from swapforward.core.tiling import decode_tiled_chunks

    torch.manual_seed(length * tile + overlap)
    kernel = torch.randn(factor, 2, 3)

    def decode(x):  # (1, 2, n) -> (1, 1, n * factor), each frame depending on its neighbours
        y = torch.nn.functional.conv1d(x, kernel, padding=1)
        return y.transpose(1, 2).reshape(1, 1, -1)

    x = torch.randn(1, 2, length)
    expected = decode_tiled_in_one_buffer(x, decode, axis=-1, out_axis=-1, factor=factor, tile=tile, overlap=overlap,
                                          loop=loop)
    chunks = list(decode_tiled_chunks(x, decode, axis=-1, out_axis=-1, factor=factor, tile=tile, overlap=overlap,
                                      loop=loop))
    assert torch.equal(torch.cat(chunks, dim=-1), expected)
    assert torch.equal(decode_tiled(x, decode, axis=-1, out_axis=-1, factor=factor, tile=tile, overlap=overlap,
                                    loop=loop), expected)
    if length > 2 * tile:
        assert max(c.shape[-1] for c in chunks) <= tile * factor, "no piece larger than a tile: memory stays flat"
