"""The metric networks' weights: one cache folder, filled by `swapforward weights`, read by every metric.

Nothing is downloaded in the middle of an evaluation: a missing file is one sentence naming it and the command
that fetches it. The folder is `$SWAPFORWARD_WEIGHTS`, or `~/.cache/swapforward/weights`.

Every file is checked against a recorded SHA-256 (or the publisher's prefix of it) when it is downloaded and when
it is loaded; a file that does not match is one sentence and is not used. Hub snapshots are pinned to a commit
where one is recorded, and get a `SHA256SUMS` manifest of their files when they are downloaded, checked on load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import SwapForwardError

logger = logging.getLogger("swapforward")

MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class Checkpoint:
    """A file (or a hub snapshot, for `repo`) that a metric needs, where it comes from, and how it is checked."""

    name: str
    url: str | None = None
    repo: str | None = None
    used_by: str = ""
    sha256: str = ""
    """The file's SHA-256 in hex, or its first digits where that is all the publisher gives."""
    revision: str | None = None
    """For `repo`: the hub commit the snapshot is pinned to (None: the repository's main branch when fetched)."""
    source: str = ""
    """Where `sha256` or `revision` comes from."""


CHECKPOINTS = {
    c.name: c
    for c in (
        Checkpoint("Cnn14_16k_mAP=0.438.pth", url="https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth",
                   used_by="FD and KL (PANNs CNN14, 16 kHz)",
                   sha256="e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
                   source="Zenodo record 3987831 publishes MD5 362fc5ff18f1d6ad2f6d464b45893f2c; this SHA-256 is "
                          "that of a copy matching it, as recorded in a public project (not checked here)"),
        Checkpoint("vggish-10086976.pth",
                   url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                   used_by="FAD (VGGish)", sha256="10086976",
                   source="the publisher's file name: torch.hub's convention, the first digits of the SHA-256"),
        Checkpoint("vgg16-397923af.pth", url="https://download.pytorch.org/models/vgg16-397923af.pth",
                   used_by="LPIPS (VGG)", sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
                   source="PyTorch publishes the prefix 397923af in the file name; the full value is as recorded in "
                          "a public project and agrees with it"),
        Checkpoint("vgg19-dcbb9e9d.pth", url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                   used_by="Intra-Style-Loss (VGG19)", sha256="dcbb9e9d",
                   source="the publisher's file name: torch.hub's convention, the first digits of the SHA-256"),
        Checkpoint("inception-2015-12-05.pt",
                   url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
                   used_by="FID and KID (clean-fid's Inception)",
                   sha256="f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
                   source="NVIDIA publishes none; the value recorded by a public metrics library for this URL"),
        Checkpoint("clip-vit-base-patch16", repo="openai/clip-vit-base-patch16", used_by="CLIP score",
                   revision="57c216476eefef5ab752ec549e440a49ae4ae5f3",
                   source="the hub commit that public projects pin for this repository"),
        Checkpoint("clap-htsat-unfused", repo="laion/clap-htsat-unfused", used_by="CLAP score and Intra-CLAP",
                   revision="8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a",
                   source="the hub commit that public projects pin for this repository"),
        Checkpoint("clap-htsat-fused", repo="laion/clap-htsat-fused", used_by="CLAP score (--clap-model)"),
        Checkpoint("larger-clap-general", repo="laion/larger_clap_general", used_by="CLAP score (--clap-model)"),
        Checkpoint("larger-clap-music-and-speech", repo="laion/larger_clap_music_and_speech",
                   used_by="CLAP score (--clap-model)"),
    )
}

#: The checkpoints `swapforward weights` fetches when none is named (the other CLAP models on request).
DEFAULT_FETCH = ("Cnn14_16k_mAP=0.438.pth", "vggish-10086976.pth", "vgg16-397923af.pth", "vgg19-dcbb9e9d.pth",
                 "inception-2015-12-05.pt", "clip-vit-base-patch16", "clap-htsat-unfused")

