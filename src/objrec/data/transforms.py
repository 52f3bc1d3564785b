"""Colour and size conversion of whole uint8 batches (used by every loader's options)."""

from __future__ import annotations

import numpy as np

from objrec.errors import DatasetError

_GREY = {"grey", "gray", "l", "mono", "1"}
_RGB = {"rgb", "color", "colour", "3"}


def parse_color(color: str | None) -> str | None:
    """``None`` (keep), ``"grey"`` or ``"rgb"``; accepts common spellings."""
    if color is None:
        return None
    c = str(color).strip().lower()
    if c in _GREY:
        return "grey"
    if c in _RGB:
        return "rgb"
    raise DatasetError(f"color={color!r}: use 'grey' or 'rgb' (or None to keep the stored mode)")


def parse_size(size: int | tuple[int, int] | str | None) -> tuple[int, int] | None:
    """``None`` (keep), an int (square) or (height, width); strings like ``"28"`` or ``"32x48"``
    (height x width) are accepted for the CLI."""
    if size is None:
        return None
    try:
        if isinstance(size, str):
            parts = size.lower().replace(",", "x").split("x")
            hw = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else None
        elif isinstance(size, int | np.integer):
            hw = (int(size), int(size))
        else:
            h, w = size
            hw = (int(h), int(w))
    except (TypeError, ValueError):
        hw = None
    if hw is None or min(hw) < 1 or max(hw) > 4096:
        raise DatasetError(
            f"size={size!r}: give one int (square) or (height, width) between 1 and 4096"
        )
    return hw


def to_grey(X: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB -> (N, H, W) grey with ITU-R 601 luma (as Pillow's "L" and OpenCV)."""
    if X.ndim == 3:
        return X
    import cv2

    n, h, w, _ = X.shape
    flat = np.ascontiguousarray(X).reshape(n * h, w, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def to_rgb(X: np.ndarray) -> np.ndarray:
    """(N, H, W) grey -> (N, H, W, 3) by repeating the channel."""
    if X.ndim == 4:
        return X
    return np.repeat(X[..., None], 3, axis=-1)


def resize_batch(X: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize every image of (N, H, W[, 3]) to ``size`` = (height, width).

    Uses area interpolation when shrinking (no aliasing) and bilinear when enlarging.
    """
    h, w = size
    if X.shape[1:3] == (h, w):
        return X
    import cv2

    interp = cv2.INTER_AREA if h * w < X.shape[1] * X.shape[2] else cv2.INTER_LINEAR
    out = np.empty((len(X), h, w, *X.shape[3:]), np.uint8)
    for i, img in enumerate(X):
        out[i] = cv2.resize(img, (w, h), interpolation=interp)
    return out


def convert(X: np.ndarray, color: str | None = None, size=None) -> np.ndarray:
    """Apply the loader options ``color`` and ``size`` to a uint8 batch."""
    color = parse_color(color)
    hw = parse_size(size)
    if color == "grey":
        X = to_grey(X)
    elif color == "rgb":
        X = to_rgb(X)
    if hw is not None:
        X = resize_batch(X, hw)
    return X
