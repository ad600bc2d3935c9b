"""`swapforward batch`: job files, resuming, failures, and two processes sharing the work."""

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from swapforward import SwapForwardError
from swapforward.frontends.batch import load_jobs
from swapforward.frontends.cli import app

runner = CliRunner()


def write_jobs(path, model_dir, sd_dir, count=5, bad=True):
    jobs = []
    for i in range(count):
        if i % 2:
            jobs.append({"kind": "panorama", "prompt": f"forest {i}", "out": f"out/pano/p{i}.png", "model": sd_dir,
                         "width": 128, "height": 64, "view_width": 64, "steps": 2, "seed": i})
        else:
            jobs.append({"prompt": f"rain {i}", "out": f"out/a{i}.wav", "model": model_dir, "seconds": 0.1,
                         "window_seconds": 0.064, "steps": 2, "seed": i, "loop": i == 2})
    if bad:  # valid as a job, but fails on the model: its tail shift is not shorter than its window
        jobs.append({"prompt": "wind", "out": "out/bad.wav", "model": model_dir, "seconds": 0.1, "tail_shift": 40,
                     "window_seconds": 0.064, "steps": 2})
    path.write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    return jobs


def test_jobs_from_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text("prompt,out,seconds,loop,kind\nrain,a.wav,12.5,true,audio\nsea,b.png,,,panorama\n")
    jobs = load_jobs(csv_path)
    assert [j.kind for j in jobs] == ["audio", "panorama"]
    assert jobs[0].request.audio_length_in_s == 12.5 and jobs[0].request.loop is True
    assert jobs[0].out == tmp_path / "a.wav" and jobs[1].request.overlap == 0.2
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"prompt": "x", "out": "x.wav"}\nnot json\n{"prompt": "y"}\n{"prompt": "z", "out": "z.wav", '
                     '"colour": 1}\n{"prompt": "w", "out": "w.wav", "seconds": -1}\n')
    with pytest.raises(SwapForwardError) as info:
        load_jobs(jsonl)
    message = str(info.value)
    assert message.startswith("4 of 5 jobs in") and "so none was run" in message and "\n" not in message
    assert "job 1: not valid JSON" in message
    assert "job 2: every job needs a prompt (or a timeline) and an out path" in message
    assert "job 3: unknown field 'colour'" in message and "job 4: seconds must be a finite number > 0" in message


def test_a_job_can_set_every_option_the_command_line_can():
    from swapforward.frontends.batch import job_fields
    from swapforward.frontends.cli import generation_flags
    from swapforward.frontends.registry import KINDS

    for kind in KINDS.values():
        # the device is the process's; a job resumes from its save_state file by itself
        flags = {p.name for p in generation_flags(kind)} - {"device", "resume"}
        assert flags <= set(job_fields(kind.name)), flags - set(job_fields(kind.name))
        assert {"sync_weight", "sync_decay", "sync_ratio", "mad_ratio", "eta"} <= set(job_fields(kind.name))


def test_a_csv_with_a_bad_header_names_what_it_found_and_needs(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("text,file\nrain,a.wav\n")
    with pytest.raises(SwapForwardError, match=re.escape("has the columns text, file; it needs prompt (or timeline) "
                                                         "and out, and may also")):
        load_jobs(path)


def test_bad_jobs_are_refused_before_any_model_loads(tiny_model_dir, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"prompt": "rain", "out": "a.wav", "model": tiny_model_dir, "seconds": 0.1}) + "\n"
                    + json.dumps({"prompt": "wind", "out": "b.wav", "method": "nope"}) + "\n")
    result = runner.invoke(app, ["batch", str(path)])
    assert result.exit_code == 2 and "job 1: Unknown method 'nope'" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["jobs.jsonl"]


def test_duplicate_outputs_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"prompt": "a", "out": "x.wav"}\n{"prompt": "b", "out": "x.wav"}\n')
    with pytest.raises(SwapForwardError, match="Jobs 0 and 1 both write"):
        load_jobs(path)
    with pytest.raises(SwapForwardError, match="does not exist"):
        load_jobs(tmp_path / "none.jsonl")


def test_batch_runs_resumes_and_reports_failures(tiny_model_dir, tiny_sd_dir, tmp_path):
    path = tmp_path / "jobs.jsonl"
    write_jobs(path, tiny_model_dir, tiny_sd_dir, count=3)
    first = runner.invoke(app, ["batch", str(path)])
    assert first.exit_code == 1, first.output
    assert "3 done, 0 skipped, 1 failed" in first.stdout
    assert "job 3 FAILED" in first.stderr and "tail_shift must be smaller than the window" in first.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a0.wav", "a2.wav", "pano"], "output folders are made"
    assert os.listdir(tmp_path / "out" / "pano") == ["p1.png"]
    again = runner.invoke(app, ["batch", str(path)])
    assert "0 done, 3 skipped, 1 failed" in again.stdout


def test_two_processes_share_the_jobs_exactly_once(tiny_model_dir, tiny_sd_dir, tmp_path):
    path = tmp_path / "jobs.jsonl"
    write_jobs(path, tiny_model_dir, tiny_sd_dir, count=5)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "swapforward",
               "batch", str(path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    output = first.stdout + first.stderr
    done = sorted(int(i) for i in re.findall(r"job (\d+) done", output))
    assert done == [0, 1, 2, 3, 4], output
    assert re.findall(r"job (\d+) FAILED", output) == ["5"]
    assert {"[1/2]", "[2/2]"} <= set(re.findall(r"\[\d/2\]", output))
    assert first.returncode != 0  # a failed job makes the run fail, after all the others are done
    assert "all processes: 5 done, 0 skipped, 1 failed" in first.stdout
    assert len([f for f in (tmp_path / "out").rglob("*") if f.is_file()]) == 5
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert re.findall(r"job (\d+) done", again.stdout + again.stderr) == []
    assert sorted(int(i) for i in re.findall(r"job (\d+) skipped", again.stdout)) == [0, 1, 2, 3, 4]