_verified: dict[tuple[str, int, int], bool] = {}


def weights_dir() -> Path:
    return Path(os.environ.get("SWAPFORWARD_WEIGHTS", Path.home() / ".cache" / "swapforward" / "weights"))


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require(name: str, folder: Path | None = None) -> Path:
    """The path of a cached, verified checkpoint; one sentence when it is missing or does not match its hash."""
    folder = folder or weights_dir()
    path = folder / name
    checkpoint = CHECKPOINTS[name]
    if not path.exists():
        source = checkpoint.url or f"the hub repository {checkpoint.repo}"
        verb = "need" if " and " in checkpoint.used_by else "needs"
        raise SwapForwardError(
            f"{checkpoint.used_by} {verb} {name} in {folder}; run `swapforward weights` on a machine with "
            f"network access (or put {source} there)."
        )
    verify(path, checkpoint)
    return path


def verify(path: Path, checkpoint: Checkpoint) -> None:
    """Check a file against its recorded SHA-256, or a snapshot folder against its manifest (once per process and
    file version); one sentence naming the file when it does not match."""
    if path.is_dir():
        manifest = path / MANIFEST
        if not manifest.exists():
            logger.warning(f"{path} has no {MANIFEST} (it was not fetched by `swapforward weights`): its files are "
                           f"used unverified.")
            return
        for line in manifest.read_text().splitlines():
            digest, _, relative = line.partition("  ")
            _check_file(path / relative, digest, path)
        return
    if checkpoint.sha256:
        _check_file(path, checkpoint.sha256, path)


def _check_file(path: Path, expected: str, shown: Path) -> None:
    if not path.is_file():
        raise SwapForwardError(f"{shown} lacks {path.name}, listed in its {MANIFEST}; delete {shown} and run "
                               f"`swapforward weights` again.")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if _verified.get(key):
        return
    actual = sha256_of(path)
    if not actual.startswith(expected.lower()):
        raise SwapForwardError(
            f"{path} does not match its recorded SHA-256 (expected {expected[:16]}..., found {actual[:16]}...), so it "
            f"is not used; delete it and run `swapforward weights` again."
        )
    _verified[key] = True


def fetch(names: list[str] | None = None, folder: Path | None = None, log=print) -> list[Path]:
    """Download the named checkpoints (default: `DEFAULT_FETCH`) into the cache folder, verified; those already
    there are verified and kept. A download that does not match its hash is deleted, and one sentence says so."""
    folder = folder or weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(DEFAULT_FETCH):
        checkpoint = CHECKPOINTS[name]
        target = folder / name
        partial = Path(str(target) + ".partial")
        if target.exists():
            verify(target, checkpoint)
            log(f"have {target} (verified)")
        elif checkpoint.repo:
            from huggingface_hub import snapshot_download

            shutil.rmtree(partial, ignore_errors=True)
            snapshot_download(checkpoint.repo, revision=checkpoint.revision, local_dir=str(partial))
            shutil.rmtree(partial / ".cache", ignore_errors=True)
            write_manifest(partial)
            os.replace(partial, target)
            log(f"fetched {checkpoint.repo}@{checkpoint.revision or 'main'} -> {target}")
        else:
            try:
                with urllib.request.urlopen(checkpoint.url) as response, open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
                actual = sha256_of(partial)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            if not actual.startswith(checkpoint.sha256.lower()):
                partial.unlink()
                raise SwapForwardError(
                    f"The download of {name} from {checkpoint.url} does not match its recorded SHA-256 (expected "
                    f"{checkpoint.sha256[:16]}..., got {actual[:16]}...), so it was deleted; try again later."
                )
            os.replace(partial, target)
            log(f"fetched {checkpoint.url} -> {target} (SHA-256 verified)")
        paths.append(target)
    return paths


def write_manifest(folder: Path) -> Path:
    """`SHA256SUMS` (sha256sum's format) of every file in a snapshot folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    lines = [f"{sha256_of(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    manifest = folder / MANIFEST
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
