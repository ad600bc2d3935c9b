"""Batch generation from a JSON Lines or CSV file of jobs, resumable and spread over processes (one GPU each).

A job's fields are the command line's: any option of `swapforward audio` or `panorama` by its flag's name (seconds,
steps, r_guide, sync_decay, ...), how to load its model (model, scheduler, dtype, compile), where to write (out,
and spectrogram for audio), and its kind. Every job is checked by the option specification when the file is read,
and a file with bad jobs is refused as a whole, naming each, before any model is loaded.

Every process started by `accelerate launch` (or `torchrun`) reads the whole file and takes its contiguous share of
the jobs (Accelerate's `split_between_processes`), on its own GPU when there is one; the counts are gathered at the
end (`gather_object`). A job whose output file already
exists is skipped: outputs are written atomically, so an existing file is a complete one, and an interrupted run
resumes where it stopped. A job that fails while running is reported and the others go on.
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

from ..errors import SwapForwardError
from ..options import LOAD, OUTPUT, RUN, Request
from .registry import KINDS

#: Fields every job has besides its kind's options.
REQUIRED = ("prompt", "out")
#: Loading options a job may set; the device is the process's.
JOB_LOAD = tuple(o for o in LOAD.options if o.name != "device")
#: A job with save_state resumes from that file by itself when it exists (and removes it once its output is written).
JOB_RUN = tuple(o for o in RUN.options if o.name != "resume")


def job_fields(kind: str) -> list[str]:
    """Every field a job of `kind` may have."""
    keys = [o.key for o in KINDS[kind].spec.options] + [o.key for o in JOB_LOAD]
    return ["kind", *keys, *(o.key for o in OUTPUT[kind].options), *(o.key for o in JOB_RUN)]


@dataclass
class Job:
    """One line of the jobs file: what to generate, with which model, and where to write it."""

    index: int
    kind: str
    request: Request
    load: Request
    output: Request
    run: Request

    @property
    def out(self) -> Path:
        return self.output.out


def parse_job(index: int, record: dict[str, Any], base: Path, defaults: Request) -> Job:
    """A job from one record (JSON values, or text from CSV); one sentence for a bad record."""
    record = {k.strip(): v for k, v in record.items() if k is not None and v not in (None, "")}
    kind = str(record.pop("kind", "audio")).strip().lower()
    if kind not in KINDS:
        raise SwapForwardError(f"kind must be audio or panorama, got {kind!r}")
    missing = [name for name in REQUIRED if name not in record and not (name == "prompt" and "timeline" in record)]
    if missing:
        raise SwapForwardError(f"every job needs a prompt (or a timeline) and an out path; this one has no "
                               f"{missing[0]}")
    fields = set(job_fields(kind))
    unknown = sorted(set(record) - fields)
    if unknown:
        article = "an" if kind == "audio" else "a"
        raise SwapForwardError(f"unknown field {unknown[0]!r} for {article} {kind} job; known: "
                               f"{', '.join(sorted(fields))}")
    spec, outputs = KINDS[kind].spec, OUTPUT[kind]
    for option in spec.options:  # input files, like outputs, are relative to the jobs file
        value = record.get(option.key)
        if option.type == "media" and isinstance(value, str) and value.strip() and not Path(value).is_absolute():
            record[option.key] = str(base / Path(value).expanduser())

    def share(keys: set[str]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k in keys}

    request = spec.check(share({o.key for o in spec.options}), "job")
    load_values = {o.key: defaults[o.name] for o in JOB_LOAD if defaults[o.name] is not None}
    load = LOAD.check({**load_values, **share({o.key for o in JOB_LOAD})}, "job")
    output = outputs.check(share({o.key for o in outputs.options}), "job")
    paths = {o.name: output[o.name] for o in outputs.options if o.type == "path" and output[o.name] is not None}
    output = output.replace(**{name: p if p.is_absolute() else base / p for name, p in paths.items()})
    from .common import check_fits, check_loudness, check_outputs, request_takes

    check_outputs(KINDS[kind], output, request_takes(request), make_folder=True)  # not after minutes of generating
    if kind == "audio":
        check_loudness(request, output, "loudness")
    check_fits(KINDS[kind], request, lambda name: spec[name].label("job"))
    run = RUN.check(share({o.key for o in JOB_RUN}), "job")
    if run.save_state is not None and not run.save_state.is_absolute():
        run = run.replace(save_state=base / run.save_state)
    return Job(index, kind, request, load, output, run)


def read_records(path: Path) -> list[Any]:
    """The records of a .jsonl or .csv jobs file (an exception in place of a line that is not a JSON object); one
    sentence for a file that is not UTF-8 text."""
    try:
        return _read_records(path)
    except UnicodeDecodeError:
        raise SwapForwardError(f"Jobs file {str(path)!r} is not UTF-8 text; give a .jsonl file (one JSON object a "
                               f"line) or a .csv file.") from None


def _read_records(path: Path) -> list[Any]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark is not a column
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            if "out" not in header or not {"prompt", "timeline"} & set(header):
                allowed = sorted(set(job_fields("audio")) | set(job_fields("panorama")))
                raise SwapForwardError(
                    f"Jobs file {str(path)!r} has the columns {', '.join(header) or '(none)'}; it needs prompt (or "
                    f"timeline) and out, and may also have {', '.join(allowed)}."
                )
            return list(reader)
    records: list[Any] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                record = SwapForwardError(f"not valid JSON ({error.msg})")
            records.append(record if isinstance(record, (dict, Exception)) else
                           SwapForwardError("a job must be a JSON object"))
    return records


def load_jobs(path: str | os.PathLike, defaults: Request | None = None) -> list[Job]:
    """Every job of a .jsonl or .csv file, checked; one sentence naming every bad job if there is any."""
    path = Path(path)
    if not path.is_file():
        raise SwapForwardError(f"Jobs file {str(path)!r} does not exist.")
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise SwapForwardError(f"Jobs file {str(path)!r} must be JSON Lines (.jsonl) or CSV (.csv).")
    defaults = defaults or LOAD.check({})
    jobs, bad = [], []
    records = read_records(path)
    if not records:
        how = "one row a job under the header" if path.suffix.lower() == ".csv" else "one JSON object a line"
        raise SwapForwardError(f"Jobs file {str(path)!r} has no jobs; write {how}.")
    for index, record in enumerate(records):
        try:
            if isinstance(record, Exception):
                raise record
            jobs.append(parse_job(index, record, path.parent, defaults))
        except SwapForwardError as error:
            bad.append(f"job {index}: {str(error).rstrip('.')}")
    if bad:
        listed = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
        total = len(jobs) + len(bad)
        raise SwapForwardError(f"{len(bad)} of {total} {'job' if total == 1 else 'jobs'} in {str(path)!r} "
                               f"{'is' if len(bad) == 1 else 'are'} not valid, so none was run: {listed}.")
    seen: dict[Path, int] = {}
    for job in jobs:
        other = seen.setdefault(job.out.resolve(), job.index)
        if other != job.index:
            raise SwapForwardError(f"Jobs {other} and {job.index} both write {str(job.out)!r}; give each its own out.")
    return jobs


def process_state() -> Any:
    """Accelerate's view of this process: its index, the number of processes and its device, under `accelerate
    launch` or `torchrun` (which set up the process group), or a single process."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())  # without GPUs, processes still share the jobs (gloo)


@dataclass
class BatchReport:
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def run_jobs(
    jobs: list[Job],
    device: str | None = None,
    on_job: Callable[[Job, str, str], None] | None = None,
    report: BatchReport | None = None,
) -> BatchReport:
    """Run `jobs` (this process's share), loading each model once; `on_job(job, status, detail)` after each. The
    output of a job is written whole or not at all: an interruption while it is written waits for the writing."""
    from ..runtime.signals import deferred
    from .common import in_their_words, load_model, save_result

    pipelines: dict[tuple, Any] = {}
    report = report if report is not None else BatchReport()
    for job in jobs:
        if job.out.exists():
            report.skipped.append(job.index)
            if on_job:
                on_job(job, "skipped", "output exists")
            continue
        start = time.perf_counter()
        try:
            key = (job.kind, *job.load.values())
            if key not in pipelines:
                pipelines[key] = load_model(KINDS[job.kind], job.load, device=device)
            state = job.run.save_state
            result = pipelines[key].generate(job.request, progress_bar=False, save_state=state,
                                             save_every=job.run.save_every,
                                             resume_from=state if state is not None and state.exists() else None)
            job.out.parent.mkdir(parents=True, exist_ok=True)  # evaluation sets nest folders per method and prompt
            with deferred():
                save_result(result, job.output, job.request)
                report.done.append(job.index)
                if state is not None:
                    state.unlink(missing_ok=True)
        except SwapForwardError as error:
            said = str(in_their_words(error, KINDS[job.kind], "job"))
            report.failed.append((job.index, said))
            if on_job:
                on_job(job, "failed", said)
            continue
        except Exception as error:  # a crash in one job must not stop the others
            detail = f"{type(error).__name__}: {error}".splitlines()[0]
            report.failed.append((job.index, detail))
            if on_job:
                on_job(job, "failed", detail)
            continue
        if on_job:
            on_job(job, "done", f"{time.perf_counter() - start:.1f} s")
    return report


def run_batch(jobs: list[Job], defaults: Request, echo: Callable[..., None]) -> int:
    """Run this process's share with a progress bar, print the counts (all processes' too), return the exit status:
    0, 1 if a job failed, 130 (Ctrl-C) or 143 (SIGTERM) if interrupted: the finished jobs are kept, the job in flight
    is written whole if it was being written, else not at all."""
    import sys

    from tqdm.auto import tqdm

    state = process_state()
    world, rank = state.num_processes, state.process_index
    device = str(state.device) if world > 1 and state.device.type == "cuda" else None
    device = device or (defaults.device if defaults.device != "auto" else None)
    tag = f"[{rank + 1}/{world}] " if world > 1 else ""
    with state.split_between_processes(jobs) as share:
        mine = list(share)
    bar = tqdm(total=len(mine), desc=f"{tag}jobs", unit="job")

    def on_job(job: Job, status: str, detail: str) -> None:
        bar.update(1)
        line = f"{tag}job {job.index} {status if status != 'failed' else 'FAILED'}: {job.out} ({detail})"
        tqdm.write(line, file=sys.stderr if status == "failed" else sys.stdout)

    report = BatchReport()
    try:
        with bar:
            run_jobs(mine, device=device, on_job=on_job, report=report)
    except KeyboardInterrupt as stop:  # `Interrupted` under the command line, which also handles SIGTERM
        echo(f"{tag}interrupted ({getattr(stop, 'name', 'SIGINT')}): {len(report.done)} finished job(s) were kept "
             f"whole, nothing of the job in flight was written.", err=True)
        echo(f"{tag}{len(report.done)} done, {len(report.skipped)} skipped, {len(report.failed)} failed")
        return getattr(stop, "status", 130)
    counts = [len(report.done), len(report.skipped), len(report.failed)]
    echo(f"{tag}{counts[0]} done, {counts[1]} skipped, {counts[2]} failed")
    if world > 1:  # wait for every process, so that no failure stops another's jobs, then agree on the total
        from accelerate.utils import gather_object

        counts = [sum(column) for column in zip(*gather_object([counts]), strict=True)]
        if rank == 0:
            echo(f"all processes: {counts[0]} done, {counts[1]} skipped, {counts[2]} failed")
        state.destroy_process_group()
    return 1 if counts[2] else 0
