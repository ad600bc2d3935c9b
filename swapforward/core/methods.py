"""The joint-diffusion methods as data: each carries its merge weights, whether it follows a reference view, its
panorama overlap, the options it uses, what it cannot do (timelines, several processes) and its baseline plug-in.
Code asks a method instead of comparing names, so a new method is one `Method` and a `register` call.

Plain data, importable without torch (the command line lists the methods without loading it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .layout import ViewLayout

#: Where the reference-guided swap's alternation starts in each view (`merge.reference_swap_mask` implements them).
REFERENCE_PHASES = ("local", "middle", "alternate")

Weights = Callable[..., "torch.Tensor"]


@dataclass(frozen=True)
class Method:
    """A joint-diffusion method."""

    name: str
    merge: str | Weights
    """A merge operator of `merge.MERGE_WEIGHTS` by name ("swap", "average", "triangular"), or a function
    (layout, swap_interval, tail_shift) -> (views, window) weights of Eq. 4."""
    reference: bool
    """Whether it follows a reference view in its first steps (Eq. 10)."""
    summary: str
    panorama_overlap: float = 0.8
    """Its panorama overlap when none is given (the paper's Table 3: 0.2 for SaFa, 0.8 for the baselines)."""
    options: tuple[str, ...] = ()
    """The method-specific options it uses (others' are refused when given with it)."""
    plugin: str | None = None
    """"module:function" making its baseline plug-in (request, steps, layout, lpips) -> Baseline or None."""
    one_prompt: bool = False
    """It conditions every view alike, so it takes no timeline of several prompts."""
    shareable: bool = True
    """It can split its views among several processes."""
    guidance: str = "swap"
    """How it follows the reference view: Eq. 10's swap ("swap") or the envelope guidance ("envelope",
    `envelope.envelope_guidance`, this project's own)."""

    @property
    def swaps(self) -> bool:
        """Whether its merge copies every frame from one view (the Self-Loop Swap) rather than mixing views."""
        return self.merge == "swap"

    def weights(self, layout: ViewLayout, swap_interval: int = 1, tail_shift: int = 0) -> torch.Tensor:
        """Per-view merge weights W_i of Eq. 4."""
        from .merge import MERGE_WEIGHTS

        weights = MERGE_WEIGHTS[self.merge] if isinstance(self.merge, str) else self.merge
        return weights(layout, swap_interval, tail_shift)

    def plugin_for(self, request: Any, steps: int, layout: ViewLayout, lpips: Any) -> Any:
        """Its baseline plug-in for a run (MAD's merged attention, SyncDiffusion's gradient), or None."""
        if self.plugin is None:
            return None
        module, name = self.plugin.split(":")
        return getattr(importlib.import_module(module), name)(request, steps, layout, lpips)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make `method` available by name everywhere (the pipelines, the command line's checks, the app)."""
    METHODS[method.name] = method
    return method


SWAP_OPTIONS = ("swap_interval", "tail_shift")
for _method in (
    Method("safa", "swap", True, "SaFa: Self-Loop Latent Swap + Reference-Guided Latent Swap (the paper)",
           panorama_overlap=0.2, options=("r_guide", *SWAP_OPTIONS, "reference_phase")),
    Method("safa-selfloop", "swap", False, "SaFa*: Self-Loop Latent Swap only, no reference view",
           panorama_overlap=0.2, options=SWAP_OPTIONS),
    Method("md-envelope", "triangular", True, "MD* + the reference's spectral envelope in the first steps (this "
           "project's own, not the paper's; keeps styles that differ in spectrum, shifting their mix, not a free "
           "rhythm across views nor channel covariance: docs/lab.md)", panorama_overlap=0.2,
           options=("r_guide", "envelope_share"), guidance="envelope"),
    Method("md", "average", False, "MultiDiffusion: average the overlaps"),
    Method("md-tri", "triangular", False, "MD*: MultiDiffusion with triangular window weights"),
    Method("mad", "average", False, "MAD: attention over the whole canvas in the first steps, then MD",
           options=("mad_ratio",), plugin="swapforward.baselines.mad:plugin", one_prompt=True, shareable=False),
    Method("syncd", "average", False, "SyncDiffusion: LPIPS gradient toward the middle view, then MD",
           options=("sync_weight", "sync_decay", "sync_ratio"), plugin="swapforward.baselines.syncdiffusion:plugin",
           one_prompt=True, shareable=False),
):
    register(_method)


def get_method(name: str) -> Method:
    method = METHODS.get(str(name).lower())
    if method is None:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}.")
    return method
