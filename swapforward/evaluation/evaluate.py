"""The paper's protocol over folders: crop the long outputs, extract features, compute every metric, write reports.

Audio (Section 3.1): each long output is cut into 10 s windows (overlap 0.2, or a fixed step); FD (PANNs), FAD
(VGGish embeddings of every 0.96 s frame) and KL
(PANNs posteriors, unpaired: against the mean reference posterior) compare all crops with the reference clips; the
CLAP score compares crops with the prompt; Intra-CLAP (mean pairwise cosine of a file's crop embeddings) and
Intra-LPIPS (mean pairwise LPIPS of the crops' mel spectrograms) measure coherence inside each file.
Panoramas (Section 3.2): view-size crops in sequence give FID, KID (Inception) and the CLIP score; Intra-LPIPS and
Intra-Style-Loss use one random crop in each of five equal regions, over the 10 pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..errors import SwapForwardError
from ..io.files import write_atomic
from . import metrics
from .crops import audio_windows, image_crops, region_crops
from .features import AudioExtractors, ImageExtractors, resample

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def needed_weights(kind: str, clap_model: str = "clap-htsat-unfused") -> list[str]:
    """The cache entries the default extractors of `kind` load (`swapforward weights` fetches them)."""
    if kind == "audio":
        return ["Cnn14_16k_mAP=0.438.pth", "vggish-10086976.pth", clap_model, "vgg16-397923af.pth"]
    return ["clip-vit-base-patch16", "inception-2015-12-05.pt", "vgg16-397923af.pth", "vgg19-dcbb9e9d.pth"]


def list_files(folder: str | Path, suffixes: set[str]) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SwapForwardError(f"Folder {str(folder)!r} does not exist.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise SwapForwardError(f"Folder {str(folder)!r} holds no {', '.join(sorted(suffixes))} files.")
    return files


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The channels averaged to mono (as FAD toolkits load audio, e.g. librosa's mono=True), resampled to
    `sample_rate`, float32: a stereo file counts both channels, a mono file is unchanged."""
    import soundfile as sf

    data, rate = sf.read(path, always_2d=True, dtype="float32")
    return resample(data.mean(axis=1, dtype=np.float32), rate, sample_rate)


