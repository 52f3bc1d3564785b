"""Pixel statistics of uint8 image batches, exact and without a float copy of the data."""

from __future__ import annotations

import numpy as np


def channel_mean_std(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 images, in 0..1 units.

    Parameters
    ----------
    X : uint8 ndarray, (N, H, W) or (N, H, W, C)

    Returns
    -------
    mean, std : float64 ndarrays of shape (C,), C = 1 for (N, H, W) input.

    Counts the 256 possible values per channel (``np.bincount``), so the result is exact
    and memory stays O(1) however large ``X`` is.
    """
    X = np.asarray(X)
    if X.dtype != np.uint8:
        raise TypeError(f"channel_mean_std expects uint8 images, got {X.dtype}")
    channels = [X] if X.ndim == 3 else [X[..., c] for c in range(X.shape[-1])]
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for ch in channels:
        hist = np.bincount(ch.reshape(-1), minlength=256).astype(np.float64)
        n = hist.sum()
        if n == 0:
            means.append(np.nan)
            stds.append(np.nan)
            continue
        m = float(hist @ values / n)
        means.append(m)
        stds.append(float(np.sqrt(hist @ (values - m) ** 2 / n)))
    return np.array(means), np.array(stds)
