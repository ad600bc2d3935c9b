"""Tiny model folders to try every command offline: each family's diffusers pipeline with random weights, built from
configs in code (tests/tiny_pipelines.py) and saved as a local model folder that `--model` takes.

    python scripts/tiny_models.py tiny                     # tiny/audioldm, tiny/audioldm2, tiny/sd, ... (12 MB)
    python scripts/tiny_models.py tiny audioldm sd         # only these
    swapforward audio "rain" --model tiny/audioldm --seconds 2 --window-seconds 0.064 --steps 4 --out rain.wav
    swapforward stream "rain" --model tiny/audioldm --window-seconds 1.024 --steps 1 --out - | ffplay -nodisp -

They make noise, not sound: their weights are random. Their views are short (the audio ones are trained, so to
speak, on 10.24 s at 2 ms frames: pass --window-seconds to keep a run small on a CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: Folder name -> the builder in tests/tiny_pipelines.py.
FAMILIES = {
    "audioldm": "tiny_audioldm_pipeline", "audioldm2": "tiny_audioldm2_pipeline",
    "stable-audio": "tiny_stable_audio_pipeline", "stable-audio-3": "tiny_stable_audio_3_pipeline",
    "longcat-audio": "tiny_longcat_audio_pipeline", "ace-step": "tiny_ace_step_pipeline",
    "sd": "tiny_sd_pipeline", "sdxl": "tiny_sdxl_pipeline", "sd3": "tiny_sd3_pipeline", "flux": "tiny_flux_pipeline",
    "z-image-turbo": "tiny_z_image_pipeline", "qwen-image": "tiny_qwen_image_pipeline",
    "flux2-klein": "tiny_flux2_klein_pipeline",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    folder, names = Path(argv[0]), argv[1:] or list(FAMILIES)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        print(f"error: unknown family {unknown[0]!r}; choose from {', '.join(FAMILIES)}.", file=sys.stderr)
        return 2
    import tiny_pipelines

    for name in names:
        pipe = getattr(tiny_pipelines, FAMILIES[name])()
        pipe.save_pretrained(folder / name)
        print(f"{folder / name}: {type(pipe).__name__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
