"""torchaudio.functional's resample, which the ComfyUI tests never reach."""


def resample(*args, **kwargs):
    raise NotImplementedError("torchaudio is not installed; this test environment's stand-in cannot resample")
