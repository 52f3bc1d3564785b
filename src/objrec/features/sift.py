"""SIFT descriptors (OpenCV) on a dense grid or at detected keypoints.

Small images (digits, 28x28 garments) have too few stable keypoints, so descriptors are
computed at fixed grid positions with a fixed scale and orientation ("dense SIFT");
large images can use OpenCV's detector instead (:func:`keypoint_sift`).

A SIFT descriptor is a 4x4 grid of 8-bin orientation histograms (128 values). In OpenCV a
keypoint of ``size`` s spreads its 4x4 histogram cells over about ``1.5 * s`` pixels each,
so the descriptor covers a square of side ``patch_size = 6 * s``; the functions here take
``patch_size`` (pixels) and set the keypoint size from it.
"""

from __future__ import annotations

import numpy as np

from objrec.errors import InputError
from objrec.features.pixels import to_gray

DESCRIPTOR_SIZE = 128


def sift_grid(height: int, width: int, *, patch_size: int, step: int) -> np.ndarray:
    """Centres (K, 2) float32 (x, y) of dense SIFT patches covering the image.

    Patches of ``patch_size`` pixels are placed ``step`` pixels apart, the first one
    touching the top-left corner; raises :class:`~objrec.errors.InputError` if not even
    one fits.
    """
    if patch_size < 4:
        raise InputError(f"patch_size={patch_size}: a SIFT patch needs at least 4x4 pixels")
    if height < patch_size or width < patch_size:
        raise InputError(
            f"images are {height}x{width} pixels, smaller than one SIFT patch of {patch_size}x{patch_size}; "
            "choose a smaller patch_size or resize the images"
        )
    half = patch_size / 2.0
    ys = np.arange(half, height - half + 1e-6, step)
    xs = np.arange(half, width - half + 1e-6, step)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32) - 0.5


def _sift():
    import cv2

    return cv2.SIFT_create()


def dense_sift(images: np.ndarray, *, patch_size: int = 16, step: int = 8) -> np.ndarray:
    """Upright SIFT descriptors on a dense grid.

    Parameters
    ----------
    images : (N, H, W) or (N, H, W, C) uint8
        Colour images are converted to grey first.
    patch_size : int
        Side in pixels of the square each descriptor covers.
    step : int
        Grid stride in pixels.

    Returns
    -------
    (N, K, 128) float32, K = number of grid positions (:func:`sift_grid`); each
    descriptor is OpenCV's (L2-normalised, clipped at 0.2, scaled to 0..255 as float).
    """
    import cv2

    X = to_gray(np.asarray(images, dtype=np.uint8))
    n, h, w = X.shape
    centres = sift_grid(h, w, patch_size=patch_size, step=step)
    kps = [cv2.KeyPoint(float(x), float(y), patch_size / 6.0, 0.0) for x, y in centres]
    sift = _sift()
    out = np.zeros((n, len(kps), DESCRIPTOR_SIZE), np.float32)
    for i in range(n):
        got, desc = sift.compute(np.ascontiguousarray(X[i]), kps)
        if desc is None or len(got) != len(kps):
            raise InputError(
                f"image {i}: OpenCV computed {0 if desc is None else len(got)} of {len(kps)} "
                "SIFT descriptors; choose a smaller patch_size"
            )
        out[i] = desc
    return out


def keypoint_sift(
    images: np.ndarray, *, max_keypoints: int = 200, min_keypoints: int = 8, fallback_step: int = 8
) -> list[np.ndarray]:
    """SIFT descriptors at keypoints found by OpenCV's detector, one array per image.

    Images where fewer than ``min_keypoints`` are found (flat or tiny images) get dense
    descriptors instead (16-pixel patches ``fallback_step`` apart, or one patch covering
    the image if it is smaller), so that no image ends up with an empty description.

    Returns
    -------
    list of N float32 arrays (K_i, 128), K_i <= ``max_keypoints`` (strongest responses).
    """
    import cv2

    X = to_gray(np.asarray(images, dtype=np.uint8))
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    h, w = X.shape[1:3]
    patch = max(4, min(16, h, w))
    dense = [
        cv2.KeyPoint(float(x), float(y), patch / 6.0, 0.0)
        for x, y in sift_grid(h, w, patch_size=patch, step=fallback_step)
    ]
    out = []
    for img in X:
        img = np.ascontiguousarray(img)
        kps, desc = sift.detectAndCompute(img, None)
        if desc is None or len(kps) < min_keypoints:
            _, desc = sift.compute(img, dense)
        out.append(np.asarray(desc, np.float32)[:max_keypoints])
    return out
