"""The other joint-diffusion baselines of the paper: MAD (merged attention) and SyncDiffusion (LPIPS gradient)."""
