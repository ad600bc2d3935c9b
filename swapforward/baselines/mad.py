"""MAD, Merge-Attend-Diffuse (Quattrini et al., ECCV 2024): attention over the whole canvas, not per view.

As the authors' code does (aimagelab/MAD, `CrossViewsAttnProcessor2_0`), an attention processor replaces the
denoiser's own on every attention layer for the whole run. In cross-attention the views' queries are averaged onto
the canvas (at that layer's resolution), attended against the text once, and split back, on every step. In
self-attention the views' queries, keys and values are merged the same way and attended once over all canvas tokens
during the first `mad_ratio` of the steps (the authors' `mad_threshold`), and per view afterwards. The latents are
averaged as in MD. Views map onto a layer's grid by flooring their offsets by its downsampling
factor, as the MAD reference does; this is exact when offsets and canvas length are multiples of that factor.

For SD 3's MMDiT (joint attention over image and text tokens) the image tokens are merged the same way and the text
tokens, identical in every view of a guidance group, are attended once with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.layout import ViewLayout
from ..core.methods import METHODS
from ..errors import SwapForwardError
from ..options import listed
from . import Baseline, LoopContext


@dataclass(frozen=True)
class CanvasGeometry:
    """Where the views of a batch lie: the layout, the views' latent (rows, cols), and which of the two is long."""

    layout: ViewLayout
    view_hw: tuple[int, int]
    long_dim: int  # 0: rows (audio time), 1: columns (image width)
    patch: int = 1  # DiT patch size: tokens are patch x patch latent cells

    def level(self, tokens: int) -> tuple[int, int, int] | None:
        """(factor, rows, cols) of a layer whose views have `tokens` tokens, or None if it is not on the grid."""
        h0, w0 = self.view_hw[0] // self.patch, self.view_hw[1] // self.patch
        factor = round(math.sqrt(h0 * w0 / tokens))
        if factor < 1 or (h0 // factor) * (w0 // factor) != tokens:
            return None
        return factor * self.patch, h0 // factor, w0 // factor

    def rows(self, factor: int, size: int) -> tuple[torch.Tensor, int]:
        """(n, size) canvas positions of every view's tokens along the long axis at `factor`, and the canvas length."""
        starts = torch.tensor(self.layout.starts) // factor
        length = math.ceil(self.layout.length / factor) if self.layout.loop else int((starts + size).max())
        idx = starts[:, None] + torch.arange(size)[None, :]
        return (idx % length if self.layout.loop else idx), length


def merge_tokens(x: torch.Tensor, geometry: CanvasGeometry, factor: int, h: int, w: int) -> torch.Tensor:
    """(G * n, h * w, C) view tokens -> (G, canvas tokens, C), each canvas token the mean over the views covering it."""
    n = geometry.layout.num_views
    groups, channels = x.shape[0] // n, x.shape[-1]
    views = x.reshape(groups, n, h, w, channels)
    axis = 2 + geometry.long_dim  # in (G, n, h, w, C); the canvas drops the view axis
    size = views.shape[axis]
    idx, length = geometry.rows(factor, size)
    shape = [groups, h, w, channels]
    shape[1 + geometry.long_dim] = length
    total = x.new_zeros(shape)
    count = x.new_zeros(length)
    for i in range(n):
        total.index_add_(1 + geometry.long_dim, idx[i].to(x.device), views[:, i])
        count.index_add_(0, idx[i].to(x.device), torch.ones(size, dtype=x.dtype, device=x.device))
    count_shape = [1, 1, 1, 1]
    count_shape[1 + geometry.long_dim] = length
    return (total / count.view(count_shape)).reshape(groups, -1, channels)


def split_tokens(canvas: torch.Tensor, geometry: CanvasGeometry, factor: int, h: int, w: int) -> torch.Tensor:
    """(G, canvas tokens, C) -> (G * n, h * w, C): every view reads its own part of the canvas."""
    n = geometry.layout.num_views
    groups, channels = canvas.shape[0], canvas.shape[-1]
    size = (h, w)[geometry.long_dim]
    idx, length = geometry.rows(factor, size)
    shape = [groups, h, w, channels]
    shape[1 + geometry.long_dim] = length
    grid = canvas.reshape(shape)
    views = [grid.index_select(1 + geometry.long_dim, idx[i].to(canvas.device)) for i in range(n)]
    return torch.stack(views, 1).reshape(groups * n, h * w, channels)


def _heads(x: torch.Tensor, attn: Any) -> torch.Tensor:
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


class MergedAttentionProcessor:
    """MAD's attention for U-Net transformer blocks (diffusers `Attention`); other layers keep their processor.

    Cross-attention is always merged; self-attention only while `state["merge_self"]` is true (MAD's steps).
    """

    def __init__(self, original: Any, geometry: CanvasGeometry, state: dict | None = None):
        self.original = original
        self.geometry = geometry
        self.state = state if state is not None else {"merge_self": True}

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        level = self.geometry.level(hidden_states.shape[1]) if hidden_states.ndim == 3 else None
        n = self.geometry.layout.num_views
        plain = attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.shape[0] % n
        per_view_self = encoder_hidden_states is None and not self.state["merge_self"]
        if level is None or plain or per_view_self:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        factor, h, w = level
        residual = hidden_states
        query = merge_tokens(attn.to_q(hidden_states), self.geometry, factor, h, w)
        groups = query.shape[0]
        if encoder_hidden_states is None:  # self-attention: one attention over the whole canvas
            key = merge_tokens(attn.to_k(hidden_states), self.geometry, factor, h, w)
            value = merge_tokens(attn.to_v(hidden_states), self.geometry, factor, h, w)
            mask = None
        else:  # cross-attention: merged queries against the group's text (the same for all its views)
            context = encoder_hidden_states[::n]
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
            key, value = attn.to_k(context), attn.to_v(context)
            mask = None
            if attention_mask is not None:
                mask = attn.prepare_attention_mask(attention_mask, key.shape[1], hidden_states.shape[0])
                mask = mask.view(hidden_states.shape[0], attn.heads, -1, mask.shape[-1])[::n]
        query, key, value = _heads(query, attn), _heads(key, attn), _heads(value, attn)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(groups, -1, attn.heads * out.shape[-1]).to(query.dtype)
        out = split_tokens(out, self.geometry, factor, h, w)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class MergedJointAttentionProcessor:
    """MAD for SD 3's joint attention: image tokens merged onto the canvas, text tokens attended once per group.

    Joint attention is self- and cross-attention in one, and the authors' code has no MMDiT version: it is merged
    while `state["merge_self"]` is true (MAD's steps) and per view afterwards.
    """

    def __init__(self, original: Any, geometry: CanvasGeometry, state: dict | None = None):
        self.original = original
        self.geometry = geometry
        self.state = state if state is not None else {"merge_self": True}

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        n = self.geometry.layout.num_views
        level = self.geometry.level(hidden_states.shape[1])
        if level is None or encoder_hidden_states is None or hidden_states.shape[0] % n or not self.state["merge_self"]:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        factor, h, w = level
        image_tokens = []
        for project in (attn.to_q, attn.to_k, attn.to_v):
            image_tokens.append(merge_tokens(project(hidden_states), self.geometry, factor, h, w))
        context = encoder_hidden_states[::n]
        text_tokens = [attn.add_q_proj(context), attn.add_k_proj(context), attn.add_v_proj(context)]
        query, key, value = (_heads(t, attn) for t in image_tokens)
        text_q, text_k, text_v = (_heads(t, attn) for t in text_tokens)
        if attn.norm_q is not None:
            query, key = attn.norm_q(query), attn.norm_k(key)
        if attn.norm_added_q is not None:
            text_q, text_k = attn.norm_added_q(text_q), attn.norm_added_k(text_k)
        canvas_tokens = query.shape[2]
        out = F.scaled_dot_product_attention(
            torch.cat([query, text_q], 2), torch.cat([key, text_k], 2), torch.cat([value, text_v], 2)
        )
        groups = query.shape[0]
        out = out.transpose(1, 2).reshape(groups, -1, attn.heads * out.shape[-1]).to(query.dtype)
        image, text = out[:, :canvas_tokens], out[:, canvas_tokens:]
        image = attn.to_out[1](attn.to_out[0](split_tokens(image, self.geometry, factor, h, w)))
        if not attn.context_pre_only:
            text = attn.to_add_out(text)
        return image, text.repeat_interleave(n, dim=0)


@contextmanager
def merged_attention(denoiser: torch.nn.Module, geometry: CanvasGeometry, state: dict | None = None) -> Iterator[dict]:
    """Install MAD's processor on every attention layer of `denoiser`, and put the originals back afterwards.

    Yields the processors' shared state: set `state["merge_self"] = False` when MAD's self-attention steps end.
    """
    from diffusers.models.attention_processor import Attention

    state = state if state is not None else {"merge_self": True}
    originals = {m: m.processor for m in denoiser.modules() if isinstance(m, Attention)}
    try:
        for module, original in originals.items():
            joint = getattr(module, "add_q_proj", None) is not None
            processor_cls = MergedJointAttentionProcessor if joint else MergedAttentionProcessor
            module.processor = processor_cls(original, geometry, state)
        yield state
    finally:
        for module, original in originals.items():
            module.processor = original


class MergedAttention(Baseline):
    """MAD as a plug-in of the joint loop: cross-attention merged on every step, self-attention during its first
    `steps` steps, so all views go in one call."""

    one_call = "MAD attends over all views at once: ask for a shorter output or use another method."

    def __init__(self, steps: int):
        self.steps = steps
        self.state = {"merge_self": steps > 0}
        self._stack = ExitStack()

    def check(self, adapter: Any, scheduler: Any) -> None:
        if not adapter.supports_merged_attention:
            raise SwapForwardError(
                f"MAD is not available for {type(adapter.pipe).__name__}: its attention applies rotary positions "
                f"inside each view; use {listed([m for m in METHODS if m not in ('mad', 'syncd')])}."
            )

    def running(self, loop: LoopContext) -> ExitStack:
        shape = loop.view_shape
        long_dim = 0 if loop.axis % len(shape) == len(shape) - 2 else 1
        geometry = CanvasGeometry(loop.layout, (int(shape[-2]), int(shape[-1])), long_dim, loop.adapter.patch_size)
        self._stack.enter_context(merged_attention(loop.adapter.denoiser_module, geometry, self.state))
        return self._stack

    def after_step(self, k: int) -> None:
        if k + 1 >= self.steps:
            self.state["merge_self"] = False  # MAD's steps are over: self-attention per view again


def plugin(request: Any, steps: int, layout: Any, lpips: Any) -> MergedAttention:
    """MAD's plug-in for a run: cross-attention is merged on every step, even with mad_ratio 0 (the authors' code)."""
    return MergedAttention(round(request.mad_ratio * steps))
