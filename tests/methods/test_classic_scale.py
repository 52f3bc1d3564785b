"""Classic methods on photo-sized input: the internal working size (resize in fit and
predict, no upscaling), descriptor lengths that do not grow with the image, and bovw
memory bounded by its chunks rather than by the data set."""

import tracemalloc

import numpy as np
import pytest

import objrec
from objrec.data.transforms import resize_batch
from objrec.errors import InputError
from objrec.methods.base import working_shape
from objrec.methods.bovw import word_counts, word_histogram, word_montages
from objrec.methods.eigen import component_images, mean_image, reconstruct


def _photos(n_per_class: int, side: int, seed: int = 0):
    """Grey crops (N, side, side) uint8 of four of scikit-image's photos, one class each."""
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [data.camera(), data.coins(), data.brick(), data.grass()]
    X, y = [], []
    for label, img in enumerate(sources):
        for _ in range(n_per_class):
            r = rng.integers(0, img.shape[0] - side + 1)
            c = rng.integers(0, img.shape[1] - side + 1)
            X.append(img[r : r + side, c : c + side])
            y.append(label)
    return np.stack(X).astype(np.uint8), np.array(y)


@pytest.fixture(scope="module")
def photos128():
    return _photos(6, 128)


def test_working_shape_rules():
    assert working_shape((28, 28), None) == (28, 28)
    assert working_shape((28, 28), 64) == (28, 28)  # never enlarged
    assert working_shape((8, 8), 32) == (8, 8)
    assert working_shape((243, 320), 64) == (49, 64)  # longest side 64, aspect kept
    assert working_shape((320, 243, 3), 64) == (64, 49)
    assert working_shape((1000, 10), 64) == (64, 1)
    assert working_shape((28, 28), (64, 48)) == (64, 48)  # an exact size may enlarge
    for bad in (0, -3, "64", (0, 5), (3,), 2.5, True):
        with pytest.raises(InputError, match="size="):
            working_shape((28, 28), bad)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("hog-svm", {}),
        ("sift-svm", {}),
        ("pixels-knn", {}),
        ("bovw-patch", {"n_words": 16, "max_descriptors": 5000}),
        ("eigen", {"n_components": 10}),
        ("fisher", {"n_components": 10}),
    ],
)
def test_resizes_internally_like_resized_input(name, params, photos128):
    """A default model fitted on 128x128 images equals a model without a working size
    fitted on the same images resized to its working size with resize_batch."""
    X, y = photos128
    est = objrec.make_method(name, **params).fit(X, y)
    side = 32 if name.startswith("pixels") or name in ("eigen", "fisher") else 64
    assert est.work_shape_ == (side, side) and est.input_shape_ == (128, 128)
    Xs = resize_batch(X, (side, side))
    ref = objrec.make_method(name, size=None, **params).fit(Xs, y)
    assert ref.work_shape_ == (side, side)
    np.testing.assert_array_equal(est.predict(X), ref.predict(Xs))
    if hasattr(est, "decision_function"):
        np.testing.assert_allclose(
            est.decision_function(X), ref.decision_function(Xs), rtol=1e-5, atol=1e-6
        )
    # the model takes its input size, not the working size
    with pytest.raises(InputError, match="trained on"):
        est.predict(Xs)


@pytest.mark.parametrize("name", ["hog-svm", "sift-svm"])
def test_descriptor_length_does_not_grow_with_the_image(name):
    X64, y = _photos(3, 64)
    X256, _ = _photos(3, 256)
    small = objrec.make_method(name).fit(X64, y)
    large = objrec.make_method(name).fit(X256, y)
    assert large.work_shape_ == small.work_shape_ == (64, 64)
    assert large.n_features_ == small.n_features_
    assert large.transform_features(X256[:2]).shape == (2, small.n_features_)
    full = objrec.make_method(name, size=None).fit(X256, y)  # without the working size
    assert full.feature_params_ != large.feature_params_


@pytest.mark.parametrize("name", ["hog-svm", "bovw-patch", "eigen", "pixels-knn"])
def test_small_images_untouched(name, digits_small):
    """8x8 digits: the default working size changes nothing (same predictions as size=None)."""
    X, y, Xte, _ = digits_small
    params = {"n_words": 16, "max_descriptors": 4000} if name == "bovw-patch" else {}
    est = objrec.make_method(name, **params).fit(X, y)
    ref = objrec.make_method(name, size=None, **params).fit(X, y)
    assert est.work_shape_ == (8, 8)
    np.testing.assert_array_equal(est.predict(Xte), ref.predict(Xte))


