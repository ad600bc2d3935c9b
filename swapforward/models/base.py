"""The adapter interface: the little that the joint loop needs from a diffusers text-to-audio pipeline.

An adapter says which latent axis is long, how long one latent frame is, how to encode a prompt, how to run
the denoiser (with classifier-free guidance) on a batch of views, and how to decode a long latent. New model
families (Stable Audio Open's 1-D latent and DiT, the image models) plug in by implementing these members.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch


class AudioAdapter(ABC):
    """Wraps a loaded diffusers pipeline; the pipeline itself stays usable and unchanged."""

    #: Latent axis along which views are laid out (time).
    long_axis: int = -2
    #: Length of audio the model was trained on, the default view length.
    trained_window_seconds: float = 10.24

    def __init__(self, pipe: Any):
        self.pipe = pipe

    @property
    def scheduler(self) -> Any:
        return self.pipe.scheduler

    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""

    @property
    @abstractmethod
    def frame_samples(self) -> int:
        """Audio samples per latent frame along the long axis."""

    @abstractmethod
    def latent_shape(self, frames: int) -> tuple[int, ...]:
        """Shape of a batch-1 latent `frames` long."""

    @abstractmethod
    def encode_prompt(self, prompt: str, negative_prompt: str | None, guidance: bool) -> dict[str, torch.Tensor]:
        """Text conditioning, [negative, positive] rows when `guidance`; passed back to `denoise`."""

    @abstractmethod
    def denoise(
        self, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], guidance_scale: float
    ) -> torch.Tensor:
        """Model output for a batch of views, with classifier-free guidance when `cond` has two rows."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, window: int, loop: bool) -> tuple[np.ndarray, np.ndarray]:
        """Long latent -> (waveform float32 (channels, samples), spectrogram float32 (frames, bins))."""
