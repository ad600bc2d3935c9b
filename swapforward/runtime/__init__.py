"""Where and how a run executes: devices, dtypes and schedulers by name (devices), host and device memory (memory),
saving and resuming a run (resume), the counted, batched denoiser (denoiser), several processes (distributed) and
signals (signals)."""
