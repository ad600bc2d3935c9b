"""The pipelines: long audio and panoramas from diffusers pipelines, and what they share (loading, the joint run,
the denoiser's batching, devices)."""
