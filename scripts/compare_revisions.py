"""The same requests, with the same seeds, through this checkout and an earlier revision, in one run on this machine:
do the outputs match byte for byte? (A refactor must not change them; stored bytes from another machine prove
nothing, so both sides run here.)

    python scripts/compare_revisions.py REV     # e.g. f24e154
    python scripts/compare_revisions.py REV --time 60   # also the time of one 60 s tiny-AudioLDM run on each side
                                                        # (one thread, alternating sides, the best of three)

The revision is checked out with `git worktree` into a temporary folder and imported by a child process; the tiny
pipelines of tests/tiny_pipelines.py are built from this checkout for both sides, so the models are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (kind, pipeline builder, request) run on both sides.
CASES = [
    ("audio", "tiny_audioldm_pipeline", dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=6)),
    ("audio", "tiny_audioldm_pipeline", dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=6,
                                             loop=True, method="md-tri")),
    ("audio", "tiny_audioldm_pipeline", dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=6,
                                             eta=0.7, num_waveforms_per_prompt=2)),
    ("audio", "tiny_audioldm_pipeline", dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=6,
                                             init_audio="clip", init_sample_rate=16000, repaint_resample=1)),
    ("audio", "tiny_audioldm2_pipeline", dict(audio_length_in_s=0.3, window_seconds=0.064, num_inference_steps=6,
                                              reference_phase="alternate")),
    ("audio", "tiny_stable_audio_pipeline", dict(audio_length_in_s=0.1, num_inference_steps=4, method="md")),
    ("panorama", "tiny_sd_pipeline", dict(height=64, width=256, view_width=64, num_inference_steps=4)),
    ("panorama", "tiny_sdxl_pipeline", dict(height=64, width=256, view_width=64, num_inference_steps=4,
                                            method="mad")),
    ("panorama", "tiny_sd3_pipeline", dict(height=64, width=256, view_width=64, num_inference_steps=4, loop=True)),
]

CHILD = r"""
import hashlib, json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import tiny_pipelines
from swapforward import LongAudioPipeline, PanoramaPipeline
torch.set_num_threads(2)
out = []
for kind, builder, options in json.loads(sys.argv[2]):
    pipe = getattr(tiny_pipelines, builder)()
    if options.get("init_audio") == "clip":
        options["init_audio"] = (np.sin(np.arange(2400) / 7) * 0.3).astype(np.float32)
    cls = LongAudioPipeline if kind == "audio" else PanoramaPipeline
    result = cls.from_pipe(pipe)("rain on a roof" if kind == "audio" else "a lake", seed=3, progress_bar=False,
                                 **options)
    data = result.audio if kind == "audio" else result.array
    takes = [t.audio if kind == "audio" else t.array for t in result.takes]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in takes)).hexdigest()[:16]
    out.append(digest)
print(json.dumps(out))
"""


TIMED = r"""
import sys, time
import torch
sys.path.insert(0, sys.argv[1])
import tiny_pipelines
from swapforward import LongAudioPipeline
torch.set_num_threads(1)
pipe = LongAudioPipeline.from_pipe(tiny_pipelines.tiny_audioldm_pipeline())
options = dict(audio_length_in_s=float(sys.argv[2]), window_seconds=0.256, num_inference_steps=4, seed=0,
               progress_bar=False)
pipe("rain", **{**options, "num_inference_steps": 1})
start = time.perf_counter()
pipe("rain", **options)
print(time.perf_counter() - start)
"""


def time_side(source: str, seconds: float) -> float:
    env = {**os.environ, "PYTHONPATH": source, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", TIMED, os.path.join(ROOT, "tests"), str(seconds)], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return float(done.stdout.strip().splitlines()[-1])


def run_side(source: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": source, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, os.path.join(ROOT, "tests"), json.dumps(CASES)], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    arguments = sys.argv[1:]
    timed = float(arguments.pop(arguments.index("--time") + 1)) if "--time" in arguments else None
    if timed is not None:
        arguments.remove("--time")
    revision = arguments[0] if arguments else "HEAD"
    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        tree = os.path.join(folder, "tree")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, revision], check=True,
                       capture_output=True)
        try:
            before = run_side(tree)
            for _ in range(3 if timed else 0):
                times["before"].append(time_side(tree, timed))
                times["after"].append(time_side(ROOT, timed))
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=True)
    after = run_side(ROOT)
    print(f"| case | {revision} | this checkout | equal |\n| --- | --- | --- | --- |")
    for (_, builder, options), a, b in zip(CASES, before, after, strict=True):
        shown = ", ".join(f"{k}={v}" for k, v in options.items() if k not in ("init_sample_rate",))
        print(f"| {builder}: {shown} | {a} | {b} | {'yes' if a == b else 'NO'} |")
    print(f"\n{sum(a == b for a, b in zip(before, after, strict=True))} of {len(CASES)} equal byte for byte")
    if timed:
        best = {side: min(values) for side, values in times.items()}
        print(f"\n| {timed:g} s of tiny AudioLDM, 4 steps, one thread | {revision} | this checkout | ratio |\n"
              f"| --- | --- | --- | --- |\n| best of 3, s | {best['before']:.2f} | {best['after']:.2f} | "
              f"{best['after'] / best['before']:.3f} |")


if __name__ == "__main__":
    main()
