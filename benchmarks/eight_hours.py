"""Eight hours of seamless loop through the command line, streamed to FLAC, on a tiny model of AudioLDM's geometry.

    python benchmarks/eight_hours.py                 # 28,800 s, 2 steps, SaFa, loop
    python benchmarks/eight_hours.py --seconds 3600 --steps 2

Builds an AudioLDM pipeline with random weights whose shapes are the released checkpoint's where they set the
cost of length (16 kHz, 64 mel bins, 160-sample hop, VAE factor 4: 40 ms latent frames of 8 x 16, 10.24 s views
of 256 frames) and a few channels elsewhere, saves it as a model folder, runs `swapforward audio ... --loop` on it
in a child process, and prints a Markdown table: wall time, the child's peak resident memory, the file's length
against the exact sample count, and the jump at the loop's wrap against the largest step within a second of it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def real_geometry_pipeline():
    """AudioLDM with AudioLDM's latent and audio geometry and tiny layers (random weights)."""
    import torch
    from diffusers import AudioLDMPipeline, AutoencoderKL, UNet2DConditionModel
    from tiny_pipelines import _clap_text_config, eval_mode, tiny_roberta_tokenizer, tiny_scheduler
    from transformers import ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, in_channels=8, out_channels=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        sample_size=(256, 16), cross_attention_dim=(16, 32), attention_head_dim=4,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16, class_embeddings_concat=True)
    vae = AutoencoderKL(block_out_channels=[8, 8, 8], in_channels=1, out_channels=1,
                        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        latent_channels=8, norm_num_groups=4, layers_per_block=1)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[8, 5, 4],
        upsample_kernel_sizes=[16, 10, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False))
    with torch.no_grad():
        vocoder.conv_post.weight.mul_(3e4)  # random layers give ~1e-6: bring it to an audible level, so the wrap shows
    pipe = AudioLDMPipeline(vae=vae, text_encoder=ClapTextModelWithProjection(_clap_text_config()),
                            tokenizer=tiny_roberta_tokenizer(), unet=unet, scheduler=tiny_scheduler(), vocoder=vocoder)
    return eval_mode(pipe)


def seam(path: Path) -> tuple[float, float]:
    """(|first sample - last sample|, the largest step between neighbouring samples within a second of the wrap)."""
    import numpy as np
    import soundfile as sf

    info = sf.info(str(path))
    head, _ = sf.read(str(path), frames=info.samplerate, dtype="float32", always_2d=True)
    tail, _ = sf.read(str(path), start=info.frames - info.samplerate, dtype="float32", always_2d=True)
    around = np.concatenate([tail, head])
    steps = np.abs(np.diff(around, axis=0))
    return float(steps[info.samplerate - 1].max()), float(np.delete(steps, info.samplerate - 1, axis=0).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=28800)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for the FLAC and PNG (default: temporary)")
    args = parser.parse_args()
    import soundfile as sf

    folder = Path(tempfile.mkdtemp(prefix="swapforward-hours-"))
    real_geometry_pipeline().save_pretrained(folder / "model")
    out = args.out or folder
    out.mkdir(parents=True, exist_ok=True)
    flac = out / "night.flac"
    command = ["swapforward", "audio", "rain on a roof at night", "--model", str(folder / "model"), "--seconds",
               f"{args.seconds:g}", "--loop", "--steps", str(args.steps), "--seed", "0", "--device", "cpu",
               "-o", str(flac), "--spectrogram", str(out / "night.png")]
    began = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_MININTERVAL": "30"})
    wall = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    if run.returncode:
        sys.exit(f"swapforward failed ({run.returncode}):\n{run.stderr[-2000:]}")
    info = sf.info(str(flac))
    expected = round(args.seconds * 16000)
    jump, largest = seam(flac)
    print(run.stdout.strip())
    print("| length | views | steps | wall | peak RSS | samples (expected) | FLAC size | wrap jump | largest step near "
          "it |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    views = run.stdout.split(" from ")[1].split(" views")[0] if " from " in run.stdout else "?"
    print(f"| {args.seconds / 3600:g} h | {views} | {args.steps} | {wall / 60:.1f} min | {peak:.2f} GiB | "
          f"{info.frames:,} ({expected:,}) | {flac.stat().st_size / 2**20:.0f} MiB | {jump:.2e} | {largest:.2e} |")
    if info.frames != expected or jump > largest:
        sys.exit("the file's length is not exact, or the wrap jumps more than any step near it")


if __name__ == "__main__":
    main()
