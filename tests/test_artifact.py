import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import objrec
from objrec.errors import ModelFileError


def _flat(X):
    return X.reshape(len(X), -1) / 255.0


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    y = (X[:, :3].mean(axis=(1, 2)) > X[:, 3:].mean(axis=(1, 2))).astype(int)
    clf = make_pipeline(LogisticRegression())
    Xf = _flat(X)
    clf.fit(Xf, y)
    return clf, Xf


def test_round_trip_gives_identical_predictions(tmp_path, fitted):
    clf, X = fitted
    objrec.save(clf, tmp_path / "model", method="logreg", metrics={"test_accuracy": 0.5})
    meta = json.loads((tmp_path / "model" / "objrec.json").read_text())
    assert meta["method"] == "logreg" and meta["metrics"]["test_accuracy"] == 0.5
    assert meta["classes"] == [0, 1]
    back = objrec.load(tmp_path)  # a run folder holding model/ resolves too
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.objrec_metadata_["method"] == "logreg"


def test_untrusted_type_is_refused(tmp_path):
    # a function from outside the allow-list (this test module) inside the pipeline
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(20, 4, 4), dtype=np.uint8)
    bad = make_pipeline(FunctionTransformer(_flat), LogisticRegression()).fit(X, np.arange(20) % 2)
    objrec.save(bad, tmp_path / "m")
    with pytest.raises(ModelFileError, match="allow-list"):
        objrec.load(tmp_path / "m")


def test_corrupt_and_foreign_files_are_refused(tmp_path, fitted):
    clf, _ = fitted
    folder = objrec.save(clf, tmp_path / "m")
    (folder / "estimator.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="corrupt"):
        objrec.load(folder)
    meta = json.loads((folder / "objrec.json").read_text())
    meta["estimator"] = "os:system"
    (folder / "objrec.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="outside objrec"):
        objrec.load(folder)
    (folder / "objrec.json").write_text("{truncated")
    with pytest.raises(ModelFileError, match="corrupt metadata"):
        objrec.load(folder)
    with pytest.raises(ModelFileError, match="no such"):
        objrec.load(tmp_path / "nowhere")


def test_unfitted_estimator_is_not_saved(tmp_path):
    with pytest.raises(ModelFileError, match="unfitted"):
        objrec.save(LogisticRegression(), tmp_path / "m")
