"""Fixtures for the serving tests: small real models (objrec's simple_cnn and pixels-logreg)
fitted on scikit-learn's digits upscaled to 16x16, and their saved artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from crafted_files import square_and_ring


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
def export_int8(cnn, digits_16):
    """``export_int8(out, fmt)``: ``cnn`` exported to ``out`` in format ``fmt`` and int8,
    calibrated on the training images and checked on the test images and labels."""
    from objrec.serving.export import export

    Xtr, _, X, y = digits_16

    def run(out, fmt="onnx"):
        return export(
            cnn, out, format=fmt, check_images=X, quantize="int8", calibration_images=Xtr,
            check_labels=y,
        )  # fmt: skip

    return run


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


SEGMENT_NAMES = ["background", "square", "ring"]


@pytest.fixture(scope="session")
def toy_scenes():
    """32x32 scenes of 8x8 objects (label 1 a full square, 2 a ring): 8 to fit, 3 to test."""
    from objrec.data.scenes import render_scenes

    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 8, seed=0, size=32, max_objects=3)
    te = render_scenes(X, np.array([0, 1]), 3, seed=1, size=32, max_objects=3)
    return tr, te


@pytest.fixture(scope="session")
def forest_segmenter_dir(toy_scenes, tmp_path_factory):
    """A forest segmenter (5 trees) fit on the 8 toy scenes, saved as an objrec model."""
    from objrec.segmentation import make_segmenter

    tr, _ = toy_scenes
    seg = make_segmenter(
        "forest", n_estimators=5, pixels_per_image=150, scales=(1.0, 2.0), n_jobs=1
    )
    seg.fit(tr.images, tr.semantic)
    return seg.save(tmp_path_factory.mktemp("seg") / "model", class_names=SEGMENT_NAMES)
