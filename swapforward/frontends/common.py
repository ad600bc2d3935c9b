"""What the command line, batch jobs and the web app do alike: quiet the libraries, load a kind's model as a
loading request says, check and write the outputs."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import SwapForwardError
from ..options import Request
from .registry import Kind


def quiet_libraries() -> None:
    """Keep the libraries' warnings and download chatter out of the terminal; our own messages say what matters."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers sets up its logger
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ours = logging.getLogger("swapforward")  # our notes: one line each on stderr
    if not any(isinstance(h, _Notes) for h in ours.handlers):
        ours.addHandler(_Notes())
        ours.propagate = False
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # they set their loggers' levels when first used: set them again
    transformers.utils.logging.set_verbosity_error()


class _Notes(logging.Handler):
    """The library's warnings as 'note: ...' lines on whatever stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


#: The least any supported model needs per second or per pixel column: 16 kHz audio (AudioLDM), 512 px high panoramas
#: (SD 1.x and 2 base), so that an output that cannot fit is refused before a model loads.
LEAST_SAMPLE_RATE, LEAST_HEIGHT = 16000, 512


#: Audio at least this long gets the memory estimate printed while its model loads.
LONG_RUN_SECONDS = 3600


def memory_estimate(kind: Kind, request: Request) -> str:
    """The host-memory estimate the check uses (with the least any model of the kind needs), in words."""
    from ..runtime.memory import WORKING_BYTES, audio_bytes, available_memory_bytes

    need = WORKING_BYTES + audio_bytes(request.audio_length_in_s, LEAST_SAMPLE_RATE, request.num_waveforms_per_prompt)
    return f"needs about {need / 2**30:.1f} GiB of host memory; {available_memory_bytes() / 2**30:.1f} GiB is free"


def in_their_words(error: SwapForwardError, kind: Kind, source: str) -> SwapForwardError:
    """A pipeline's sentence, which names options as the Python API does (`audio_length_in_s=`), with the names the
    user wrote them under (`--seconds=` on the command line)."""
    text = str(error)
    for option in kind.spec.options:
        text = re.sub(rf"(?<![\w-]){re.escape(option.name)}=", f"{option.label(source)}=", text)
    return SwapForwardError(text)


def check_fits(kind: Kind, request: Request, label: Any) -> None:
    """The host-memory check before loading, with the least any model of the kind needs (the pipeline checks again
    with its own model's sample rate or height)."""
    from ..runtime.memory import BYTES_PER_PIXEL, check_audio_memory, check_host_memory

    if kind.name == "audio":
        check_audio_memory(label("audio_length_in_s"), request.audio_length_in_s, LEAST_SAMPLE_RATE,
                           request.num_waveforms_per_prompt)
    else:
        pixels = (request.height or LEAST_HEIGHT) * request.width * request.num_images_per_prompt
        check_host_memory(label("width"), request.width, pixels, BYTES_PER_PIXEL, "px", 8)


def load_model(kind: Kind, load: Request, device: str | None = None, announce: Any = None) -> Any:
    """The pipeline of `kind` loaded as `load` says (device, dtype and scheduler are checked before any download);
    `announce(line)` says that the weights are loading, once the model has passed every check that needs no weights
    (so a bad id or folder is still one line)."""
    from ..models import preflight

    quiet_libraries()
    model = load.model or kind.default_model
    if announce is not None:
        preflight(model, kind.pipeline_class().adapters)
        announce(f"loading {model} ...")
    return kind.pipeline_class().from_pretrained(
        load.model or kind.default_model, device=device or load.device, torch_dtype=load.dtype,
        scheduler=load.scheduler, compile=load.compile,
    )


def request_takes(request: Request) -> int:
    """How many takes a checked request asks for."""
    return int(request.get("num_waveforms_per_prompt", request.get("num_images_per_prompt", 1)))


def take_path(path: Path, take: int, takes: int) -> Path:
    """The file of take `take`: the path itself for one take, name_0.ext, name_1.ext, ... for several."""
    return path if takes == 1 else path.with_name(f"{path.stem}_{take}{path.suffix}")


def check_outputs(kind: Kind, output: Request, takes: int = 1, make_folder: bool = False) -> None:
    """Refuse unwritable or unsupported outputs, and a sample rate the format cannot take, before any model work
    (with `make_folder`, a missing folder that can be made is fine)."""
    from ..io.files import AUDIO_RATES, IMAGE_FORMATS, check_output_path

    for take in range(takes):
        path = take_path(output.out, take, takes)
        check_output_path(path, kind.formats, make_folder)
        if output.get("sidecar"):
            check_output_path(f"{path}.json", None, make_folder)
        if output.get("spectrogram") is not None:
            check_output_path(take_path(output.spectrogram, take, takes), IMAGE_FORMATS, make_folder)
    rates = AUDIO_RATES.get(output.out.suffix.lower())
    if rates and output.get("sample_rate") is not None and output.sample_rate not in rates:
        raise SwapForwardError(f"{output.out.suffix} takes sample rates of {', '.join(map(str, rates))} Hz, not "
                               f"{output.sample_rate}.")


def check_loudness(request: Request, output: Request, label: str = "--loudness") -> None:
    """A loudness target needs 0.4 s of audio to measure: refused before the model loads, not after generating."""
    from ..io.delivery import LOUDNESS_MIN_SECONDS

    if output.get("loudness") is not None and request.audio_length_in_s < LOUDNESS_MIN_SECONDS:
        raise SwapForwardError(f"{label} needs at least {LOUDNESS_MIN_SECONDS} s of audio to measure; this output "
                               f"lasts {request.audio_length_in_s:g} s.")


def check_ranking(request: Request) -> None:
    """Ranking takes needs the evaluation's CLAP or CLIP weights in the cache: one sentence before any model work."""
    if request.rank != "none":
        from ..evaluation.ranking import RANK_WEIGHTS
        from ..evaluation.weights import require

        require(RANK_WEIGHTS[request.rank])


def save_result(result: Any, output: Request, request: Request) -> list[Path]:
    """Write every take (and, for audio, its spectrogram picture when asked), each atomically; the paths written."""
    from ..prompts import words

    takes = result.takes or [result]
    written = []
    for index, take in enumerate(takes):
        options = {k: output[k] for k in ("sample_rate", "loudness", "sidecar") if k in output}
        written.append(Path(take.save(take_path(output.out, index, len(takes)), **options)))
        if output.get("spectrogram") is not None:
            take.save_spectrogram(take_path(output.spectrogram, index, len(takes)),
                                  title=f"{take.method}: {words(request.prompt)}")
    return written
