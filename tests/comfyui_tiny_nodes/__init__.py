"""Test-only ComfyUI nodes that stand where a user's checkpoint loader and text encoder stand: tiny random models
built in ComfyUI's own classes (tests/comfyui_models.py) and conditioning tensors of their sizes. The real-server
test installs them beside the swapforward pack; the workflows use ComfyUI's own SaveImage and SaveAudio."""

import comfyui_models  # on the server's PYTHONPATH: the tests folder


class TinyCheckpoint:
    """A model, its VAE and a positive and negative conditioning, as a loader and two text encoders give them."""

    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL", "VAE", "CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("MODEL", "VAE", "positive", "negative")
    FUNCTION = "load"


class TinySDCheckpoint(TinyCheckpoint):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 1 << 30})}}

    def load(self, seed):
        return (comfyui_models.tiny_sd_model(seed), comfyui_models.tiny_taesd_vae(seed + 1),
                *comfyui_models.sd_conditioning(seed + 2))


class TinyStableAudioCheckpoint(TinyCheckpoint):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 1 << 30}),
                             "seconds_total": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 512.0})}}

    def load(self, seed, seconds_total):
        return (comfyui_models.tiny_stable_audio_model(seed), comfyui_models.tiny_oobleck_vae(seed + 1),
                *comfyui_models.stable_audio_conditioning(seconds_total, seed + 2))


NODE_CLASS_MAPPINGS = {"TinySDCheckpoint": TinySDCheckpoint, "TinyStableAudioCheckpoint": TinyStableAudioCheckpoint}
