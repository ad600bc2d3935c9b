"""Evaluation: the paper's metrics (metrics.py), crops (crops.py), feature networks (features.py), weights
cache (weights.py) and the protocol over folders (evaluate.py)."""
