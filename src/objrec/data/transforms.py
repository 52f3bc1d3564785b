"""Colour and size conversion of whole uint8 batches (used by every loader's options).

The operations themselves live in :mod:`objrec.data.images` (the one image pipeline):
``resize_batch`` uses its one resize filter and aspect policy, ``to_grey`` its luma.
"""

from __future__ import annotations

import numpy as np

from objrec.data.images import (
    DEFAULT_FIT,
    parse_color,
    parse_fit,
    parse_size,
    resize_batch,
    to_grey,
    to_rgb,
)

__all__ = ["convert", "parse_color", "parse_fit", "parse_size", "resize_batch", "to_grey", "to_rgb"]


def convert(
    X: np.ndarray, color: str | None = None, size=None, fit: str = DEFAULT_FIT
) -> np.ndarray:
    """Apply the loader options ``color``, ``size`` and ``fit`` to a uint8 batch
    (N, H, W[, 3]): colour first, then the resize (as for image files)."""
    color = parse_color(color)
    hw = parse_size(size)
    if color == "grey":
        X = to_grey(X)
    elif color == "rgb":
        X = to_rgb(X)
    if hw is not None:
        X = resize_batch(X, hw, parse_fit(fit))
    return X
