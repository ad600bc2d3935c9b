"""The joint-diffusion methods: which merge operator each uses and whether it follows a reference view.

Plain data, importable without torch (the command line lists the methods without loading it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .layout import ViewLayout


@dataclass(frozen=True)
class Method:
    """A joint-diffusion method: a merge operator for overlaps, plus the reference-guided swap or not."""

    name: str
    merge: str
    reference: bool
    summary: str
    merged_attention: bool = False
    gradient_sync: bool = False

    def weights(self, layout: ViewLayout, swap_interval: int = 1, tail_shift: int = 0) -> torch.Tensor:
        """Per-view merge weights W_i of Eq. 4 for this method's operator."""
        from .merge import average_weights, swap_weights, triangular_weights

        if self.merge == "swap":
            return swap_weights(layout, swap_interval, tail_shift)
        if self.merge == "triangular":
            return triangular_weights(layout)
        return average_weights(layout)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("safa", "swap", True, "SaFa: Self-Loop Latent Swap + Reference-Guided Latent Swap (the paper)"),
        Method("safa-selfloop", "swap", False, "SaFa*: Self-Loop Latent Swap only, no reference view"),
        Method("md", "average", False, "MultiDiffusion: average the overlaps"),
        Method("md-tri", "triangular", False, "MD*: MultiDiffusion with triangular window weights"),
        Method("mad", "average", False, "MAD: attention over the whole canvas in the first steps, then MD",
               merged_attention=True),
        Method("syncd", "average", False, "SyncDiffusion: LPIPS gradient toward the middle view, then MD",
               gradient_sync=True),
    )
}

#: Where the reference-guided swap's alternation starts in each view (see `merge.reference_swap_mask`).
REFERENCE_PHASES = ("local", "middle", "alternate")


def get_method(name: str) -> Method:
    method = METHODS.get(str(name).lower())
    if method is None:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}.")
    return method
