"""Write the job files that reproduce the paper's comparisons, and print the commands that run and score them.

    python scripts/reproduce_paper.py audio --samples 500 --out paper-audio
    python scripts/reproduce_paper.py panorama --samples 500 --out paper-pano

Audio (Table 2): every method makes 24 s of looped audio from three 10.24 s views at overlap 0.2, 200 DDIM steps,
guidance 3.5; the reference set is the base model's own 10.24 s clips (one view). Panoramas (Table 3): 512 x 3200
from 512 x 640 views, 50 DDIM steps, guidance 7.5, overlap 0.2 for SaFa and 0.8 for the others; the reference set is
the base model's 512 x 512 images. Then `swapforward batch` makes every file (resumable, one GPU per process) and
`swapforward eval` scores each method's folder against the reference folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The audio prompts the paper's appendix shows in full (its Figs. 14-17); pass --prompts for the complete nine.
AUDIO_PROMPTS = [
    "The audience's enthusiastic and passionate cheers and loud whistles in the stadium",
    "Low fidelity audio from a live performance featuring a solo direct input acoustic guitar strumming airy, "
    "suspended open chords. Also present are occasional ambient sounds, perhaps papers being shuffled.",
    "The instrumental music features an ensemble that resembles the orchestra. The melody is being played by a brass "
    "section while strings provide harmonic accompaniment.",
    "This instrumental song features a flute playing a high pitched melody. This song has a relaxing mood.",
]
# The six panorama prompts shared by MultiDiffusion, SyncDiffusion, MAD and the SaFa paper.
PANORAMA_PROMPTS = [
    "A photo of a city skyline at night",
    "A photo of a mountain range at twilight",
    "A photo of a snowy mountain peak with skiers",
    "A photo of a forest with a misty fog",
    "Natural landscape in anime style illustration",
    "A photo of a grassland with animals",
]
AUDIO_METHODS = ["safa", "safa-selfloop", "md", "md-tri", "mad"]
PANORAMA_METHODS = ["safa", "safa-selfloop", "md", "mad", "syncd"]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())[:40].strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["audio", "panorama"])
    parser.add_argument("--samples", type=int, default=500, help="samples per prompt and method (the paper: 500)")
    parser.add_argument("--out", type=Path, default=Path("paper-eval"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=Path, default=None, help="a text file, one prompt per line")
    args = parser.parse_args()
    audio = args.kind == "audio"
    prompts = args.prompts.read_text().splitlines() if args.prompts else (AUDIO_PROMPTS if audio else PANORAMA_PROMPTS)
    model = args.model or ("cvssp/audioldm-s-full-v2" if audio else "stabilityai/stable-diffusion-2-base")
    ext = "wav" if audio else "png"
    jobs = []
    for p, prompt in enumerate(prompts):
        for n in range(args.samples):
            if audio:
                base = {"prompt": prompt, "model": model, "seed": n, "steps": 200, "guidance": 3.5}
                jobs.append({**base, "out": f"reference/{p}/{n:04d}.{ext}", "seconds": 10.24, "method": "md"})
                for method in AUDIO_METHODS:
                    jobs.append({**base, "out": f"{method}/{p}/{n:04d}.{ext}", "seconds": 24, "loop": True,
                                 "method": method, "overlap": 0.2})
            else:
                base = {"kind": "panorama", "prompt": prompt, "model": model, "seed": n, "steps": 50, "guidance": 7.5,
                        "height": 512}
                jobs.append({**base, "out": f"reference/{p}/{n:04d}.{ext}", "width": 512, "method": "md"})
                for method in PANORAMA_METHODS:
                    overlap = 0.2 if method.startswith("safa") else 0.8
                    jobs.append({**base, "out": f"{method}/{p}/{n:04d}.{ext}", "width": 3200, "view_width": 640,
                                 "method": method, "overlap": overlap})
    args.out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        (args.out / job["out"]).parent.mkdir(parents=True, exist_ok=True)
    jobs_file = args.out / "jobs.jsonl"
    jobs_file.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    print(f"wrote {len(jobs)} jobs to {jobs_file}\n")
    print(f"accelerate launch -m swapforward batch {jobs_file}")
    methods = AUDIO_METHODS if audio else PANORAMA_METHODS
    for p, prompt in enumerate(prompts):
        for method in methods:
            print(f"swapforward eval {args.out}/{method}/{p} --kind {args.kind} --reference {args.out}/reference/{p} "
                  f"--prompt {json.dumps(prompt)} --out {args.out}/{method}_{p}.json "
                  f"--markdown {args.out}/{method}_{p}.md")


if __name__ == "__main__":
    main()
