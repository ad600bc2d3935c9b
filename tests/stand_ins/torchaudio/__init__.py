"""A stand-in for torchaudio, on the path of the ComfyUI tests only when torchaudio is not installed: PyPI has no
torchaudio for the torch these tests run on (2.14.1), and ComfyUI's audio nodes import it at module level for
resampling alone, which no test does (a call says so)."""

from . import functional  # noqa: F401
