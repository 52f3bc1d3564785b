"""bovw-patch as Coates, Lee & Ng (2011): ZCA whitening against numpy, triangle encoding
and quadrant pooling by hand, the default design on colour images, de-whitened word
pictures, and memory bounded by the chunks."""

import tracemalloc

import numpy as np
import pytest

import objrec
from objrec.methods.bovw import (
    dewhiten,
    encode_histograms,
    pyramid_regions,
    word_images,
    word_montages,
    zca_whitening,
)


def test_zca_whitening_against_numpy():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(12, 12))
    S = (rng.normal(size=(20_000, 12)) @ A + 3.0).astype(np.float32)
    mean, W = zca_whitening(S, eps=0.0)
    np.testing.assert_allclose(mean, S.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(W, W.T, atol=1e-5)  # ZCA: symmetric
    Z = (S - mean) @ W
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(12), atol=2e-3)
    # with eps the covariance shrinks each eigen-direction by e / (e + eps)
    e, V = np.linalg.eigh(np.cov(S, rowvar=False))
    mean, W = zca_whitening(S, eps=0.1)
    np.testing.assert_allclose(W, (V / np.sqrt(e + 0.1)) @ V.T, rtol=1e-3, atol=1e-5)
    Z = (S - mean) @ W
    np.testing.assert_allclose(np.cov(Z, rowvar=False), (V * (e / (e + 0.1))) @ V.T, atol=2e-3)


def test_triangle_encoding_and_quadrant_pooling_by_hand():
    # three words in the plane; two descriptors
    words = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    desc = np.array([[[0.0, 0.0], [3.0, 4.0]]])  # (1 image, 2 descriptors, 2)
    # descriptor 1: z = (0, 3, 4), mean 7/3 -> f = (7/3, 0, 0)
    # descriptor 2: z = (5, 4, 3), mean 4 -> f = (0, 0, 1)
    whole = np.ones((1, 2))
    f = encode_histograms(desc, words, whole, encoding="soft")
    np.testing.assert_allclose(f, [[7 / 3, 0, 1]], rtol=1e-6)
    # quadrants of a 10x10 image: descriptor 1 top-left, descriptor 2 bottom-right
    R = pyramid_regions(np.array([[2.0, 2.0], [8.0, 7.0]]), 10, 10, (2,))
    f = encode_histograms(desc, words, R, encoding="soft")
    np.testing.assert_allclose(f[0], [7 / 3, 0, 0] + [0] * 6 + [0, 0, 1], rtol=1e-6)


def _colour_set(n_per_class: int, seed: int):
    """32x32 RGB crops of four of scikit-image's colour photos, one class each."""
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    X, y = [], []
    for label, img in enumerate(sources):
        for _ in range(n_per_class):
            r = rng.integers(0, img.shape[0] - 64)
            c = rng.integers(0, img.shape[1] - 64)
            X.append(img[r : r + 64 : 2, c : c + 64 : 2, :3])  # 32x32 at half resolution
            y.append(label)
    return np.stack(X).astype(np.uint8), np.array(y)


@pytest.fixture(scope="module")
def colour_fit():
    X, y = _colour_set(25, seed=0)
    Xte, yte = _colour_set(10, seed=1)
    est = objrec.make_method("bovw-patch", n_words=32, max_descriptors=8000).fit(X, y)
    return est, X, y, Xte, yte


def test_default_design_on_colour_images(colour_fit):
    est, X, _, Xte, yte = colour_fit
    assert est.patch_size_ == 6 and est.step_ == 1
    assert est.codebook_.shape == (32, 6 * 6 * 3)  # colour patches: 108 values
    assert len(est.centres_) == 27 * 27  # every pixel of a 32x32 image
    H = est.histograms(X[:3])
    assert H.shape == (3, 4 * 32) and H.dtype == np.float32
    acc = est.score(Xte, yte)
    assert acc > 0.7, acc  # chance is 0.25


def test_defaults_follow_the_paper():
    est = objrec.make_method("bovw-patch")
    p = est.get_params()
    assert p["encoding"] == "soft" and p["pyramid"] == (2,) and p["normalize"] == "standardize"
    sift = objrec.make_method("bovw-sift").get_params()
    assert sift["pyramid"] == (1, 2, 4) and sift["normalize"] == "power"


def test_descriptors_are_whitened_normalised_patches(colour_fit):
    est, X, *_ = colour_fit
    D = est.describe(X[:2])  # (2, 729, 108) whitened
    # oracle: the patch at (r, c) of image 1 by slicing, normalised by the paper's formula
    r, c = 7, 11
    p = X[1, r : r + 6, c : c + 6].astype(np.float64).ravel()
    p = (p - p.mean()) / np.sqrt(p.var() + 10.0)
    k = r * 27 + c
    np.testing.assert_allclose(D[1, k], (p - est.zca_mean_) @ est.zca_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dewhiten(est, D[1, k]), p, rtol=1e-3, atol=1e-3)


