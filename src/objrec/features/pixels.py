"""Raw pixels as a descriptor: the naive baseline every other method is measured against."""

from __future__ import annotations

import numpy as np


def to_gray(images: np.ndarray) -> np.ndarray:
    """Grey images (N, H, W) uint8 from (N, H, W) or (N, H, W, C) uint8 (ITU-R 601 luma)."""
    X = np.asarray(images)
    if X.ndim == 3:
        return X
    if X.shape[-1] == 1:
        return X[..., 0]
    rgb = X[..., :3].astype(np.float32)
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)


def pixels(images: np.ndarray, *, dtype=np.float32) -> np.ndarray:
    """Flattened pixels scaled to 0..1.

    Parameters
    ----------
    images : (N, H, W[, C]) uint8

    Returns
    -------
    (N, H * W * C) ``dtype`` in [0, 1].
    """
    X = np.asarray(images)
    return X.reshape(len(X), -1).astype(dtype) / dtype(255)
