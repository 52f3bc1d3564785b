"""Pixel statistics of uint8 image batches, exact and without a float copy of the data."""

from __future__ import annotations

import numpy as np


def channel_mean_std(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 images, in 0..1 units.

    Parameters
    ----------
    X : uint8 ndarray, (N, H, W) or (N, H, W, C), or an iterator of such batches (e.g.
        ``ImageFiles.chunks()``: the histograms are summed, nothing else is kept)

    Returns
    -------
    mean, std : float64 ndarrays of shape (C,), C = 1 for (N, H, W) input.

    Counts the 256 possible values per channel (``np.bincount``), so the result is exact
    and memory stays O(1) however large ``X`` is.
    """
    batches = [X] if isinstance(X, np.ndarray) or not hasattr(X, "__next__") else X
    hists = None
    for B in batches:
        B = np.asarray(B)
        if B.dtype != np.uint8:
            raise TypeError(f"channel_mean_std expects uint8 images, got {B.dtype}")
        channels = [B] if B.ndim == 3 else [B[..., c] for c in range(B.shape[-1])]
        h = [np.bincount(ch.reshape(-1), minlength=256).astype(np.float64) for ch in channels]
        hists = h if hists is None else [a + b for a, b in zip(hists, h, strict=True)]
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for hist in hists or [np.zeros(256)]:
        n = hist.sum()
        if n == 0:
            means.append(np.nan)
            stds.append(np.nan)
            continue
        m = float(hist @ values / n)
        means.append(m)
        stds.append(float(np.sqrt(hist @ (values - m) ** 2 / n)))
    return np.array(means), np.array(stds)
