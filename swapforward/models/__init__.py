"""Model adapters and loading by hub id, local folder or an already loaded diffusers pipeline."""

from __future__ import annotations

import functools
import os
import socket
from typing import Any
from urllib.parse import urlparse

from ..errors import SwapForwardError
from .ace_step import AceStepAdapter
from .audioldm import AudioLDM2Adapter, AudioLDMAdapter
from .base import AudioAdapter, ImageAdapter
from .flux import FluxAdapter
from .flux2 import Flux2KleinAdapter
from .longcat_audio import LongCatAudioAdapter
from .qwen_image import QwenImageAdapter
from .stable_audio import StableAudioAdapter
from .stable_audio_3 import StableAudio3Adapter
from .stable_diffusion import (
    StableDiffusion3Adapter,
    StableDiffusionAdapter,
    StableDiffusionXLAdapter,
)
from .z_image import ZImageAdapter

#: diffusers pipeline class name -> adapter class.
AUDIO_ADAPTERS: dict[str, type[AudioAdapter]] = {
    "AudioLDMPipeline": AudioLDMAdapter,
    "AudioLDM2Pipeline": AudioLDM2Adapter,
    "StableAudioPipeline": StableAudioAdapter,
    "StableAudio3Pipeline": StableAudio3Adapter,
    "LongCatAudioDiTPipeline": LongCatAudioAdapter,
    "AceStepPipeline": AceStepAdapter,
}

#: diffusers pipeline class name -> adapter class, for panoramas.
IMAGE_ADAPTERS: dict[str, type[ImageAdapter]] = {
    "StableDiffusionPipeline": StableDiffusionAdapter,
    "StableDiffusionXLPipeline": StableDiffusionXLAdapter,
    "StableDiffusion3Pipeline": StableDiffusion3Adapter,
    "FluxPipeline": FluxAdapter,
    "ZImagePipeline": ZImageAdapter,
    "QwenImagePipeline": QwenImageAdapter,
    "Flux2KleinPipeline": Flux2KleinAdapter,
}

#: Checkpoints known to work, for messages and docs.
KNOWN_AUDIO_MODELS = (
    "cvssp/audioldm-s-full-v2",
    "cvssp/audioldm-m-full",
    "cvssp/audioldm-l-full",
    "cvssp/audioldm2",
    "cvssp/audioldm2-music",
    "cvssp/audioldm2-large",
    "stabilityai/stable-audio-open-1.0",
    "stabilityai/stable-audio-3-medium",
    "stabilityai/stable-audio-3-medium-base",
    "ruixiangma/LongCat-AudioDiT-1B-Diffusers",
    "ACE-Step/acestep-v15-xl-turbo-diffusers",
)


def adapter_for(pipe: Any, adapters: dict[str, type], kind: str) -> Any:
    """The adapter for a loaded diffusers pipeline, or a one-sentence error naming the supported families."""
    name = type(pipe).__name__
    adapter = adapters.get(name)
    if adapter is None:
        raise SwapForwardError(f"{name} is not a supported {kind} pipeline; supported: {', '.join(adapters)}.")
    return adapter(pipe)


def looks_like_path(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").replace("/", "", 1) or (
        os.path.splitdrive(model_id)[0] != ""
    )


def _load_error(model_id: str, error: Exception) -> SwapForwardError:
    """Translate the hub's and diffusers' loading errors into one sentence a user can act on."""
    chain, e = [], error
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    text = " ".join(str(x) for x in chain).lower()
    if "RepositoryNotFoundError" in names or "not a valid model identifier" in text or "404" in text:
        return SwapForwardError(
            f"Model {model_id!r} was not found on the Hugging Face hub; check the id "
            f"(e.g. {KNOWN_AUDIO_MODELS[0]}) or log in with `hf auth login` if it is gated."
        )
    if "GatedRepoError" in names or "401" in text or "403" in text:
        return SwapForwardError(
            f"Model {model_id!r} is gated; accept its licence on the hub and log in with `hf auth login`."
        )
    if "cached" in text or "offline" in text or "connect" in text or "outgoing traffic" in text:
        return SwapForwardError(
            f"Model {model_id!r} is not in the local Hugging Face cache and the hub cannot be reached; "
            f"run `hf download {model_id}` on a machine with network access (the cache is ~/.cache/huggingface, "
            f"or HF_HOME) or pass the path of a local copy."
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return SwapForwardError(f"Could not load model {model_id!r}: {first}")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers on its port, so an offline machine fails fast, without retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_hub_id(model_id: str) -> None:
    """Refuse, in one sentence, a model that is neither a local folder nor a well-formed hub id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model_id)
    except HFValidationError:
        raise SwapForwardError(
            f"Model {model_id!r} is neither a local folder nor a hub id (owner/name of letters, digits, '-', '_' "
            f"and '.', e.g. {KNOWN_AUDIO_MODELS[0]})."
        ) from None


def check_model(model_id: str, supported: dict[str, type], local_files_only: bool = False) -> tuple[str, bool]:
    """Refuse, in one sentence, a model that cannot be one of `supported`: a folder that does not exist, a malformed
    hub id, a config that cannot be read, a pipeline class without an adapter. Reads only the model's index, so the
    app checks its models when it starts. Returns (the path or id to load, whether it is a local folder)."""
    from diffusers import DiffusionPipeline

    if not isinstance(model_id, str) or not model_id.strip():
        raise SwapForwardError(f"The model id must be a hub id or a local folder, got {model_id!r}.")
    if looks_like_path(model_id) and not os.path.isdir(os.path.expanduser(model_id)):
        raise SwapForwardError(f"Model folder {model_id!r} does not exist.")
    local = os.path.isdir(os.path.expanduser(model_id))
    path = os.path.expanduser(model_id) if local else model_id
    if not local:
        check_hub_id(model_id)
    try:
        config = DiffusionPipeline.load_config(path, local_files_only=local_files_only)
    except Exception as error:  # the hub client raises many types; all become one message
        raise _load_error(model_id, error) from None
    class_name = config.get("_class_name", "?")
    if class_name not in supported:
        raise SwapForwardError(
            f"Model {model_id!r} is {'an' if class_name[:1].lower() in 'aeiou' else 'a'} {class_name}, which this "
            f"command does not support; supported: {', '.join(supported)}."
        )
    return path, local


def preflight(model_id: str, supported: dict[str, type], local_files_only: bool = False) -> tuple[str, bool]:
    """Everything that can refuse a model before its weights load (a malformed id before the network is tried, a
    missing folder, an uncached id offline, an unsupported pipeline class): (the path or id to load, whether only
    local files may be read)."""
    hub = isinstance(model_id, str) and model_id.strip() and not looks_like_path(model_id) and not os.path.isdir(
        os.path.expanduser(model_id))
    if hub:
        check_hub_id(model_id)
        local_files_only = local_files_only or not hub_reachable()
    path, _ = check_model(model_id, supported, local_files_only)
    return path, local_files_only


def load_pipeline(model_id: str, supported: dict[str, type], **kwargs: Any) -> Any:
    """Load a diffusers pipeline by hub id or local folder, refusing families without an adapter first.

    A hub id is read from the local cache when the hub cannot be reached.
    """
    from diffusers import DiffusionPipeline

    path, offline = preflight(model_id, supported, kwargs.get("local_files_only", False))
    if offline:
        kwargs["local_files_only"] = True
    try:
        return DiffusionPipeline.from_pretrained(path, **kwargs)
    except Exception as error:
        raise _load_error(model_id, error) from None
