"""Batch generation from a JSON Lines or CSV file of jobs, resumable and spread over processes (one GPU each).

Every process started by `accelerate launch` (or `torchrun`) reads the whole file and takes the jobs whose index
modulo the number of processes is its rank (RANK / WORLD_SIZE / LOCAL_RANK from the environment), on GPU
LOCAL_RANK when there is one. A job whose output file already exists is skipped: outputs are written atomically,
so an existing file is a complete one, and an interrupted run resumes where it stopped. A failing job is reported
and the others go on.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SwapForwardError

DEFAULT_MODELS = {"audio": "cvssp/audioldm-s-full-v2", "panorama": "stabilityai/stable-diffusion-2-base"}

#: Job fields -> (type, pipeline argument), per kind; `prompt`, `out`, `kind` and `model` are handled apart.
AUDIO_FIELDS = {
    "seconds": (float, "audio_length_in_s"),
    "window_seconds": (float, "window_seconds"),
}
PANORAMA_FIELDS = {
    "width": (int, "width"),
    "height": (int, "height"),
    "view_width": (int, "view_width"),
}
COMMON_FIELDS = {
    "method": (str, "method"),
    "seed": (int, "seed"),
    "loop": (bool, "loop"),
    "steps": (int, "num_inference_steps"),
    "guidance": (float, "guidance_scale"),
    "negative_prompt": (str, "negative_prompt"),
    "overlap": (float, "overlap"),
    "r_guide": (float, "r_guide"),
    "swap_interval": (int, "swap_interval"),
    "tail_shift": (int, "tail_shift"),
    "view_batch_size": (int, "view_batch_size"),
    "mad_ratio": (float, "mad_ratio"),
}


@dataclass
class Job:
    """One line of the jobs file: what to generate and where to write it."""

    index: int
    kind: str
    prompt: str
    out: Path
    model: str
    arguments: dict[str, Any] = field(default_factory=dict)


def _convert(name: str, kind: type, value: Any) -> Any:
    if kind is bool and isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "y"):
            return True
        if value.strip().lower() in ("0", "false", "no", "n", ""):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None


def parse_job(index: int, record: dict[str, Any], base: Path) -> Job:
    """A job from one record; raises ValueError with one sentence for a bad record."""
    record = {k.strip(): v for k, v in record.items() if k is not None and v not in (None, "")}
    kind = str(record.pop("kind", "audio")).strip().lower()
    if kind not in DEFAULT_MODELS:
        raise ValueError(f"kind must be audio or panorama, got {kind!r}")
    prompt, out = record.pop("prompt", None), record.pop("out", None)
    if not prompt or not out:
        raise ValueError("every job needs a prompt and an out path")
    fields = {**COMMON_FIELDS, **(AUDIO_FIELDS if kind == "audio" else PANORAMA_FIELDS)}
    model = str(record.pop("model", DEFAULT_MODELS[kind]))
    arguments = {}
    for name, value in record.items():
        if name not in fields:
            raise ValueError(f"unknown field {name!r} for a {kind} job; known: {', '.join(sorted(fields))}")
        kind_of, argument = fields[name]
        arguments[argument] = _convert(name, kind_of, value)
    out_path = Path(out).expanduser()
    return Job(index, kind, str(prompt), out_path if out_path.is_absolute() else base / out_path, model, arguments)


def load_jobs(path: str | os.PathLike) -> tuple[list[Job], list[tuple[int, str]]]:
    """(jobs, [(line index, reason), ...] for the records that are not valid jobs) from a .jsonl or .csv file."""
    path = Path(path)
    if not path.is_file():
        raise SwapForwardError(f"Jobs file {str(path)!r} does not exist.")
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise SwapForwardError(f"Jobs file {str(path)!r} must be JSON Lines (.jsonl) or CSV (.csv).")
    records: list[Any] = []
    with open(path, newline="") as f:
        if path.suffix.lower() == ".csv":
            records = list(csv.DictReader(f))
        else:
            for line in f:
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    records.append(ValueError(f"not valid JSON ({error.msg})"))
    jobs, invalid = [], []
    for index, record in enumerate(records):
        try:
            if isinstance(record, Exception):
                raise record
            if not isinstance(record, dict):
                raise ValueError("a job must be a JSON object")
            jobs.append(parse_job(index, record, path.parent))
        except ValueError as error:
            invalid.append((index, str(error)))
    seen: dict[Path, int] = {}
    for job in jobs:
        other = seen.setdefault(job.out.resolve(), job.index)
        if other != job.index:
            raise SwapForwardError(f"Jobs {other} and {job.index} both write {str(job.out)!r}; give each its own out.")
    return jobs, invalid


def process_slot() -> tuple[int, int, str | None]:
    """(rank, number of processes, device) of this process under accelerate launch / torchrun, else (0, 1, None)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = None
    import torch

    if world > 1 and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    return rank, world, device


@dataclass
class BatchReport:
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def run_jobs(
    jobs: list[Job],
    rank: int = 0,
    world: int = 1,
    device: str | None = None,
    dtype: str = "auto",
    compile: bool = False,
    on_job: Callable[[Job, str, str], None] | None = None,
) -> BatchReport:
    """Run this process's share of `jobs`, loading each model once; `on_job(job, status, detail)` after each.

    With `compile`, each model's denoiser is compiled once when it is loaded (see `JointPipeline.compile`).
    """
    from .audio import LongAudioPipeline
    from .panorama import PanoramaPipeline

    pipelines: dict[tuple[str, str], Any] = {}
    report = BatchReport()
    for job in jobs:
        if job.index % world != rank:
            continue
        if job.out.exists():
            report.skipped.append(job.index)
            if on_job:
                on_job(job, "skipped", "output exists")
            continue
        start = time.perf_counter()
        try:
            key = (job.kind, job.model)
            if key not in pipelines:
                cls = LongAudioPipeline if job.kind == "audio" else PanoramaPipeline
                pipelines[key] = cls.from_pretrained(job.model, device=device, torch_dtype=dtype, compile=compile)
            result = pipelines[key](job.prompt, progress_bar=False, **job.arguments)
            job.out.parent.mkdir(parents=True, exist_ok=True)  # evaluation sets nest folders per method and prompt
            result.save(job.out)
        except SwapForwardError as error:
            report.failed.append((job.index, str(error)))
            if on_job:
                on_job(job, "failed", str(error))
            continue
        except Exception as error:  # a crash in one job must not stop the others
            detail = f"{type(error).__name__}: {error}".splitlines()[0]
            report.failed.append((job.index, detail))
            if on_job:
                on_job(job, "failed", detail)
            continue
        report.done.append(job.index)
        if on_job:
            on_job(job, "done", f"{time.perf_counter() - start:.1f} s")
    return report