def read_image(path: Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1]."""
    from PIL import Image

    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _batched(items: list, size: int = 16) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def evaluate_audio(
    generated: list[Path],
    reference: list[Path] | None,
    extractors: AudioExtractors,
    prompt: str | None = None,
    window_seconds: float = 10.0,
    overlap: float | None = 0.2,
    step_seconds: float | None = None,
) -> dict:
    sr = extractors.sample_rate
    per_file = []
    for path in generated:
        wave = read_audio(path, sr)
        spans = audio_windows(len(wave), sr, window_seconds, overlap, step_seconds)
        per_file.append([wave[a:b] for a, b in spans])
    crops = [c for file_crops in per_file for c in file_crops]
    result: dict = {"files": len(generated), "crops": len(crops), "window_seconds": window_seconds,
                    "overlap": overlap, "step_seconds": step_seconds, **extractors.settings}
    ref = [read_audio(p, sr)[: round(window_seconds * sr)] for p in reference or []]
    if ref:
        result["reference_clips"] = len(ref)
    if extractors.panns is not None and ref:
        gen_emb, gen_logits = map(np.concatenate, zip(*(extractors.panns(b) for b in _batched(crops)), strict=False))
        ref_emb, ref_logits = map(np.concatenate, zip(*(extractors.panns(b) for b in _batched(ref)), strict=False))
        result["FD"] = metrics.frechet_distance(gen_emb, ref_emb)
        result["KL"] = metrics.kl_divergence(gen_logits, ref_logits, paired=False)
    if extractors.vggish is not None and ref:
        gen_frames = np.concatenate([extractors.vggish(c) for c in crops])
        ref_frames = np.concatenate([extractors.vggish(r) for r in ref])
        result["FAD"] = metrics.frechet_distance(gen_frames, ref_frames)
    if extractors.clap_audio is not None:
        embeddings = [extractors.clap_audio(file_crops) for file_crops in per_file]
        result["Intra-CLAP"] = float(np.nanmean([metrics.mean_pairwise_cosine(e) for e in embeddings]))
        if prompt and extractors.clap_text is not None:
            result["CLAP"] = metrics.text_alignment(np.concatenate(embeddings), extractors.clap_text(prompt))
    if extractors.lpips is not None and extractors.mel is not None:
        with torch.no_grad():
            scores = [metrics.mean_pairwise(lambda a, b: extractors.lpips(a, b).mean(),
                                            [extractors.mel(c) for c in file_crops]) for file_crops in per_file]
        result["Intra-LPIPS"] = float(np.nanmean(scores))
    return result


def evaluate_panoramas(
    generated: list[Path],
    reference: list[Path] | None,
    extractors: ImageExtractors,
    prompt: str | None = None,
    crop: int | None = None,
    regions: int = 5,
    seed: int = 0,
) -> dict:
    panoramas = [read_image(p) for p in generated]
    crop = crop or panoramas[0].shape[1]
    crops = [pano[:, :crop, a:b] for pano in panoramas for a, b in image_crops(pano.shape[2], crop)]
    result: dict = {"files": len(generated), "crops": len(crops), "crop": crop}
    if extractors.inception is not None and reference:
        ref_images = [read_image(p) for p in reference]
        gen = np.concatenate([extractors.inception(torch.stack(b)) for b in _batched(crops)])
        ref = np.concatenate([extractors.inception(torch.stack([r[:, :crop, :crop] for r in b]))
                              for b in _batched(ref_images)])
        result["reference_images"] = len(ref_images)
        result["FID"] = metrics.frechet_distance(gen, ref)
        result["KID"] = metrics.kernel_distance(gen, ref)
    if extractors.clip_image is not None and extractors.clip_text is not None and prompt:
        embeddings = np.concatenate([extractors.clip_image(torch.stack(b)) for b in _batched(crops)])
        result["CLIP"] = metrics.text_alignment(embeddings, extractors.clip_text(prompt), scale=100.0)
    region_sets = []
    for i, pano in enumerate(panoramas):
        spans = region_crops(pano.shape[2], crop, regions, seed + i)
        region_sets.append([pano[None, :, :crop, a:b] for a, b in spans])
    with torch.no_grad():
        if extractors.lpips is not None:
            scores = [metrics.mean_pairwise(lambda a, b: extractors.lpips(2 * a - 1, 2 * b - 1).mean(), s)
                      for s in region_sets]
            result["Intra-LPIPS"] = float(np.mean(scores))
        if extractors.vgg_layers is not None:
            scores = [metrics.mean_pairwise(lambda a, b: metrics.style_loss(extractors.vgg_layers(a),
                                                                           extractors.vgg_layers(b)), s)
                      for s in region_sets]
            result["Intra-Style-Loss"] = float(np.mean(scores))
    return result


def generate_reference(pipe, kind: str, prompt: str, folder: str | Path, samples: int, size: float | int | None = None,
                       progress=None) -> list[Path]:
    """The base model's own outputs, one view each (seeds 0..samples-1): the paper's reference set.

    Audio clips are `size` seconds (default: the model's window); images `size` pixels square (default: native).
    Files already there are kept, so an interrupted run resumes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(samples):
        path = folder / f"{seed:04d}.{'wav' if kind == 'audio' else 'png'}"
        if not path.exists():
            if kind == "audio":
                seconds = size or pipe.adapter.trained_window_seconds
                out = pipe(prompt, audio_length_in_s=seconds, window_seconds=seconds, seed=seed, progress_bar=False)
            else:
                side = int(size or pipe.adapter.native_size)
                out = pipe(prompt, height=side, width=side, view_width=side, seed=seed, progress_bar=False)
            out.save(path)
        paths.append(path)
        if progress:
            progress(seed + 1, samples)
    return paths


def markdown(results: dict[str, dict]) -> str:
    """One row per evaluated set, one column per metric."""
    names = ("FD", "FAD", "KL", "CLAP", "Intra-LPIPS", "Intra-CLAP", "FID", "KID", "CLIP", "Intra-Style-Loss")
    columns = [c for c in names
               if any(c in r for r in results.values())]
    header = "| set | files | crops | " + " | ".join(columns) + " |"
    lines = [header, "| --- | ---: | ---: |" + " ---: |" * len(columns)]
    for name, r in results.items():
        values = [f"{r[c]:.4g}" if c in r and not math.isnan(r[c]) else "-" for c in columns]
        lines.append(f"| {name} | {r['files']} | {r['crops']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def write_reports(results: dict[str, dict], json_path: str | Path, markdown_path: str | Path | None) -> None:
    write_atomic(Path(json_path), lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
    if markdown_path:
        write_atomic(Path(markdown_path), lambda tmp: Path(tmp).write_text(markdown(results)))
