"""Device, dtype and memory: `auto` means CUDA with fp16 when there is a GPU, else CPU with fp32."""

from __future__ import annotations

import os

import torch

from .errors import SwapForwardError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SwapForwardError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SwapForwardError(f"Device {device!r} was asked for but this machine has no CUDA GPU; use cpu or auto.")
    return resolved


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise SwapForwardError(f"Unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def available_memory_bytes() -> int:
    """Host memory available now (MemAvailable), or the physical total where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


#: Scheduler names accepted by the CLI and `with_scheduler` -> diffusers class name.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def make_scheduler(name: str, config: dict):
    """A diffusers scheduler of the named kind, configured like the model's own (betas, prediction type)."""
    import diffusers

    if name not in SCHEDULERS:
        raise SwapForwardError(f"Unknown scheduler {name!r}; use default, {', '.join(SCHEDULERS)}.")
    return getattr(diffusers, SCHEDULERS[name]).from_config(config)
