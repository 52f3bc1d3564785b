"""Bag of visual words worked by hand: encodings, pooling, normalisation, tf-idf; the
report helpers; the Nystroem RBF classifier against an exact SVC."""

import numpy as np
import pytest

import objrec
from objrec.methods.bovw import (
    encode_histograms,
    normalize_histograms,
    pyramid_regions,
    word_histogram,
    word_montages,
)

# Two words on a line, at 0 and 10. Image A has descriptors at 1, 2, 9 (words 0, 0, 1);
# image B at 8, 9, 11 (words 1, 1, 1).
CODEBOOK = np.array([[0.0], [10.0]])
DESC = np.array([[[1.0], [2.0], [9.0]], [[8.0], [9.0], [11.0]]])
WHOLE = np.ones((1, 3))  # one region holding all three descriptors


def test_counts_and_binary_by_hand():
    counts = encode_histograms(DESC, CODEBOOK, WHOLE, encoding="counts")
    np.testing.assert_array_equal(counts, [[2, 1], [0, 3]])
    binary = encode_histograms(DESC, CODEBOOK, WHOLE, encoding="binary")
    np.testing.assert_array_equal(binary, [[1, 1], [0, 1]])


def test_soft_triangle_assignment_by_hand():
    # descriptor 1: distances (1, 9), mean 5 -> activations (4, 0); 2: (2, 8) -> (3, 0);
    # 9: (9, 1) -> (0, 4). Image A sums to (7, 4).
    soft = encode_histograms(DESC, CODEBOOK, WHOLE, encoding="soft")
    np.testing.assert_allclose(soft[0], [7, 4])
    # B: 8 -> (8, 2): (0, 3); 9 -> (0, 4); 11 -> (11, 1): (0, 5)
    np.testing.assert_allclose(soft[1], [0, 12])


def test_spatial_pyramid_pooling_by_hand():
    # three descriptors at the left, left and right of a 10x10 image; levels (1, 2)
    centres = np.array([[2.0, 2.0], [7.0, 3.0], [2.0, 8.0]])  # (row, col)
    R = pyramid_regions(centres, 10, 10, (1, 2))
    np.testing.assert_array_equal(
        R, [[1, 1, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]]
    )  # whole, top-left, top-right, bottom-left, bottom-right
    H = encode_histograms(DESC[:1], CODEBOOK, R, encoding="counts")
    # regions x words: whole (2, 1), TL (1, 0), TR (0, 1), BL (1, 0), BR (0, 0)
    np.testing.assert_array_equal(H[0], [2, 1, 1, 0, 0, 1, 1, 0, 0, 0])


def test_normalisations_by_hand():
    H = np.array([[4.0, 0.0, 9.0]])
    np.testing.assert_allclose(normalize_histograms(H, "l1"), [[4 / 13, 0, 9 / 13]])
    np.testing.assert_allclose(
        normalize_histograms(H, "l2"), [[4 / np.sqrt(97), 0, 9 / np.sqrt(97)]]
    )
    np.testing.assert_allclose(
        normalize_histograms(H, "power"), [[2 / np.sqrt(13), 0, 3 / np.sqrt(13)]]
    )
    np.testing.assert_array_equal(normalize_histograms(H, "none"), H)
    assert H[0, 0] == 4.0  # input untouched


@pytest.fixture(scope="module")
def bovw(digits_small):
    X, y = digits_small[:2]
    return objrec.make_method("bovw-patch", n_words=16, max_descriptors=4000).fit(X, y), X


def test_tfidf_weights_match_formula(digits_small):
    X, y = digits_small[:2]
    est = objrec.make_method(
        "bovw-patch",
        n_words=8,
        max_descriptors=3000,
        encoding="tfidf",
        normalize="none",
        pyramid=(1,),
    ).fit(X[:200], y[:200])
    counts = objrec.make_method(
        "bovw-patch",
        n_words=8,
        max_descriptors=3000,
        encoding="counts",
        normalize="none",
        pyramid=(1,),
    ).fit(X[:200], y[:200])
    np.testing.assert_array_equal(counts.codebook_, est.codebook_)  # same seed, same words
    C = counts.histograms(X[:200])
    df = (C > 0).sum(axis=0)
    idf = np.log((1 + 200) / (1 + df)) + 1
    np.testing.assert_allclose(est.idf_, idf, rtol=1e-6)
    np.testing.assert_allclose(est.histograms(X[:5]), C[:5] * idf, rtol=1e-5)


def test_word_histogram_and_montages(bovw):
    est, X = bovw
    h = word_histogram(est, X[0])
    assert h.shape == (16,) and h.sum() == len(est.centres_)
    m = word_montages(est, X, n_patches=4, max_images=50)
    s = est.patch_size_
    assert m.shape == (16, 4, s, s) and m.dtype == np.uint8
    # the nearest patch of each word is a real patch of one of the images
    some = m[0, 0]
    found = any(
        (X[i, r : r + s, c : c + s] == some).all()
        for i in range(50)
        for r in range(X.shape[1] - s + 1)
        for c in range(X.shape[2] - s + 1)
    )
    assert found
    # the montages of a few words are those rows of every word's montages
    words = np.array([5, 0, 11])
    np.testing.assert_array_equal(
        word_montages(est, X, n_patches=4, max_images=50, words=words), m[words]
    )


def test_chi2_kernel_and_hinge_options(digits_small):
    X, y, Xte, yte = digits_small
    for params in ({"kernel": "chi2"}, {"loss": "hinge"}):
        est = objrec.make_method("bovw-patch", n_words=16, max_descriptors=4000, **params).fit(X, y)
        assert est.score(Xte, yte) > 0.8


def test_nystroem_close_to_exact_svc():
    from sklearn.datasets import make_classification
    from sklearn.svm import SVC

    from objrec.methods.kernel import NystroemClassifier

    X, y = make_classification(600, 10, n_informative=6, n_classes=3, random_state=0)
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    exact = SVC(C=10, gamma="scale").fit(Xtr, ytr).score(Xte, yte)
    approx = NystroemClassifier(n_components=400, C=10).fit(Xtr, ytr).score(Xte, yte)
    assert approx >= exact - 0.05
