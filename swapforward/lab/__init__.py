"""A ground-truth lab: every joint-diffusion method run over a long canvas of a world whose true distribution and
Bayes-optimal windowed denoiser are known in closed form, and measured against the truth (`swapforward lab`)."""
