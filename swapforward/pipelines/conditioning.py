"""Text conditioning for every row the denoiser sees: the views of every canvas, then their reference views.

Each distinct prompt (with its negative prompt) is encoded once. A view takes its segment's conditioning, or with a
blend the segments' mixed by its share of each; a reference view takes its segment's. Rows are addressed by their
position within their canvas's block of a step's batch (its n views, then its R references), which travels with
them, so that the batches the denoiser is called with can mix views of different prompts and canvases and still be
conditioned each by its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Conditioning:
    """The encoded prompts and, for each row of a step's batch, which of them (or which mixture) conditions it."""

    def __init__(
        self,
        encoded: Sequence[dict[str, torch.Tensor]],
        view_mix: torch.Tensor,
        reference_prompt: torch.Tensor,
    ):
        """`encoded`: one adapter conditioning per distinct prompt ([negative, positive] rows with guidance);
        `view_mix` (n, P) each view's weights over the prompts; `reference_prompt` (R,) each reference's prompt."""
        self.tables = _stacked(encoded)
        self.guidance_rows = next(iter(encoded[0].values())).shape[0]
        self.view_mix = view_mix
        self.view_prompt = view_mix.argmax(1)
        self.view_blended = (view_mix.max(1).values < 1).tolist()
        self.reference_prompt = reference_prompt
        self.views = view_mix.shape[0]

    @classmethod
    def single(cls, encoded: dict[str, torch.Tensor], views: int) -> Conditioning:
        """One prompt for every view and reference."""
        return cls([encoded], torch.ones(views, 1), torch.zeros(1, dtype=torch.long))

    def rows(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The conditioning of the batch rows `ids` (positions within their canvas's block: views 0 .. n-1, then
        references n ..), laid out as the adapters' `denoise` takes it: every row's negative, then every positive."""
        ids = ids.cpu()
        is_view = ids < self.views
        reference = (ids - self.views).clamp(min=0, max=len(self.reference_prompt) - 1)
        prompt = torch.where(is_view, self.view_prompt[ids.clamp(max=self.views - 1)], self.reference_prompt[reference])
        blended = [i for i, row in enumerate(ids.tolist()) if row < self.views and self.view_blended[row]]
        out = {}
        for key, table in self.tables.items():
            picked = table[prompt.to(table.device)]  # (rows, guidance rows, ...)
            if blended:
                weights = self.view_mix[ids[blended]].to(table.device)
                picked[blended] = _mix(table, weights)
            out[key] = picked.transpose(0, 1).reshape(-1, *table.shape[2:])
        return out


def _mix(table: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(rows, guidance rows, ...) mixtures of the prompts' tables: weighted means of embeddings; for attention masks
    and other integer tensors, the union (max) over the prompts the row has a share of."""
    if table.is_floating_point():
        return torch.einsum("rp,p...->r...", weights.to(table.dtype), table)
    return torch.stack([table[row > 0].amax(0) for row in weights])


def _stacked(encoded: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{key: (prompts, guidance rows, ...)}, sequences of different lengths (T5 tokens) zero-padded to the longest,
    which their attention masks (zero-padded too) leave out."""
    tables = {}
    for key in encoded[0]:
        values = [e[key] for e in encoded]
        longest = max(v.shape[1] for v in values) if values[0].ndim > 1 else None
        if longest is not None and any(v.shape[1] != longest for v in values):
            values = [_pad(v, longest) for v in values]
        tables[key] = torch.stack(values)
    return tables


def _pad(value: torch.Tensor, length: int) -> torch.Tensor:
    padding = [0, 0] * (value.ndim - 2) + [0, length - value.shape[1]]
    return F.pad(value, padding)
