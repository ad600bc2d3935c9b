"""Device, dtype and scheduler by name: `auto` means CUDA (fp16), then Apple's MPS, then the CPU (fp32)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..errors import SwapForwardError
from ..options import DTYPE_NAMES, SCHEDULER_CHOICES, SCHEDULER_CLASSES

DTYPES = {name: getattr(torch, canonical) for name, canonical in DTYPE_NAMES.items()}


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device named, or for "auto" the best one here: CUDA, then MPS (Apple silicon), then the CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SwapForwardError(f"Unknown device {device!r}; use auto, cpu, mps, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SwapForwardError(f"Device {device!r} was asked for but this machine has no CUDA GPU; use cpu or auto.")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise SwapForwardError(
            f"Device {device!r} does not exist; this machine has {torch.cuda.device_count()} CUDA GPU(s)."
        )
    if resolved.type == "mps" and not mps_available():
        raise SwapForwardError(f"Device {device!r} was asked for but MPS is not available here; use cpu or auto.")
    return resolved


logger = logging.getLogger("swapforward")


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """The dtype named, or for "auto" fp16 on CUDA and fp32 elsewhere; half precision on the CPU is allowed with a
    note (logged), since it runs several times slower there than fp32."""
    resolved = _dtype(dtype, device)
    if device.type == "cpu" and resolved in (torch.float16, torch.bfloat16):
        logger.warning(f"{str(resolved).split('.')[-1]} on the CPU runs several times slower than float32 "
                       f"(about 4x for the tiny models here); use dtype float32 (or auto) unless you need it.")
    return resolved


def _dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise SwapForwardError(f"Unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def check_scheduler_name(name: str) -> str:
    if name not in SCHEDULER_CHOICES:
        raise SwapForwardError(f"Unknown scheduler {name!r}; use {', '.join(SCHEDULER_CHOICES)}.")
    return name


def make_scheduler(name: str, current: Any) -> Any:
    """The scheduler to sample with, configured like the model's own `current` one (betas, prediction type).

    "default" keeps the model's scheduler; "paper" is the SaFa paper's DDIM, except for models whose scheduler has no
    DDPM noise schedule (SD 3's flow matching, Stable Audio's cosine DPM-Solver), which keep their own; "ddim",
    "dpm", "euler" and "unipc" name a diffusers scheduler (DDPM-type models only).
    """
    import diffusers

    check_scheduler_name(name)
    ddpm_type = hasattr(current, "alphas_cumprod")
    if name == "default" or (name == "paper" and not ddpm_type):
        return current
    if not ddpm_type:
        raise SwapForwardError(
            f"This model samples with {type(current).__name__}, which has no DDPM noise schedule to configure "
            f"{name!r} from; use scheduler default or paper."
        )
    kind = "ddim" if name == "paper" else name
    return getattr(diffusers, SCHEDULER_CLASSES[kind]).from_config(current.config)
