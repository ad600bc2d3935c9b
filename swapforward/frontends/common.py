"""What the command line, batch jobs and the web app do alike: quiet the libraries, load a kind's model as a
loading request says, check and write the outputs."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ..options import Request
from ..registry import Kind


def quiet_libraries() -> None:
    """Keep the libraries' warnings and download chatter out of the terminal; our own messages say what matters."""
    import warnings

    warnings.filterwarnings("ignore")
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


class _Notes(logging.Handler):
    """The library's warnings as 'note: ...' lines on whatever stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


def load_model(kind: Kind, load: Request, device: str | None = None) -> Any:
    """The pipeline of `kind` loaded as `load` says (device, dtype and scheduler are checked before any download)."""
    quiet_libraries()
    return kind.pipeline_class().from_pretrained(
        load.model or kind.default_model, device=device or load.device, torch_dtype=load.dtype,
        scheduler=load.scheduler, compile=load.compile,
    )


def check_outputs(kind: Kind, output: Request) -> None:
    """Refuse unwritable or unsupported outputs before any model work."""
    from ..files import IMAGE_FORMATS, check_output_path

    check_output_path(output.out, kind.formats)
    if output.get("spectrogram") is not None:
        check_output_path(output.spectrogram, IMAGE_FORMATS)


def save_result(result: Any, output: Request, request: Request) -> None:
    """Write the result (and, for audio, its spectrogram picture when asked), each atomically."""
    from ..prompts import words

    result.save(output.out)
    if output.get("spectrogram") is not None:
        result.save_spectrogram(output.spectrogram, title=f"{result.method}: {words(request.prompt)}")
