"""Feature networks for the metrics, loaded from the weights cache, behind small callables that tests can replace.

- PANNs CNN14 (16 kHz): written out here with the checkpoint's own parameter names, because `panns_inference`
  fetches files at import and fails offline; its STFT and mel filters are read from the checkpoint.
- VGGish: written out with torchvggish's parameter names and input features (torchvggish's package pulls resampy
  and numba, and downloads at load time); the final ReLU is dropped as AudioLDM's FAD does.
- CLAP and CLIP through transformers (`ClapModel`, `CLIPModel`), from snapshots in the cache.
- LPIPS (the `lpips` package, VGG) and VGG19 (torchvision) with their ImageNet weights from the cache.
- Inception for FID/KID through clean-fid.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SwapForwardError
from ..io.spectrogram import log_mel
from .weights import CHECKPOINTS, require, verify, weights_dir


def load_strict(model: nn.Module, state: dict, path: Path) -> None:
    """Load every parameter of `model` from `state`, refusing a checkpoint with missing, extra or misshapen
    tensors in one sentence (a partial load would leave random weights and give numbers all the same)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    misshapen = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or misshapen:
        parts = [f"{label} {', '.join(keys[:3])}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                 for label, keys in (("lacks", missing), ("has unexpected", extra), ("has misshapen", misshapen))
                 if keys]
        raise SwapForwardError(f"{path} does not fit {type(model).__name__}: it {'; it '.join(parts)}.")
    model.load_state_dict(state, strict=True)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy), as metric networks need their own sample rate."""
    if rate == target:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


# --- PANNs CNN14 ----------------------------------------------------------------------------------------------------


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class _STFT(nn.Module):
    def __init__(self, n_fft: int):
        super().__init__()
        self.conv_real = nn.Conv1d(1, n_fft // 2 + 1, n_fft, bias=False)
        self.conv_imag = nn.Conv1d(1, n_fft // 2 + 1, n_fft, bias=False)


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft, self.n_fft, self.hop = _STFT(n_fft), n_fft, hop

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = F.pad(wave[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = F.conv1d(x, self.stft.conv_real.weight, stride=self.hop)
        imag = F.conv1d(x, self.stft.conv_imag.weight, stride=self.hop)
        return (real**2 + imag**2).transpose(1, 2)[:, None]  # (batch, 1, frames, bins)


class _LogMel(nn.Module):
    def __init__(self, bins: int, mels: int):
        super().__init__()
        self.melW = nn.Parameter(torch.zeros(bins, mels), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class Cnn14(nn.Module):
    """PANNs' CNN14 (Kong et al., 2020) at 16 kHz: window 512, hop 160, 64 mel bins; 2048-d embedding, 527 logits."""

    def __init__(self, n_fft: int = 512, hop: int = 160, mels: int = 64, classes: int = 527):
        super().__init__()
        self.spectrogram_extractor = _Spectrogram(n_fft, hop)
        self.logmel_extractor = _LogMel(n_fft // 2 + 1, mels)
        self.bn0 = nn.BatchNorm2d(mels)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, samples) at 16 kHz -> (2048-d embeddings, class logits before the sigmoid)."""
        x = self.logmel_extractor(self.spectrogram_extractor(wave))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, 2 if i < 5 else 1)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


def load_cnn14(device: str = "cpu", folder: Path | None = None) -> Cnn14:
    path = require("Cnn14_16k_mAP=0.438.pth", folder)
    model = Cnn14()
    state = torch.load(path, map_location="cpu", weights_only=False)  # a verified file holding numpy objects
    load_strict(model, state.get("model", state), path)
    return model.eval().to(device)


# --- VGGish ----------------------------------------------------------------------------------------------------------


def vggish_examples(wave: np.ndarray, sample_rate: int = 16000) -> torch.Tensor:
    """VGGish's input: log-mel patches of 0.96 s (96 frames of 10 ms x 64 bands, 125-7500 Hz), (n, 1, 96, 64)."""
    window, hop, fft = 400, 160, 512
    if len(wave) < window:
        wave = np.pad(wave, (0, window - len(wave)))
    frames = 1 + (len(wave) - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)  # periodic
    magnitude = np.abs(np.fft.rfft(wave[index] * hann, fft))
    mel_of = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731 (HTK mel scale)
    bins = mel_of(np.linspace(0, sample_rate / 2, fft // 2 + 1))
    edges = np.linspace(mel_of(125.0), mel_of(7500.0), 66)
    lower = (bins[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - bins[:, None]) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights[0, :] = 0.0
    log_mel = np.log(magnitude @ weights + 0.01)
    count = len(log_mel) // 96
    examples = log_mel[: count * 96].reshape(count, 96, 64) if count else log_mel[None, :96]
    return torch.as_tensor(examples, dtype=torch.float32)[:, None]


class VGGish(nn.Module):
    """VGGish (Hershey et al., 2017) with torchvggish's parameter names; 128-d embedding per 0.96 s example.

    `final_relu=False` drops the last ReLU, as AudioLDM's FAD does.
    """

    def __init__(self, final_relu: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True),
                                 nn.Linear(4096, 128)]
        self.embeddings = nn.Sequential(*(head + [nn.ReLU(True)] if final_relu else head))

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples).permute(0, 2, 3, 1).contiguous()  # channels last, as the TF original
        return self.embeddings(x.flatten(1))


def load_vggish(device: str = "cpu", folder: Path | None = None) -> VGGish:
    model = VGGish()
    path = require("vggish-10086976.pth", folder)
    load_strict(model, torch.load(path, map_location="cpu"), path)
    return model.eval().to(device)


# --- the extractors the metrics use -----------------------------------------------------------------------------------


@dataclass
class AudioExtractors:
    """Callables from waveforms (at `sample_rate`) to features; any left None skips the metrics that need it."""

    sample_rate: int = 16000
    panns: Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]] | None = None
    vggish: Callable[[np.ndarray], np.ndarray] | None = None
    """One waveform -> (frames, 128) embeddings, one per 0.96 s."""
    clap_audio: Callable[[list[np.ndarray]], np.ndarray] | None = None
    clap_text: Callable[[str], np.ndarray] | None = None
    lpips: nn.Module | None = None
    mel: Callable[[np.ndarray], torch.Tensor] | None = None
    settings: dict = field(default_factory=dict)
    """What the report should record about them (the CLAP checkpoint and its input normalisation)."""


