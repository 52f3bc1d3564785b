"""The classic methods: registry, fit/predict on small real data, save/load round trip,
bad-input errors, and oracles (PCA reconstruction against scikit-learn's PCA)."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

import objrec
from objrec.errors import InputError
from objrec.methods.eigen import (
    component_images,
    explained_variance,
    fisher_images,
    mean_image,
    reconstruct,
)
from objrec.methods.features import auto_hog_cells

CLASSIC = [
    "pixels-knn",
    "pixels-svm",
    "pixels-rbf",
    "pixels-logreg",
    "pixels-rf",
    "hog-svm",
    "hog-rbf",
    "hog-knn",
    "sift-svm",
    "bovw-patch",
    "bovw-sift",
    "eigen",
    "fisher",
]
# Small settings so that the whole list fits the unit-test time budget.
FAST = {
    "pixels-rf": {"n_estimators": 20},
    "bovw-patch": {"n_words": 32, "max_descriptors": 5000},
    "bovw-sift": {"n_words": 32, "max_descriptors": 5000},
}
# Floors on 8x8 digits (600 train / 300 test); chance is 10%.
FLOOR = {"bovw-sift": 0.6, "sift-svm": 0.75, "fisher": 0.8}


def test_all_classic_methods_registered():
    names = objrec.list_methods()
    assert set(CLASSIC) <= set(names)
    assert set(objrec.list_methods("eigen")) == {"eigen", "fisher"}
    assert {"bovw-patch", "bovw-sift"} <= set(objrec.list_methods("bovw"))


@pytest.mark.parametrize("name", CLASSIC)
def test_fit_predict_save_load(name, digits_small, tmp_path):
    Xtr, ytr, Xte, yte = digits_small
    est = objrec.make_method(name, **FAST.get(name, {}))
    assert est.method_name == name
    assert est.fit(Xtr, ytr) is est
    pred = est.predict(Xte)
    assert pred.shape == (len(Xte),)
    acc = float((pred == yte).mean())
    assert acc >= FLOOR.get(name, 0.85), f"{name}: {acc:.3f}"
    assert est.score(Xte, yte) == pytest.approx(acc)
    # probabilities or scores, documented per method
    if hasattr(est, "predict_proba") and name not in ("hog-svm", "hog-rbf", "pixels-svm"):
        try:
            proba = est.predict_proba(Xte[:5])
        except AttributeError:
            proba = None
        if proba is not None:
            np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    if hasattr(est, "decision_function"):
        try:
            scores = est.decision_function(Xte[:5])
            assert scores.shape == (5, 10)
        except AttributeError:
            pass
    # save with skops, load, same predictions
    folder = objrec.save(est, tmp_path / "model")
    back = objrec.load(folder)
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(Xte), pred)
    assert back.objrec_metadata_["method"] == name


def test_defaults_adapt_to_small_images():
    assert auto_hog_cells(28, 28) == ((4, 2), (7, 2))
    assert auto_hog_cells(8, 8) == ((2, 2), (4, 1))
    assert all(ppc * cpb <= 8 for ppc, cpb in auto_hog_cells(8, 8))


# -- bad input -----------------------------------------------------------------------------
def test_image_smaller_than_hog_cell(digits_small):
    X, y = digits_small[:2]
    est = objrec.make_method("hog-svm", hog_cells=[(6, 2)])
    with pytest.raises(InputError, match="hog_cells"):
        est.fit(X, y)


def test_image_smaller_than_sift_patch(digits_small):
    X, y = digits_small[:2]
    with pytest.raises(InputError, match="sift_patch"):
        objrec.make_method("sift-svm", sift_patch=12).fit(X, y)
    with pytest.raises(InputError, match="patch_size"):
        objrec.make_method("bovw-sift", patch_size=12).fit(X, y)
    with pytest.raises(InputError, match="patch_size"):
        objrec.make_method("bovw-patch", patch_size=9).fit(X, y)


@pytest.mark.parametrize("name", ["hog-svm", "bovw-patch", "eigen"])
def test_bad_inputs(name, digits_small):
    X, y = digits_small[0][:100], digits_small[1][:100]
    est = objrec.make_method(name)
    with pytest.raises(InputError, match="different shapes"):
        est.fit([X[0], np.zeros((9, 9), np.uint8)], [0, 1])
    with pytest.raises(InputError, match="at least 2"):
        est.fit(X, np.zeros(len(X), int))
    bad = X.astype(float)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(InputError, match="labels for"):
        est.fit(X, y[:-1])
    est.fit(X, y)
    with pytest.raises(InputError, match="trained on"):
        est.predict(np.zeros((1, 9, 9), np.uint8))


def test_n_components_above_sample_count(digits_small):
    X, y = digits_small[0][:30], digits_small[1][:30]
    with pytest.raises(InputError, match="n_components=40"):
        objrec.make_method("eigen", n_components=40).fit(X, y)
    with pytest.raises(InputError, match="n_words"):
        objrec.make_method("bovw-patch", n_words=5000, max_descriptors=1000).fit(X, y)


def test_unknown_option_values(digits_small):
    X, y = digits_small[0][:50], digits_small[1][:50]
    for name, params in [
        ("hog-svm", {"kernel": "poly"}),
        ("bovw-patch", {"encoding": "fisher"}),
        ("eigen", {"classify": "svm"}),
    ]:
        with pytest.raises(InputError, match="must be"):
            objrec.make_method(name, **params).fit(X, y)


# -- eigenfaces: oracles and helpers ---------------------------------------------------------
@pytest.fixture(scope="module")
def eigen_fit(digits_small):
    X, y = digits_small[:2]
    return objrec.make_method("eigen", n_components=20, svd_solver="full").fit(X, y), X


def test_pca_reconstruction_matches_sklearn(eigen_fit):
    est, X = eigen_fit
    A = X.reshape(len(X), -1).astype(np.float64) / 255
    ref = PCA(n_components=20, svd_solver="full").fit(A)
    np.testing.assert_allclose(mean_image(est).ravel(), ref.mean_, atol=1e-5)  # float32
    np.testing.assert_allclose(explained_variance(est), ref.explained_variance_ratio_, rtol=1e-4)
    comps = component_images(est)
    assert comps.shape == (20, 8, 8)
    # components agree up to sign
    dots = np.abs((comps.reshape(20, -1) * ref.components_).sum(axis=1))
    np.testing.assert_allclose(dots, 1, atol=1e-4)
    rec = reconstruct(est, X[:10])
    np.testing.assert_allclose(
        rec.reshape(10, -1), ref.inverse_transform(ref.transform(A[:10])), atol=1e-5
    )
    # first k components only: reconstruction error falls as k grows, k=0 is the mean
    errs = [np.abs(reconstruct(est, X[:10], k) - X[:10] / 255).mean() for k in (0, 5, 20)]
    assert errs[0] > errs[1] > errs[2]
    np.testing.assert_allclose(reconstruct(est, X[:1], 0)[0], mean_image(est), atol=1e-6)


def test_open_set_unknown(digits_small):
    X, y, Xte, _ = digits_small
    est = objrec.make_method("eigen", n_components=20).fit(X, y)
    d_known = est.nearest_distance(Xte)
    noise = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    d_noise = est.nearest_distance(noise)
    thr = float(np.quantile(d_known, 0.95))
    assert np.median(d_noise) > thr
    est.set_params(unknown_threshold=thr)
    pred = est.predict(np.concatenate([Xte, noise]))
    assert (pred[len(Xte) :] == -1).mean() > 0.9
    assert (pred[: len(Xte)] == -1).mean() <= 0.06
    est.set_params(unknown_by="reconstruction", unknown_threshold=0.15)
    rec_pred = est.predict(noise)
    assert (rec_pred == -1).all()


def test_fisher_images_and_template_scores(digits_small):
    X, y, Xte, _ = digits_small
    est = objrec.make_method("fisher").fit(X, y)
    assert fisher_images(est).shape == (9, 8, 8)  # n_classes - 1 discriminant axes
    scores = est.decision_function(Xte)
    assert scores.shape == (len(Xte), 10)
    np.testing.assert_array_equal(est.classes_[scores.argmax(axis=1)], est.predict(Xte))
    with pytest.raises(AttributeError):
        est.predict_proba(Xte)  # templates give distances, not probabilities


def test_hog_picture_of_a_fitted_model(digits_small):
    from skimage.feature import hog as sk_hog

    from objrec.methods.features import hog_picture

    X, y = digits_small[:2]
    est = objrec.make_method("hog-svm").fit(X[:200], y[:200])
    pic = hog_picture(est, X[0])
    _, ref = sk_hog(
        np.sqrt(X[0].astype(float)), pixels_per_cell=(2, 2), cells_per_block=(2, 2), visualize=True
    )
    assert pic.shape == (8, 8)
    np.testing.assert_allclose(pic, ref)
    with pytest.raises(InputError, match="HOG model"):
        hog_picture(objrec.make_method("pixels-knn").fit(X[:50], y[:50]), X[0])


def test_parallel_feature_extraction_matches_serial(digits_small):
    X, y = digits_small[:2]
    one = objrec.make_method("hog-svm", n_jobs=1).fit(X, y)
    two = objrec.make_method("hog-svm", n_jobs=2).fit(X, y)
    many = np.tile(X, (7, 1, 1))  # 4,200 images: three chunks of 2,000, run on two workers
    np.testing.assert_array_equal(one.transform_features(many), two.transform_features(many))
