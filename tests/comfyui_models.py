"""The real ComfyUI of ../shared/comfyui, imported in this process on the CPU, and tiny random models built in code
inside its own model classes (an SD 1.x U-Net, Stable Audio Open's DiT, their VAEs), for the node pack's tests."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

import torch

#: Where ComfyUI 0.8.0 is: $SWAPFORWARD_COMFYUI, or ../shared/comfyui beside the repository.
COMFYUI = Path(os.environ.get("SWAPFORWARD_COMFYUI", Path(__file__).resolve().parents[2] / "shared" / "comfyui"))


def comfyui_missing() -> str | None:
    """Why ComfyUI cannot be imported here, or None."""
    if not (COMFYUI / "comfy" / "samplers.py").is_file():
        return f"no ComfyUI at {COMFYUI} (set SWAPFORWARD_COMFYUI)"
    try:
        import aiohttp  # noqa: F401  (ComfyUI's requirements, the project's [comfyui] extra)
        import comfy_kitchen  # noqa: F401
    except ImportError as missing:
        return f"ComfyUI's requirements are not installed ({missing}); pip install -e '.[comfyui]'"
    return None


#: Put on the path where torchaudio is missing (tests/stand_ins/torchaudio says why).
STAND_INS = Path(__file__).parent / "stand_ins"


def torchaudio_missing() -> bool:
    """Whether the real torchaudio is missing (the stand-in, once on the path, does not count)."""
    import importlib.util

    spec = importlib.util.find_spec("torchaudio")
    return spec is None or STAND_INS in Path(spec.origin or "").parents


def import_comfyui() -> None:
    """Put ComfyUI on the path, on the CPU, as `main.py --cpu` does before its first import of comfy."""
    if str(COMFYUI) not in sys.path:
        sys.path.insert(0, str(COMFYUI))
    if torchaudio_missing():
        sys.path.append(str(STAND_INS))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True


@contextlib.contextmanager
def comfyui_server(base: Path, paths: list[Path] = ()):
    """ComfyUI started from COMFYUI on a free loopback port with every folder it writes under `base` (its custom
    nodes there too), `paths` on its PYTHONPATH; yields its URL once its nodes answer, and stops it."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = [Path(__file__).resolve().parents[1], *paths] + ([STAND_INS] if torchaudio_missing() else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, extra)))
    command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--disable-auto-launch", "--base-directory", str(base), "--database-url",
               f"sqlite:///{base / 'comfyui.db'}"]
    for name in ("output", "input", "user", "temp"):
        (base / name).mkdir(exist_ok=True)
        command += [f"--{name}-directory", str(base / name)]
    url = f"http://127.0.0.1:{port}"
    with open(base / "server.log", "w") as log:
        process = subprocess.Popen(command, cwd=COMFYUI, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            end = time.time() + 180
            while time.time() < end and process.poll() is None:
                try:
                    with urllib.request.urlopen(f"{url}/object_info/SwapForwardKSampler", timeout=5) as answer:
                        if json.loads(answer.read()):
                            break
                except OSError:
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError("ComfyUI did not start: " + (base / "server.log").read_text()[-3000:])
            yield url
        finally:
            process.terminate()
            process.wait(30)


def patched(model: torch.nn.Module):
    import comfy.model_patcher

    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def randomized(model: torch.nn.Module, seed: int, std: float = 0.05) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def scaled(model: torch.nn.Module, seed: int, gain: float = 1.0) -> torch.nn.Module:
    """Weights drawn with std gain / sqrt(fan-in), zero biases, unit scales: a decoder whose output stays in range
    (ComfyUI's layers skip torch's own initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("scale") and parameter.ndim == 0:
                parameter.fill_(1.0)
            elif parameter.ndim <= 1:
                parameter.zero_()
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * gain
                                / math.sqrt(parameter[0].numel()))
    return model


def tiny_sd_model(seed: int = 0):
    """An SD 1.x model (ComfyUI's BaseModel, EPS, its U-Net) with 32 channels and a 32-wide context."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.SD15({
        "context_dim": 32, "model_channels": 32, "use_linear_in_transformer": False, "adm_in_channels": None,
        "use_temporal_attention": False, "in_channels": 4, "out_channels": 4, "num_res_blocks": [1, 1],
        "channel_mult": [1, 2], "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
        "transformer_depth_middle": 1, "use_spatial_transformer": True, "num_heads": 2, "num_head_channels": -1,
        "image_size": 32, "legacy": False, "dims": 2})
    return patched(randomized(comfy.model_base.BaseModel(config, device=torch.device("cpu")), seed))


def tiny_stable_audio_model(seed: int = 0):
    """Stable Audio Open (ComfyUI's StableAudio1, v-prediction, its DiT) with one block of width 64."""
    import comfy.ldm.audio.embedders
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.StableAudio({"audio_model": "dit1.0", "io_channels": 64, "embed_dim": 64,
                                                 "depth": 1, "num_heads": 2, "cond_token_dim": 768,
                                                 "global_cond_dim": 1536, "project_cond_tokens": False,
                                                 "transformer_type": "continuous_transformer"})
    numbers = comfy.ldm.audio.embedders.NumberConditioner(768, min_val=0, max_val=512).state_dict()
    model = comfy.model_base.StableAudio1(config, numbers, numbers, device=torch.device("cpu"))
    return patched(randomized(model, seed, 0.02))


def sd_conditioning(seed: int = 1) -> tuple[list, list]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 7, 32, generator=generator), {}]], [[torch.zeros(1, 7, 32), {}]]


def stable_audio_conditioning(seconds_total: float, seed: int = 1) -> tuple[list, list]:
    generator = torch.Generator().manual_seed(seed)
    extra = {"seconds_start": 0.0, "seconds_total": seconds_total}
    return ([[torch.randn(1, 5, 768, generator=generator), dict(extra)]],
            [[torch.zeros(1, 5, 768), dict(extra)]])


def tiny_taesd_vae(seed: int = 2):
    """ComfyUI's VAE holding a random TAESD (its detection by the state dict's `taesd_decoder` keys)."""
    import comfy.sd
    import comfy.taesd.taesd

    state = scaled(comfy.taesd.taesd.TAESD(latent_channels=4), seed, 0.8).state_dict()
    return comfy.sd.VAE(sd=state, device=torch.device("cpu"), dtype=torch.float32)


def tiny_oobleck_vae(seed: int = 3):
    """ComfyUI's VAE holding Stable Audio Open's Oobleck autoencoder (its detection, its strides: 2048 samples a
    latent frame) with 4 base channels instead of 128."""
    import functools

    import comfy.ldm.audio.autoencoder
    import comfy.sd

    full = comfy.sd.AudioOobleckVAE
    state = scaled(comfy.ldm.audio.autoencoder.AudioOobleckVAE(channels=4), seed).state_dict()
    comfy.sd.AudioOobleckVAE = functools.partial(full, channels=4)
    try:
        return comfy.sd.VAE(sd=state, device=torch.device("cpu"), dtype=torch.float32)
    finally:
        comfy.sd.AudioOobleckVAE = full
