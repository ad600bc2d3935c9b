"""Saving a long run's state every N steps, and resuming it to the same bytes (`--save-state`, `--resume`).

A state file holds the loop's state (canvas, reference view, both schedulers' state, the step reached), the random
generators' states, the model-call counts and what the run was asked for (every option, the seed, the model and
the library's version). Resuming redoes the set-up exactly as the first run did (the same seeded generators draw
the same noise), then puts the saved state in place and continues: on the same device and software the result
equals an uninterrupted run bit for bit. A state file is a pickle: resume only from files you wrote.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.sampler import Joint, LoopState, assembled
from ..errors import SwapForwardError
from ..io.files import write_atomic

FORMAT = "swapforward-run-state/1"


@dataclass
class RunState:
    """What a state file holds."""

    asked: dict[str, Any]
    """The run's settings: every option of its request, the seed, the model and the library's version."""
    loop: LoopState
    generators: list[torch.Tensor]
    counts: tuple[int, int, int]
    """Model calls, view evaluations and the largest call so far."""


def generator_list(generator: Any) -> list[torch.Generator]:
    return [] if generator is None else list(generator) if isinstance(generator, list) else [generator]


#: Schedulers whose state is the same for every view (no history of model outputs per view): a run's state saved
#: by several processes keeps one copy of them, and resumes with any number of processes.
ROW_STATELESS = ("DDIMScheduler", "DDPMScheduler", "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler")


def row_stateless(scheduler: Any) -> bool:
    return type(scheduler).__name__ in ROW_STATELESS


class StateSaver:
    """An `on_state` hook that writes the run's state to `path` (atomically) after every `every`-th step. With
    several processes (`joint.exchange`) every process takes part (the canvas is gathered, the counts summed) and the
    first writes the file, keeping one scheduler copy (the run's scheduler keeps no history per view)."""

    def __init__(self, path: str | os.PathLike, every: int, asked: dict[str, Any], generator: Any, count: Any,
                 joint: Joint | None = None):
        if not generator_list(generator):
            raise SwapForwardError("Saving a run's state needs a seed or a generator, so that a resumed run draws the "
                                   "same noise.")
        self.path, self.every, self.asked, self.joint = Path(path), every, asked, joint
        self.generators, self.count = generator_list(generator), count

    def __call__(self, state: LoopState) -> None:
        if state.position % self.every:
            return
        canvas, schedulers, counts = state.canvas, state.view_schedulers, (self.count.calls, self.count.evaluations)
        exchange = self.joint.exchange if self.joint is not None else None
        if exchange is not None:
            canvas = assembled(state.canvas, self.joint)
            counts = tuple(exchange.total(*counts))
            schedulers = [state.view_schedulers[self.joint.owned[exchange.rank][0]]]
            if exchange.rank != 0:
                return
        data = {"format": FORMAT, "asked": self.asked, "position": state.position, "done": state.done,
                "canvas": canvas, "reference": state.reference, "view_scheduler": schedulers,
                "ref_scheduler": state.ref_scheduler, "generators": [g.get_state() for g in self.generators],
                "counts": (*counts, self.count.largest)}
        write_atomic(self.path, lambda tmp: torch.save(data, tmp))


def load_state(path: str | os.PathLike, device: torch.device | str = "cpu") -> RunState:
    """A state file written by `StateSaver`; one sentence if it is missing or not one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SwapForwardError(f"Cannot resume from {str(path)!r}: no such file.")
    try:
        data = torch.load(path, map_location=device, weights_only=False)  # the user's own file (see above)
    except Exception:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SwapForwardError(f"Cannot resume from {str(path)!r}: it is not a state file written by --save-state.")
    schedulers = data["view_scheduler"]  # one per segment; a single one in files written before segments
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    loop = LoopState(data["position"], data["done"], data["canvas"], data["reference"], schedulers,
                     data["ref_scheduler"])
    return RunState(data["asked"], loop, data["generators"], tuple(data["counts"]))


def check_resumable(state: RunState, asked: dict[str, Any], path: str | os.PathLike,
                    label: Callable[[str], str] = str) -> None:
    """One sentence naming the first setting in which the run asked for differs from the saved one (by `label`:
    the command line's flag); a state of the other kind (audio or panorama) is said to be one."""
    saved, wanted = ("audio" if "audio_length_in_s" in values else "panorama" for values in (state.asked, asked))
    if saved != wanted:
        article = {"audio": "an", "panorama": "a"}
        raise SwapForwardError(f"Cannot resume from {str(path)!r}: it is the state of {article[saved]} {saved} run, "
                               f"and this is {article[wanted]} {wanted} run.")
    for key in sorted(set(state.asked) | set(asked)):
        if state.asked.get(key) != asked.get(key):
            raise SwapForwardError(
                f"Cannot resume from {str(path)!r}: it was saved with {label(key)} {state.asked.get(key)!r}, this run "
                f"has {label(key)} {asked.get(key)!r}; resume with the same settings."
            )


def restore_generators(generator: Any, states: list[torch.Tensor]) -> None:
    for g, saved in zip(generator_list(generator), states, strict=True):
        g.set_state(saved.cpu() if isinstance(saved, torch.Tensor) else saved)
