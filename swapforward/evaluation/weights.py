"""The metric networks' weights: one cache folder, filled by `swapforward weights`, read by every metric.

Nothing is downloaded in the middle of an evaluation: a missing file is one sentence naming it and the command
that fetches it. The folder is `$SWAPFORWARD_WEIGHTS`, or `~/.cache/swapforward/weights`.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import SwapForwardError


@dataclass(frozen=True)
class Checkpoint:
    """A file (or a hub snapshot, for `repo`) that a metric needs, and where it comes from."""

    name: str
    url: str | None = None
    repo: str | None = None
    used_by: str = ""


CHECKPOINTS = {
    c.name: c
    for c in (
        Checkpoint("Cnn14_16k_mAP=0.438.pth", url="https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth",
                   used_by="FD and KL (PANNs CNN14, 16 kHz)"),
        Checkpoint("vggish-10086976.pth",
                   url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                   used_by="FAD (VGGish)"),
        Checkpoint("vgg16-397923af.pth", url="https://download.pytorch.org/models/vgg16-397923af.pth",
                   used_by="LPIPS (VGG)"),
        Checkpoint("vgg19-dcbb9e9d.pth", url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                   used_by="Intra-Style-Loss (VGG19)"),
        Checkpoint("inception-2015-12-05.pt",
                   url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
                   used_by="FID and KID (clean-fid's Inception)"),
        Checkpoint("clip-vit-base-patch16", repo="openai/clip-vit-base-patch16", used_by="CLIP score"),
        Checkpoint("clap-htsat-unfused", repo="laion/clap-htsat-unfused", used_by="CLAP score and Intra-CLAP"),
    )
}


def weights_dir() -> Path:
    return Path(os.environ.get("SWAPFORWARD_WEIGHTS", Path.home() / ".cache" / "swapforward" / "weights"))


def require(name: str, folder: Path | None = None) -> Path:
    """The path of a cached checkpoint, or one sentence saying which file is missing and how to get it."""
    folder = folder or weights_dir()
    path = folder / name
    if not path.exists():
        source = CHECKPOINTS[name].url or f"the hub repository {CHECKPOINTS[name].repo}"
        raise SwapForwardError(
            f"{CHECKPOINTS[name].used_by} needs {name} in {folder}; run `swapforward weights` on a machine with "
            f"network access (or put {source} there)."
        )
    return path


def fetch(names: list[str] | None = None, folder: Path | None = None, log=print) -> list[Path]:
    """Download the named checkpoints (default: all) into the cache folder, skipping those already there."""
    folder = folder or weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(CHECKPOINTS):
        checkpoint = CHECKPOINTS[name]
        target = folder / name
        if target.exists():
            log(f"have {target}")
        elif checkpoint.repo:
            from huggingface_hub import snapshot_download

            snapshot_download(checkpoint.repo, local_dir=str(target) + ".partial")
            os.replace(str(target) + ".partial", target)
            log(f"fetched {checkpoint.repo} -> {target}")
        else:
            partial = Path(str(target) + ".partial")
            with urllib.request.urlopen(checkpoint.url) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
            os.replace(partial, target)
            log(f"fetched {checkpoint.url} -> {target}")
        paths.append(target)
    return paths