@dataclass
class ImageExtractors:
    """Callables from (n, 3, H, W) images in [0, 1] to features; any left None skips its metrics."""

    inception: Callable[[torch.Tensor], np.ndarray] | None = None
    clip_image: Callable[[torch.Tensor], np.ndarray] | None = None
    clip_text: Callable[[str], np.ndarray] | None = None
    lpips: nn.Module | None = None
    vgg_layers: Callable[[torch.Tensor], list[torch.Tensor]] | None = None


def mel_picture(wave: np.ndarray, sample_rate: int = 16000) -> torch.Tensor:
    """A log-mel spectrogram (64 bands, 10 ms hop at 16 kHz) as a (1, 3, bands, frames) picture in [-1, 1] (LPIPS)."""
    mel = log_mel(torch.as_tensor(wave, dtype=torch.float32), sample_rate, bins=64, hop=sample_rate // 100).T
    mel = 2 * (mel - mel.min()) / (mel.max() - mel.min() + 1e-6) - 1
    return mel.flip(0)[None, None].expand(1, 3, -1, -1)


def _place_copy(name: str, folder: Path | None, target: Path) -> None:
    """Put the verified cached checkpoint `name` where a library looks for it (torch's hub folder, clean-fid's
    temporary path), unless the same bytes are there already."""
    source = require(name, folder)
    if target.exists():
        try:
            verify(target, CHECKPOINTS[name])
            return
        except SwapForwardError:
            pass  # another file under that name: replace it with the verified one
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(target)


def _torch_hub_weights(name: str, folder: Path | None) -> None:
    """Make torchvision find a cached ImageNet checkpoint without downloading: copy it into torch's hub folder."""
    _place_copy(name, folder, Path(torch.hub.get_dir()) / "checkpoints" / name)


def load_lpips(folder: Path | None = None) -> nn.Module:
    import lpips

    _torch_hub_weights("vgg16-397923af.pth", folder)
    return lpips.LPIPS(net="vgg", verbose=False).eval()


def load_vgg19_layers(folder: Path | None = None) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """conv1_1 .. conv5_1 activations of VGG19 on ImageNet-normalised images (Gatys et al.'s style layers)."""
    from torchvision.models import VGG19_Weights, vgg19

    _torch_hub_weights("vgg19-dcbb9e9d.pth", folder)
    features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    taps = {0, 5, 10, 19, 28}

    def layers(images: torch.Tensor) -> list[torch.Tensor]:
        x, out = (images - mean) / std, []
        for i, layer in enumerate(features):
            x = layer(x)
            if i in taps:
                out.append(x)
            if i >= max(taps):
                break
        return out

    return layers


def load_inception(device: str = "cpu", folder: Path | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    """clean-fid's Inception features (2048-d) from images in [0, 1], with clean-fid's resizing."""
    from cleanfid.features import build_feature_extractor
    from cleanfid.resize import make_resizer

    _place_copy("inception-2015-12-05.pt", folder, Path(tempfile.gettempdir()) / "inception-2015-12-05.pt")
    model = build_feature_extractor("clean", torch.device(device))
    resize = make_resizer("PIL", False, "bicubic", (299, 299))

    def features(images: torch.Tensor) -> np.ndarray:
        arrays = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        batch = torch.stack([torch.as_tensor(resize(a)).permute(2, 0, 1) for a in arrays]).to(device)
        return model(batch).cpu().numpy()

    return features


def _from_pretrained_strict(cls: type, path: Path) -> nn.Module:
    """A transformers model whose every weight came from `path` (one sentence naming what is missing if not)."""
    model, info = cls.from_pretrained(path, output_loading_info=True)
    missing = list(info.get("missing_keys") or []) + [str(m[0]) for m in info.get("mismatched_keys") or []]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise SwapForwardError(f"{path} does not fit {cls.__name__}: it lacks {', '.join(missing[:3])}{more}.")
    return model.eval()


def load_clip(device: str = "cpu", folder: Path | None = None):
    """(image -> embedding, text -> embedding) with openai/clip-vit-base-patch16 from the cache."""
    from transformers import CLIPModel, CLIPProcessor

    path = require("clip-vit-base-patch16", folder)
    model, processor = _from_pretrained_strict(CLIPModel, path).to(device), CLIPProcessor.from_pretrained(path)

    @torch.no_grad()
    def image(images: torch.Tensor) -> np.ndarray:
        inputs = processor(images=list(images.cpu()), return_tensors="pt", do_rescale=False).to(device)
        return model.get_image_features(**inputs).cpu().numpy()

    @torch.no_grad()
    def text(prompt: str) -> np.ndarray:
        inputs = processor(text=[prompt], return_tensors="pt", padding=True).to(device)
        return model.get_text_features(**inputs).cpu().numpy()[0]

    return image, text


def load_clap(device: str = "cpu", folder: Path | None = None, name: str = "clap-htsat-unfused"):
    """(48 kHz waveforms -> embeddings, text -> embedding) with LAION-CLAP (transformers port) from the cache."""
    from transformers import ClapModel, ClapProcessor

    path = require(name, folder)
    model, processor = _from_pretrained_strict(ClapModel, path).to(device), ClapProcessor.from_pretrained(path)

    @torch.no_grad()
    def audio(waves: list[np.ndarray]) -> np.ndarray:
        inputs = processor(audios=waves, sampling_rate=48000, return_tensors="pt").to(device)
        return model.get_audio_features(**inputs).cpu().numpy()

    @torch.no_grad()
    def text(prompt: str) -> np.ndarray:
        inputs = processor(text=[prompt], return_tensors="pt", padding=True).to(device)
        return model.get_text_features(**inputs).cpu().numpy()[0]

    return audio, text


def peak_normalized(wave: np.ndarray) -> np.ndarray:
    """`wave` scaled so its largest absolute sample is 1 (silence unchanged)."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    return wave / peak if peak > 0 else wave


def default_audio_extractors(device: str = "cpu", folder: Path | None = None, clap_model: str = "clap-htsat-unfused",
                             clap_normalize: str = "none") -> AudioExtractors:
    """The real networks from the cache. CLAP sees each crop resampled to 48 kHz, as written (`clap_normalize`
    "none") or peak-normalised ("peak"): published evaluations differ on it, so the report records the choice."""
    folder = folder or weights_dir()
    cnn14 = load_cnn14(device, folder)

    @torch.no_grad()
    def panns(waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        outs = [cnn14(torch.as_tensor(w - w.mean(), dtype=torch.float32, device=device)[None]) for w in waves]
        return (torch.cat([o[0] for o in outs]).cpu().numpy(), torch.cat([o[1] for o in outs]).cpu().numpy())

    vggish_model = load_vggish(device, folder)

    @torch.no_grad()
    def vggish(wave: np.ndarray) -> np.ndarray:
        return vggish_model(vggish_examples(wave).to(device)).cpu().numpy()

    clap_audio, clap_text = load_clap(device, folder, clap_model)
    prepare = peak_normalized if clap_normalize == "peak" else (lambda w: w)
    settings = {"clap_model": f"{CHECKPOINTS[clap_model].repo}@{CHECKPOINTS[clap_model].revision or 'main'}",
                "clap_normalize": clap_normalize, "channels": "averaged to mono"}

    def clap(waves: list[np.ndarray]) -> np.ndarray:
        return clap_audio([prepare(resample(w, 16000, 48000)) for w in waves])

    return AudioExtractors(16000, panns, vggish, clap, clap_text, load_lpips(folder), mel_picture, settings)


def default_image_extractors(device: str = "cpu", folder: Path | None = None) -> ImageExtractors:
    folder = folder or weights_dir()
    clip_image, clip_text = load_clip(device, folder)
    return ImageExtractors(load_inception(device, folder), clip_image, clip_text, load_lpips(folder),
                           load_vgg19_layers(folder))

