"""Decoding a long latent in overlapping tiles along one axis, without seams and, when looping, circularly.

A VAE decoder (with attention in its mid block) or a vocoder cannot take minutes of latent at once; tiles
of `tile` input frames, `overlap` frames apart, are decoded one at a time and cross-faded linearly over their
overlaps (dropping each tile's outermost frames). With `loop`, the input is padded circularly by `overlap` frames
on both ends before tiling and the padding is cut from the output, so the decoder sees the wrap-around context and
the output's end joins its start. An input no longer than one tile (and not looping) is decoded in a single call,
exactly as the base pipeline does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` frames, `tile - overlap` apart, the last aligned to the end."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _fade(length: int) -> torch.Tensor:
    """Rising cross-fade weights over an overlap of `length` frames.

    The outer quarter is 0 (a tile's edge frames see the decoder's zero padding, so they are dropped), the middle
    half rises linearly, the last quarter is 1. The mirrored fade of the neighbouring tile sums with it to > 0.
    """
    margin = length // 4
    ramp = (torch.arange(length - 2 * margin) + 0.5) / (length - 2 * margin)
    return torch.cat([torch.zeros(margin), ramp, torch.ones(margin)])


def _ramp(size: int, fade_in: int, fade_out: int) -> torch.Tensor:
    """A tile's weights: fading in over its first `fade_in` frames and out over its last `fade_out`."""
    w = torch.ones(size)
    if fade_in:
        w[:fade_in] = _fade(fade_in)
    if fade_out:
        w[size - fade_out :] = torch.minimum(w[size - fade_out :], _fade(fade_out).flip(0))
    return w


def decode_tiled(
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
    """Apply `decode` (input frames -> `factor` output frames each, along the axes given) tile by tile."""
    chunks = list(decode_tiled_chunks(latents, decode, axis=axis, out_axis=out_axis, factor=factor, tile=tile,
                                      overlap=overlap, loop=loop))
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=out_axis % chunks[0].ndim)


def decode_tiled_chunks(
    latents: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    *,
    axis: int,
    out_axis: int,
    factor: int,
    tile: int,
    overlap: int,
    loop: bool = False,
) -> Iterator[torch.Tensor]:
    """`decode_tiled`'s output in order, a piece per tile: the frames before the next tile's start are final once a
    tile is added, so only about one tile of output is held at a time (hours of audio stream to a file). Each frame
    is summed and divided exactly as in one buffer, so the pieces joined are the whole output bit for bit."""
    axis = axis % latents.ndim
    length = latents.shape[axis]
    overlap = min(overlap, max(0, tile - 1))
    pad = min(overlap, length) if loop else 0
    if pad:
        latents = torch.cat(
            [latents.narrow(axis, length - pad, pad), latents, latents.narrow(axis, 0, pad)], dim=axis
        )
    total = latents.shape[axis]
    starts = tile_starts(total, tile, overlap)
    if len(starts) == 1:
        out = decode(latents)
        yield out.narrow(out_axis % out.ndim, pad * factor, length * factor) if pad else out
        return
    first, last = pad * factor, (pad + length) * factor  # the output without the loop's padding
    held: torch.Tensor | None = None  # sums of output frames [base, base + held's length)
    weight = latents.new_zeros(0, dtype=torch.float32)
    base = 0
    for i, start in enumerate(starts):
        size = min(tile, total)
        piece = decode(latents.narrow(axis, start, size))
        out_axis = out_axis % piece.ndim
        piece = piece.narrow(out_axis, 0, size * factor)
        fade_in = (starts[i - 1] + size - start) * factor if i > 0 else 0
        fade_out = (start + size - starts[i + 1]) * factor if i + 1 < len(starts) else 0
        w = _ramp(size * factor, fade_in, fade_out).to(weight)
        shape = [1] * piece.ndim
        shape[out_axis] = size * factor
        end = (start + size) * factor
        grow = end - base - (0 if held is None else held.shape[out_axis])
        if grow > 0:
            zeros = list(piece.shape)
            zeros[out_axis] = grow
            held = piece.new_zeros(zeros) if held is None else torch.cat([held, piece.new_zeros(zeros)], out_axis)
            weight = torch.cat([weight, weight.new_zeros(grow)])
        held.narrow(out_axis, start * factor - base, size * factor).add_(piece * w.to(piece.dtype).view(shape))
        weight.narrow(0, start * factor - base, size * factor).add_(w)
        done = (starts[i + 1] if i + 1 < len(starts) else total) * factor  # no later tile reaches before here
        count = done - base
        shape[out_axis] = count
        final = held.narrow(out_axis, 0, count) / weight[:count].to(held.dtype).view(shape)
        lo, hi = max(first, base) - base, min(last, done) - base
        if hi > lo:
            yield final.narrow(out_axis, lo, hi - lo)
        held, weight, base = held.narrow(out_axis, count, held.shape[out_axis] - count), weight[count:], done
