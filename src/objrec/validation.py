"""Checks shared by every estimator: images are uint8 arrays (N, H, W) or (N, H, W, C).

Each check raises :class:`objrec.errors.InputError` with a message that says what was
wrong and how to fix it; none of them copies data that is already valid.
"""

from __future__ import annotations

import numpy as np

from objrec.errors import InputError


def check_images(
    X, *, min_size: int | tuple[int, int] | None = None, what: str = "X"
) -> np.ndarray:
    """Validate a batch of images.

    Parameters
    ----------
    X : array-like, (N, H, W) or (N, H, W, C) with C in {1, 3, 4}
        uint8 pixels (0..255). Float input is accepted only if it is finite and holds
        whole numbers in 0..255 (what a uint8 array becomes after ``astype(float)``);
        a list of differently sized images is refused with advice to resize.
    min_size : int or (h, w), optional
        Smallest height and width the caller can work with (e.g. one HOG cell).

    Returns
    -------
    ndarray uint8, (N, H, W) or (N, H, W, C)
    """
    if isinstance(X, list | tuple) and X and len({np.shape(x) for x in X}) > 1:
        shapes = sorted({np.shape(x) for x in X})[:3]
        raise InputError(
            f"{what}: images have different shapes ({', '.join(map(str, shapes))}, ...); "
            "resize them to one size first (e.g. objrec.data.load_folder(..., size=(28, 28)))"
        )
    try:
        arr = np.asarray(X)
    except ValueError as e:  # ragged nested sequences
        raise InputError(
            f"{what}: could not make one array of the images ({e}); resize them to one size"
        ) from e
    if arr.dtype == object:
        raise InputError(f"{what}: images have different shapes; resize them to one size first")
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)):
        raise InputError(
            f"{what}: expected images as (N, H, W) or (N, H, W, C) with C in 1, 3, 4; got shape {arr.shape}. "
            "A single image needs a leading batch axis: X[None]; flattened rows need reshaping to (N, H, W)"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{what}: got 0 images")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "biuf":
            raise InputError(f"{what}: expected uint8 pixels, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputError(
                f"{what}: contains NaN or infinite values; images must be uint8 pixels 0..255"
            )
        if (
            arr.min() < 0
            or arr.max() > 255
            or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr)))
        ):
            raise InputError(
                f"{what}: expected uint8 pixels 0..255, got {arr.dtype} in [{arr.min()}, {arr.max()}]; "
                "convert with (x * 255).round().astype(np.uint8) if your images are floats in 0..1"
            )
        arr = arr.astype(np.uint8)
    if min_size is not None:
        mh, mw = (min_size, min_size) if isinstance(min_size, int) else min_size
        if arr.shape[1] < mh or arr.shape[2] < mw:
            raise InputError(
                f"{what}: images are {arr.shape[1]}x{arr.shape[2]} pixels, this method needs at least "
                f"{mh}x{mw}; resize them or choose smaller cells/patches"
            )
    return arr


def check_labels(y, n_samples: int, *, min_classes: int = 2) -> np.ndarray:
    """Validate labels for ``n_samples`` images: 1-D, same length, at least ``min_classes`` classes."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"y: expected a 1-D array of labels, got shape {arr.shape}")
    if len(arr) != n_samples:
        raise InputError(
            f"y: {len(arr)} labels for {n_samples} images; each image needs exactly one label"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("y: labels contain NaN or infinite values")
    n = len(np.unique(arr))
    if n < min_classes:
        raise InputError(f"y: found {n} class, a classifier needs at least {min_classes}")
    return arr


def check_fit_input(X, y, *, min_size=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_images` and :func:`check_labels` together, as every ``fit`` needs."""
    X = check_images(X, min_size=min_size)
    return X, check_labels(y, len(X))
