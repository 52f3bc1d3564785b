"""Fixtures for the serving tests: small real models (objrec's simple_cnn and pixels-logreg)
fitted on scikit-learn's digits upscaled to 16x16, and their saved artifacts."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_16():
    """Digits upscaled to 16x16: 300 train, 100 test, uint8, labels 0..9."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    X = np.stack([cv2.resize(x, (16, 16), interpolation=cv2.INTER_LINEAR) for x in X])
    y = d.target.astype(np.int64)
    return X[:300], y[:300], X[300:400], y[300:400]


@pytest.fixture(scope="session")
def cnn(digits_16):
    """objrec's CNNClassifier (simple_cnn), 3 epochs: a real network, trained in seconds."""
    pytest.importorskip("torch")
    import objrec

    X, y, _, _ = digits_16
    return objrec.make_method("simple_cnn", epochs=3, verbose=False, seed=0).fit(X, y)


@pytest.fixture(scope="session")
def pixels_logreg(digits_16):
    import objrec

    X, y, _, _ = digits_16
    return objrec.make_method("pixels-logreg").fit(X, y)


@pytest.fixture(scope="session")
def cnn_model_dir(cnn, tmp_path_factory):
    import objrec

    names = [f"digit-{i}" for i in range(10)]
    return objrec.save(
        cnn, tmp_path_factory.mktemp("cnn") / "model", dataset="digits", class_names=names
    )


@pytest.fixture(scope="session")
def logreg_model_dir(pixels_logreg, tmp_path_factory):
    import objrec

    return objrec.save(pixels_logreg, tmp_path_factory.mktemp("logreg") / "model")
