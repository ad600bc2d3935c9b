"""Ordering takes by how well they match their prompt: CLAP similarity for audio, CLIP score for images, with the
evaluation's models (from the weights cache; `swapforward weights` fetches them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..prompts import words

Scorer = Callable[[list[Any], str], list[float]]

#: The cache entry each ranking needs.
RANK_WEIGHTS = {"clap": "clap-htsat-unfused", "clip": "clip-vit-base-patch16"}


def rank_takes(takes: list[Any], request: Any, scorer: Scorer) -> list[Any]:
    """`takes` best first by `scorer(takes, prompt text)`; each take's score goes in its info["score"]."""
    scores = [float(s) for s in scorer(takes, words(request.prompt))]
    for take, score in zip(takes, scores, strict=True):
        take.info["score"] = score
    order = sorted(range(len(takes)), key=lambda i: -scores[i])
    return [takes[i] for i in order]


def default_scorer(rank: str, device: torch.device | str = "cpu") -> Scorer:
    """CLAP (audio) or CLIP (images) similarity to the prompt; one sentence naming `swapforward weights` when the
    model is not in the cache."""
    from .features import load_clap, load_clip, resample

    if rank == "clap":
        audio_embed, text_embed = load_clap(str(device))

        def clap(takes: list[Any], prompt: str) -> list[float]:
            waves = [resample(take.audio.mean(0), take.sample_rate, 48000) for take in takes]
            return list(_cosines(audio_embed(waves), text_embed(prompt)))

        return clap
    image_embed, text_embed = load_clip(str(device))

    def clip(takes: list[Any], prompt: str) -> list[float]:
        images = torch.stack([torch.from_numpy(take.array).permute(2, 0, 1) for take in takes])
        return list(100 * np.maximum(_cosines(image_embed(images), text_embed(prompt)), 0))

    return clip


def _cosines(embeddings: np.ndarray, text: np.ndarray) -> np.ndarray:
    embeddings = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
    text = text.reshape(-1) / np.linalg.norm(text)
    return embeddings @ text