def test_word_images_are_the_dewhitened_centres(colour_fit):
    est = colour_fit[0]
    img = word_images(est)
    assert img.shape == (32, 6, 6, 3) and img.dtype == np.uint8
    P = dewhiten(est, est.codebook_)
    P = P - P.mean(axis=1, keepdims=True)
    expect = 128 + 127 * P / np.abs(P).max(axis=1, keepdims=True)
    np.testing.assert_allclose(img.reshape(32, -1), expect, atol=0.51)
    m = word_montages(est, colour_fit[1], n_patches=3, max_images=20)
    assert m.shape == (32, 3, 6, 6, 3)


def test_holdout_ridge_against_sklearn_ridge():
    """With one alpha it is scikit-learn's ridge on +-1 targets (alpha relative to the
    mean diagonal of the centred X^T X); with several it keeps the best held-out one."""
    from sklearn.linear_model import Ridge

    from objrec.methods.bovw import HoldoutRidgeClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 20)).astype(np.float32) * rng.uniform(0.5, 3, 20)
    y = np.argmax(X[:, :3] + 0.5 * rng.normal(size=(400, 3)), axis=1)
    clf = HoldoutRidgeClassifier(alphas=(0.05,)).fit(X, y)
    Xc = X - X.mean(axis=0)
    alpha = 0.05 * np.trace(Xc.T.astype(np.float64) @ Xc) / 20
    np.testing.assert_allclose(clf.alpha_, alpha, rtol=1e-6)
    Y = np.where(y[:, None] == np.arange(3), 1.0, -1.0)
    ref = Ridge(alpha=alpha).fit(X.astype(np.float64), Y)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(clf.intercept_, ref.intercept_, rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X).argmax(axis=1))
    grid = HoldoutRidgeClassifier(alphas=(1e-3, 0.1, 30.0)).fit(X, y)
    best = max(grid.holdout_accuracy_.values())
    assert grid.holdout_accuracy_[30.0] < best  # a huge alpha underfits
    chosen = [a for a, acc in grid.holdout_accuracy_.items() if acc == best]
    assert any(
        np.isclose(grid.alpha_, a * np.trace(Xc.T.astype(np.float64) @ Xc) / 20) for a in chosen
    )
    assert grid.score(X, y) > 0.8


def test_encoding_memory_is_bounded_by_the_chunks():
    """200 colour images with 400 words: the distances of all their patches to the words
    would take 233 MB; encoded in chunks the traced peak stays far below."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    y = np.arange(200) % 2
    est = objrec.make_method("bovw-patch", n_words=400, max_descriptors=4000)
    est.fit(X[:20], y[:20])
    tracemalloc.start()
    try:
        H = est.histograms(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert H.shape == (200, 1600)
    assert peak < 100e6, peak


def test_report_montage_shows_the_words(colour_fit):
    from objrec.report.learned import bovw_figures

    est, X, y, *_ = colour_fit
    entries = bovw_figures(est, X, y)
    assert len(entries) == 2
    assert "de-whitened" in entries[0].caption


def test_standardize_against_sklearn_and_in_place():
    from sklearn.preprocessing import StandardScaler

    from objrec.methods.bovw import Standardize

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(60_000, 300)) * rng.uniform(0.1, 50, 300) + 7).astype(np.float32)
    ref = StandardScaler().fit_transform(X.astype(np.float64))
    work = X.copy()
    tracemalloc.start()
    try:
        out = Standardize(eps=0.0).fit(work).transform(work)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out is work  # in place, no copy of the 72 MB matrix
    assert peak < 30e6, peak  # float64 chunks of 1,024 rows
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    # Coates et al.'s eps keeps constant features finite
    Z = Standardize().fit_transform(np.ones((5, 2), np.float32))
    np.testing.assert_array_equal(Z, 0.0)


def test_report_shows_the_words_that_tell_classes_apart(monkeypatch):
    """Hand-built word counts: word 0 is used alike by both classes, word 1 only by class 0,
    word 2 only by class 1, words 3 and 4 rarely; the class-specific ones come first, each
    with the class that uses it."""
    from objrec.methods import bovw as B
    from objrec.report.learned import class_specific_words

    per_class = {0: np.array([50, 40, 0, 1, 0]), 1: np.array([50, 0, 40, 0, 1])}
    X = np.zeros((4, 8, 8), np.uint8)
    X[2:] = 1  # the fake counter tells the classes' images apart by their pixels
    y = np.array([0, 0, 1, 1])
    monkeypatch.setattr(B, "word_counts", lambda est, Xc: per_class[int(Xc[0, 0, 0])])
    words, top = class_specific_words(None, X, y, n=5)
    assert words.tolist() == [1, 2, 0]  # the rare words 3 and 4 are left out
    assert top.tolist() == [0, 1, 0]
