"""One-line summaries of a result, shared by the command line, batch jobs and the web app."""

from __future__ import annotations

from typing import Any


def views_summary(result: Any) -> str:
    """'6 views (+1 reference for 15 of 50 steps), looping; 115 model calls'."""
    info = result.info
    references = info.get("references", 1)
    guided = (f" (+{references} reference{'s' if references > 1 else ''} for {info['guide_steps']} of "
              f"{info['steps']} steps)") if info["guide_steps"] else ""
    looping = ", looping" if result.layout.loop else ""
    views = f"{result.layout.num_views} view{'s' if result.layout.num_views > 1 else ''}"
    return f"{views}{guided}{looping}; {result.model_calls} model calls"


def seed_summary(result: Any) -> str:
    """'seed 5', or '' when the run had no seed (a caller's generator)."""
    seed = result.info.get("seed")
    return "" if seed is None else f"seed {seed}"
