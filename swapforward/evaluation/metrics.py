"""The paper's metrics as functions of features: distances between sets, and coherence inside one output.

Feature extraction (PANNs, VGGish, Inception, CLIP, CLAP, LPIPS, VGG19) is separate (`features.py`), so every formula
here works on plain arrays and is checked against closed forms in the tests. FD/FID and KID use clean-fid's
implementations; the rest are written out because no library computes them on given features.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (samples, dims) features."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FD on PANNs, FAD on VGGish, FID on Inception)."""
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    return float(cleanfid_frechet(*gaussian(generated), *gaussian(reference)))


def kernel_distance(generated: np.ndarray, reference: np.ndarray, subsets: int = 100, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets (clean-fid's)."""
    from cleanfid.fid import kernel_distance as cleanfid_kid

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        size = min(len(generated), len(reference), 1000)
        return float(cleanfid_kid(np.asarray(generated), np.asarray(reference), subsets, size))
    finally:
        np.random.set_state(state)


def kl_divergence(generated_logits: np.ndarray, reference_logits: np.ndarray, paired: bool) -> float:
    """KL(reference || generated) of class posteriors (softmax of logits), AudioLDM's way, summed over classes.

    `paired`: row i of each set belong together (equal file names). Unpaired sets, the paper's case (crops of long
    outputs against separately generated clips), compare each generated posterior with the mean reference posterior.
    """
    generated = torch.softmax(torch.as_tensor(np.asarray(generated_logits), dtype=torch.float64), -1)
    reference = torch.softmax(torch.as_tensor(np.asarray(reference_logits), dtype=torch.float64), -1)
    if not paired:
        reference = reference.mean(0, keepdim=True).expand_as(generated)
    kl = torch.nn.functional.kl_div(torch.log(generated + 1e-6), reference, reduction="sum")
    return float(kl / generated.shape[0])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (n, d) and (n or 1, d) embeddings."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def text_alignment(embeddings: np.ndarray, text_embedding: np.ndarray, scale: float = 1.0) -> float:
    """CLAP score (scale 1, cosine) or CLIP score (scale 100, with negative cosines clipped to 0, as torchmetrics)."""
    sims = cosine(embeddings, np.asarray(text_embedding).reshape(1, -1))
    return float(scale * (np.maximum(sims, 0) if scale != 1.0 else sims).mean())


def mean_pairwise_cosine(embeddings: np.ndarray) -> float:
    """Intra-CLAP: mean cosine similarity over all pairs of one output's crops (1 for identical crops)."""
    pairs = list(itertools.combinations(range(len(embeddings)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([cosine(embeddings[i], embeddings[j]) for i, j in pairs]))


def mean_pairwise(distance, crops: list[torch.Tensor]) -> float:
    """Mean of `distance(a, b)` over all pairs of crops (Intra-LPIPS, Intra-Style-Loss)."""
    pairs = list(itertools.combinations(range(len(crops)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([float(distance(crops[i], crops[j])) for i, j in pairs]))


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (1, c, h, w) features divided by c * h * w (and the batch), as in SyncDiffusion's evaluation."""
    b, c, h, w = features.shape
    flat = features.reshape(b * c, h * w)
    return flat @ flat.T / (b * c * h * w)


def style_loss(features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> float:
    """Sum over layers of the mean squared difference of Gram matrices (Gatys et al.), for Intra-Style-Loss."""
    return float(sum(torch.mean((gram(a) - gram(b)) ** 2) for a, b in zip(features_a, features_b, strict=False)))
