"""Run by tests/test_memory.py, one fresh process per output (`python memory_grid.py KIND SIZE METHOD`): the host
memory a generation adds after the memory check (peak resident set, reset at the check) against what the check
counted. Prints one JSON line. `python memory_grid.py audio SECONDS METHOD TAKES STREAM_SAMPLES` runs several takes, and
streams every take longer than STREAM_SAMPLES to its file (the threshold lowered so that minutes show what hours do)."""

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from swapforward.pipelines import panorama  # noqa: E402
from swapforward.runtime import memory  # noqa: E402


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def main(kind: str, size: int, method: str, takes: int = 1, stream_samples: int = memory.STREAM_SAMPLES) -> None:
    from tiny_pipelines import tiny_audioldm_pipeline, tiny_sd_pipeline

    from swapforward import LongAudioPipeline, PanoramaPipeline

    torch.set_num_threads(1)
    memory.STREAM_SAMPLES = stream_samples
    seen = {}
    check = memory.check_host_memory

    def spy(label, value, units, unit_bytes, unit, step=1, **advice):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak resident set starts again from here
        seen.update(at=status("VmRSS"), counted=memory.WORKING_BYTES + units * unit_bytes)
        return check(label, value, units, unit_bytes, unit, step, **advice)

    memory.check_host_memory = panorama.check_host_memory = spy
    folder = Path(tempfile.mkdtemp())
    if kind == "audio":
        pipe = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())
        out = pipe("rain", audio_length_in_s=size, window_seconds=0.256, num_inference_steps=1,
                   method=method.removesuffix("-loop"), loop=method.endswith("-loop"), seed=0, progress_bar=False,
                   num_waveforms_per_prompt=takes)
        for number, take in enumerate(out.takes or [out]):
            take.save(folder / f"a{number}.flac")
            take.save_spectrogram(folder / f"a{number}.png")
    else:
        pipe = PanoramaPipeline.from_pipe(tiny_sd_pipeline())
        out = pipe("x", width=size, height=64, view_width=256, num_inference_steps=1, method=method, seed=0,
                   progress_bar=False)
        out.save(folder / "p.png")
    print(json.dumps({"kind": kind, "size": size, "method": method, "takes": takes,
                      "added": status("VmHWM") - seen["at"], "counted": seen["counted"]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:]))
