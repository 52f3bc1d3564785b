"""HOG against scikit-image, which is the oracle: same values for every option."""

import numpy as np
import pytest
from skimage.feature import hog as sk_hog

from objrec.errors import InputError
from objrec.features import hog, hog_multi, hog_visualization


@pytest.fixture(scope="module")
def grey(digits_small):
    X = digits_small[0][:40]
    # 28x28 versions with real structure: upscale the digits by nearest neighbour, + noise
    big = np.kron(X, np.ones((1, 3, 3), np.uint8))[:, :, :]
    rng = np.random.default_rng(0)
    big = np.clip(big.astype(int) + rng.integers(-20, 20, big.shape), 0, 255).astype(np.uint8)
    return np.pad(big, ((0, 0), (2, 2), (2, 3)))  # (40, 28, 29): non-square, ragged cells


@pytest.mark.parametrize(
    "ppc, cpb, norm, sqrt, orient",
    [
        ((4, 4), (2, 2), "L2-Hys", False, 9),
        ((7, 7), (2, 2), "L1", True, 9),
        ((3, 5), (1, 2), "L1-sqrt", False, 12),
        ((8, 6), (3, 3), "L2", True, 8),
        ((6, 6), (1, 1), "L2-Hys", False, 6),
    ],
)
def test_hog_equals_skimage_grey(grey, ppc, cpb, norm, sqrt, orient):
    ours = hog(
        grey,
        orientations=orient,
        pixels_per_cell=ppc,
        cells_per_block=cpb,
        block_norm=norm,
        transform_sqrt=sqrt,
        dtype=np.float64,
    )
    ref = np.stack(
        [
            sk_hog(
                im,
                orientations=orient,
                pixels_per_cell=ppc,
                cells_per_block=cpb,
                block_norm=norm,
                transform_sqrt=sqrt,
            )
            for im in grey
        ]
    )
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_hog_equals_skimage_colour():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (6, 30, 31, 3), dtype=np.uint8)
    ours = hog(X, pixels_per_cell=6, cells_per_block=2, dtype=np.float64)
    ref = np.stack(
        [sk_hog(x, pixels_per_cell=(6, 6), cells_per_block=(2, 2), channel_axis=-1) for x in X]
    )
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_hog_batches_do_not_change_result(grey):
    a = hog(grey, pixels_per_cell=4, cells_per_block=2, batch_size=7)
    b = hog(grey, pixels_per_cell=4, cells_per_block=2, batch_size=1000)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


def test_hog_multi_concatenates(grey):
    m = hog_multi(grey, cells=((4, 2), (7, 1)))
    a = hog(grey, pixels_per_cell=4, cells_per_block=2, transform_sqrt=False)
    b = hog(grey, pixels_per_cell=7, cells_per_block=1)
    np.testing.assert_array_equal(m, np.hstack([a, b]))


def test_hog_too_small_images_raise():
    X = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(InputError, match="smaller than one HOG cell"):
        hog(X, pixels_per_cell=9)
    with pytest.raises(InputError, match="fewer than one block"):
        hog(X, pixels_per_cell=4, cells_per_block=3)
    with pytest.raises(InputError, match="block_norm"):
        hog(X, pixels_per_cell=2, cells_per_block=2, block_norm="L3")


def test_hog_visualization_is_skimage_picture(grey):
    vis = hog_visualization(grey[0], pixels_per_cell=4, cells_per_block=2)
    _, ref = sk_hog(grey[0], pixels_per_cell=(4, 4), cells_per_block=(2, 2), visualize=True)
    assert vis.shape == grey[0].shape
    np.testing.assert_allclose(vis, ref)
    assert vis.max() > 0