def test_bovw_memory_and_sample_are_bounded():
    """bovw-patch on 40 images of 256x256 (2.5 million patches at full size): the k-means
    sample is capped and the peak of traced memory stays far below what holding the
    patches (or their distances to the words) of the images would take."""
    X, y = _photos(10, 256, seed=1)
    est = objrec.make_method("bovw-patch", n_words=32, max_descriptors=20_000)
    tracemalloc.start()
    try:
        est.fit(X, y)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pred = est.predict(X)
        _, predict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert est.work_shape_ == (64, 64)
    assert est.n_sampled_ == 20_000
    assert est.codebook_.shape == (32, 36)  # 6x6 grey patches
    # Measured: 71 MB for fit, 68 MB for predict (6x6 patches); 1.1 GB each when every
    # image was described and encoded at full size in one chunk (its 5x5 patches alone:
    # 40 x 63,504 x 25 float32 = 254 MB, their distances to 32 words 325 MB).
    assert fit_peak < 100e6, fit_peak
    assert predict_peak < 100e6, predict_peak
    assert (pred == y).mean() > 0.7


def test_bovw_sample_is_capped_and_matches_the_flat_sample(digits_small):
    """The chunked sample picks the same descriptors as sampling from all the patches of
    the sampled images at once (so results on small images are those of that rule)."""
    from objrec.features.patches import extract_patches, normalize_patches

    X, y = digits_small[:2]
    est = objrec.make_method("bovw-patch", n_words=8, max_descriptors=3000, whiten=False)
    est.fit(X, y)
    assert est.n_sampled_ == 3000
    k = len(est.centres_)
    rng = np.random.default_rng(0)
    n_img = min(len(X), int(np.ceil(3000 / k)) * 4)
    idx = rng.choice(len(X), n_img, replace=False)
    pick = rng.choice(n_img * k, 3000, replace=False)
    P, _ = extract_patches(X[idx], size=est.patch_size_, step=est.step_)
    flat = normalize_patches(P).reshape(-1, P.shape[-1])[pick]
    got = est._sample_descriptors(X, idx, pick, est._describe_func())
    np.testing.assert_array_equal(got, flat)


def test_report_helpers_work_at_the_working_size(photos128):
    X, y = photos128
    bovw = objrec.make_method("bovw-patch", n_words=8, max_descriptors=3000).fit(X, y)
    k = len(bovw.centres_)
    assert word_histogram(bovw, X[0]).sum() == k
    assert word_counts(bovw, X[:5]).sum() == 5 * k
    m = word_montages(bovw, X, n_patches=3, max_images=10)
    assert m.shape == (8, 3, 6, 6)
    eig = objrec.make_method("eigen", n_components=5).fit(X, y)
    assert mean_image(eig).shape == (32, 32)
    assert component_images(eig, 3).shape == (3, 32, 32)
    assert reconstruct(eig, X[:2], 5).shape == (2, 32, 32)


def test_model_without_working_size_attribute_uses_its_input(digits_small):
    """Models saved before the working size existed have no ``work_shape_``: they keep
    working on their input size."""
    X, y, Xte, _ = digits_small
    est = objrec.make_method("hog-svm").fit(X, y)
    pred = est.predict(Xte)
    del est.work_shape_
    np.testing.assert_array_equal(est.predict(Xte), pred)


def test_bad_size_is_a_clear_error(digits_small):
    X, y = digits_small[:2]
    for name in ("hog-svm", "bovw-patch", "eigen"):
        with pytest.raises(InputError, match="size="):
            objrec.make_method(name, size=0).fit(X, y)


def test_onnx_export_refuses_a_model_that_resizes(photos128):
    from objrec.serving.export import ExportError, classic_to_onnx_bytes

    X, y = photos128
    est = objrec.make_method("pixels-knn", weights="uniform").fit(X, y)
    assert est.work_shape_ == (32, 32)
    with pytest.raises(ExportError, match="size=None"):
        classic_to_onnx_bytes(est)
