"""CPU time of a 3-view SaFa run per model family against one window of the family's own diffusers pipeline.

Tiny, randomly initialised components of each family's real architecture (tests/tiny_pipelines.py), so the numbers
say what the joint loop costs around a model (views, reference, merges, decoding) relative to the base pipeline, not
how fast the released models run (benchmarks/gpu_targets.py and the GPU issue measure those). Each timing is the
median of `--repeat` runs, both sides in this one process, at the family's default steps.

    python benchmarks/families.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests"))
import tiny_pipelines as tiny  # noqa: E402

from swapforward import LongAudioPipeline, PanoramaPipeline  # noqa: E402

#: family -> (tiny builder, window, 3-view length, base pipeline's keyword arguments for one window).
AUDIO = {
    "Stable Audio 3 (distilled)": (tiny.tiny_stable_audio_3_pipeline, tiny.TINY_SA3_WINDOW_S,
                                   {"duration": tiny.TINY_SA3_WINDOW_S}),
    "LongCat-AudioDiT": (tiny.tiny_longcat_audio_pipeline, tiny.TINY_LONGCAT_WINDOW_S,
                         {"audio_duration_s": tiny.TINY_LONGCAT_WINDOW_S}),
    "ACE-Step 1.5 (turbo)": (tiny.tiny_ace_step_pipeline, 0.64, {"audio_duration": 0.64, "guidance_scale": 1.0}),
}
IMAGE = {
    "FLUX.1 dev": tiny.tiny_flux_pipeline,
    "Z-Image": tiny.tiny_z_image_pipeline,
    "Qwen-Image": tiny.tiny_qwen_image_pipeline,
    "FLUX.2 klein (base)": tiny.tiny_flux2_klein_pipeline,
}


def median_seconds(run, repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def audio_row(name: str, build, window: float, base_kwargs: dict, repeat: int) -> str:
    pipe = build()
    long = LongAudioPipeline.from_pipe(pipe)
    seconds = window * 2.6  # three views at overlap 0.2
    out = long("rain on a roof", audio_length_in_s=seconds, window_seconds=window, seed=0, progress_bar=False)
    base = median_seconds(lambda: pipe("rain on a roof", generator=torch.Generator().manual_seed(0),
                                       num_inference_steps=out.info["steps"], **base_kwargs), repeat)
    joint = median_seconds(lambda: long("rain on a roof", audio_length_in_s=seconds, window_seconds=window, seed=0,
                                        progress_bar=False), repeat)
    return (f"| {name} | {out.info['steps']} | {base * 1e3:.0f} ms | {joint * 1e3:.0f} ms | {joint / base:.2f}x | "
            f"{out.info['view_evaluations']} ({out.layout.num_views} views) |")


def image_row(name: str, build, repeat: int) -> str:
    pipe = build()
    pano = PanoramaPipeline.from_pipe(pipe)
    prompt = "a photo of the dolomites"
    out = pano(prompt, height=64, width=160, view_width=64, seed=0, progress_bar=False)
    steps, guidance = out.info["steps"], pano.resolve(pano.spec.check({"prompt": "x"})).guidance_scale
    extra = ({"true_cfg_scale": guidance, "negative_prompt": " "} if name == "Qwen-Image"
             else {"guidance_scale": guidance})
    base = median_seconds(lambda: pipe(prompt=prompt, height=64, width=64, num_inference_steps=steps,
                                       generator=torch.Generator().manual_seed(0), **extra), repeat)
    joint = median_seconds(lambda: pano(prompt, height=64, width=160, view_width=64, seed=0, progress_bar=False),
                           repeat)
    return (f"| {name} | {steps} | {base * 1e3:.0f} ms | {joint * 1e3:.0f} ms | {joint / base:.2f}x | "
            f"{out.info['view_evaluations']} ({out.layout.num_views} views) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    print("| family | steps | one window, base pipeline | 3 views, SaFa | ratio | view evaluations |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (build, window, base_kwargs) in AUDIO.items():
        print(audio_row(name, build, window, base_kwargs, args.repeat))
    for name, build in IMAGE.items():
        print(image_row(name, build, args.repeat))


if __name__ == "__main__":
    main()
