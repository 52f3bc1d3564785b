"""Patches against plain slicing; dense SIFT against OpenCV called directly."""

import cv2
import numpy as np
import pytest

from objrec.errors import InputError
from objrec.features import dense_sift, extract_patches, keypoint_sift, normalize_patches, pixels
from objrec.features.sift import sift_grid


def test_extract_patches_matches_slicing():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    P, pos = extract_patches(X, size=4, step=2)
    assert P.shape == (3, len(pos), 4 * 4 * 3)
    for n in range(3):
        for k, (r, c) in enumerate(pos):
            np.testing.assert_array_equal(P[n, k], X[n, r : r + 4, c : c + 4].reshape(-1))
    assert pos.tolist()[:3] == [[0, 0], [0, 2], [0, 4]]


def test_normalize_patches_zero_mean_unit_scale():
    rng = np.random.default_rng(0)
    P = rng.uniform(0, 255, (10, 25)).astype(np.float32)
    Z = normalize_patches(P, eps=0.0)
    np.testing.assert_allclose(Z.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(Z.std(axis=1), 1, atol=1e-4)
    flat = normalize_patches(np.full((1, 25), 100.0))  # flat patch: no division blow-up
    np.testing.assert_allclose(flat, 0)


def test_patch_too_large_raises():
    with pytest.raises(InputError, match="smaller than one 9x9 patch"):
        extract_patches(np.zeros((1, 8, 8), np.uint8), size=9)


def test_pixels_scaled():
    X = np.array([[[0, 255], [51, 102]]], np.uint8)
    np.testing.assert_allclose(pixels(X), [[0, 1, 0.2, 0.4]], atol=1e-7)


def test_dense_sift_equals_opencv():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    D = dense_sift(X, patch_size=12, step=8)
    centres = sift_grid(28, 28, patch_size=12, step=8)
    kps = [cv2.KeyPoint(float(x), float(y), 2.0, 0.0) for x, y in centres]
    _, ref = cv2.SIFT_create().compute(X[1], kps)
    assert D.shape == (2, len(centres), 128)
    np.testing.assert_allclose(D[1], ref)
    assert (D.sum(axis=-1) > 0).all()


def test_sift_patch_too_large_raises():
    with pytest.raises(InputError, match="smaller than one SIFT patch"):
        dense_sift(np.zeros((1, 8, 8), np.uint8), patch_size=12)


def test_keypoint_sift_falls_back_to_dense_on_flat_images():
    flat = np.full((1, 40, 40), 128, np.uint8)
    out = keypoint_sift(flat)
    assert len(out) == 1 and out[0].shape[1] == 128 and len(out[0]) >= 1
