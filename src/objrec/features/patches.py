"""Local patches on a regular grid, the raw material of a bag of visual words."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from objrec.errors import InputError


def grid_positions(height: int, width: int, size: int, step: int) -> np.ndarray:
    """Top-left corners (K, 2) int (row, col) of the ``size`` x ``size`` patches, ``step`` apart.

    Raises :class:`~objrec.errors.InputError` if the image is smaller than one patch.
    """
    if height < size or width < size:
        raise InputError(
            f"images are {height}x{width} pixels, smaller than one {size}x{size} patch; "
            "choose a smaller patch_size or resize the images"
        )
    rows = np.arange(0, height - size + 1, step)
    cols = np.arange(0, width - size + 1, step)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def extract_patches(
    images: np.ndarray, *, size: int = 5, step: int = 1, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """All ``size`` x ``size`` patches on a grid with stride ``step``.

    Parameters
    ----------
    images : (N, H, W) or (N, H, W, C) array
    size, step : int
        Patch side and grid stride in pixels.

    Returns
    -------
    patches : (N, K, size * size * C) ``dtype``, raw pixel values (row-major, channels last)
    positions : (K, 2) int, top-left (row, col) of each patch
    """
    X = np.asarray(images)
    if X.ndim == 3:
        X = X[..., None]
    n, h, w, c = X.shape
    pos = grid_positions(h, w, size, step)
    win = sliding_window_view(X, (size, size), axis=(1, 2))[:, ::step, ::step]
    # win: (N, R, C', c, size, size) -> (N, R, C', size, size, c)
    win = np.moveaxis(win, 3, -1)
    return win.reshape(n, -1, size * size * c).astype(dtype), pos


def normalize_patches(patches: np.ndarray, *, eps: float = 10.0, scale: float = 1.0) -> np.ndarray:
    """Brightness and contrast normalisation of each patch (Coates, Lee & Ng 2011).

    ``(p - mean(p)) / sqrt(var(p) + eps)`` with ``eps`` in squared pixel units (10 for
    0..255 pixels): flat patches stay near zero instead of amplifying noise.

    Parameters
    ----------
    patches : (..., D) float array
    Returns
    -------
    (..., D) float32
    """
    P = np.asarray(patches, dtype=np.float32) * np.float32(scale)
    P = P - P.mean(axis=-1, keepdims=True)
    return P / np.sqrt(P.var(axis=-1, keepdims=True) + np.float32(eps))
