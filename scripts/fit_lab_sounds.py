"""Make the lab's real sounds with espeak-ng and sox, and fit the `fitted` world to them (issue 39).

Three sounds, 24 to 33 s at 16 kHz: speech (espeak-ng reading a paragraph), a rain-like texture (pink noise, band
limited, with a slow tremolo: gusts) and a rhythm (a plucked, noisy hit twice a second over a low noise floor). Each
becomes 8 log-mel bands at 25 frames a second (a latent frame of AudioLDM: 40 ms); neighbouring bands are a lane's two
channels, four lanes. `swapforward.lab.beyond.fit_sound` estimates their stationary cross-covariances, written to
swapforward/lab/data/fitted_sounds.json. sox runs with -R, so its noises and dither are the same on every run.

    python scripts/fit_lab_sounds.py [--keep DIR] [--out FILE]   # needs espeak-ng and sox on the PATH
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile
import torch

from swapforward.lab.beyond import FITTED, fit_sound

RATE, HOP, FFT, MELS, LAGS = 16000, 640, 1024, 8, 256
TEXT = ("Long form audio is made of many windows. Each window is denoised by the same model, and the windows are "
        "merged into one canvas. The rain outside kept falling through the night, while the radio played a quiet "
        "song about the sea. Seven sailors counted the waves, and every wave was a little different from the last "
        "one they had seen. Numbers, letters and the names of cities: Paris, Lagos, Lima, Osaka, Oslo and Quito. "
        "The quick brown fox jumps over the lazy dog, again and again, until the story ends.")


def make(folder: Path) -> dict[str, Path]:
    """The three sounds as 16 kHz mono WAV files in `folder`."""
    def run(*args: str) -> None:
        if args[0] == "sox":  # -R: sox's noises and dither the same on every run
            args = ("sox", "-R", *args[1:])
        subprocess.run(args, check=True, cwd=folder, capture_output=True)

    run("espeak-ng", "-v", "en-us", "-s", "160", "-w", "speech22k.wav", TEXT)
    run("sox", "speech22k.wav", "-r", str(RATE), "-c", "1", "speech.wav")
    run("sox", "-n", "-r", str(RATE), "-b", "16", "rain.wav", "synth", "24", "pinknoise", "highpass", "400",
        "lowpass", "6000", "tremolo", "0.6", "40", "gain", "-6")
    run("sox", "-n", "-r", str(RATE), "-b", "16", "hit.wav", "synth", "0.06", "pluck", "A2", "synth", "0.06",
        "brownnoise", "mix", "gain", "-3", "pad", "0", "0.44")
    run("sox", "hit.wav", "beat.wav", "repeat", "47")
    run("sox", "-n", "-r", str(RATE), "-b", "16", "floor.wav", "synth", "24", "brownnoise", "gain", "-30")
    run("sox", "-m", "beat.wav", "floor.wav", "rhythm.wav", "trim", "0", "24")
    return {name: folder / f"{name}.wav" for name in ("speech", "rain", "rhythm")}


def mel_filters(bins: int, mels: int, rate: int, low: float = 60.0) -> torch.Tensor:
    """(bins, mels) triangular filters evenly spaced on the mel scale from `low` to the Nyquist frequency."""
    def mel(f: float) -> float:
        return 2595 * math.log10(1 + f / 700)

    edges = torch.linspace(mel(low), mel(rate / 2), mels + 2, dtype=torch.float64)
    hz = 700 * (10 ** (edges / 2595) - 1)
    freqs = torch.linspace(0, rate / 2, bins, dtype=torch.float64)
    rising = (freqs[:, None] - hz[None, :-2]) / (hz[1:-1] - hz[:-2])
    falling = (hz[None, 2:] - freqs[:, None]) / (hz[2:] - hz[1:-1])
    return torch.clamp(torch.minimum(rising, falling), min=0)


def features(path: Path) -> torch.Tensor:
    """(lanes 4, channels 2, frames) log-mel features of a sound: band pairs (0, 1), (2, 3), ... as lanes."""
    wave, rate = soundfile.read(path, dtype="float64")
    if rate != RATE:
        raise ValueError(f"{path} is at {rate} Hz; the fit expects {RATE}")
    spectrum = torch.stft(torch.from_numpy(wave), FFT, HOP, window=torch.hann_window(FFT, dtype=torch.float64),
                          return_complex=True).abs().pow(2)
    logmel = (mel_filters(spectrum.shape[0], MELS, RATE).T @ spectrum).clamp_min(1e-10).log10()
    return logmel.view(MELS // 2, 2, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the sounds in this folder")
    parser.add_argument("--out", type=Path, default=FITTED, help="where to write the fit (default: the library's)")
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on the PATH; install it (Debian: apt-get install espeak-ng sox).")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sounds = []
        for name, path in make(folder).items():
            x = features(path)
            fit = [[[round(v, 6) for v in row] for row in lag] for lag in fit_sound(x, LAGS).tolist()]
            sounds.append({"name": name, "frames": x.shape[-1], "covariances": fit})
            print(f"{name}: {x.shape[-1]} frames")
    fitted = {"channels": 2, "bins": 4, "frame_seconds": HOP / RATE, "mels": MELS, "lags": LAGS,
              "made_by": "scripts/fit_lab_sounds.py", "sounds": sounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fitted, separators=(",", ":")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
