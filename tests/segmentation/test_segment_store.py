"""Segmenters as objrec models: one folder layout (objrec.json + weights), saved all or
nothing through objrec.artifact, loaded by objrec.load, tampered files refused naming the
field."""

import json
import shutil

import numpy as np
import pytest

import objrec
from crafted_files import square_and_ring
from objrec.data.scenes import render_scenes
from objrec.errors import ModelFileError
from objrec.segmentation import load_segmenter, make_segmenter

NAMES = ["background", "square", "ring"]


@pytest.fixture(scope="module")
def scenes():
    """32x32 scenes of 8x8 objects (label 1 a full square, 2 a ring): 8 to fit, 4 to test."""
    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 8, seed=0, size=32, max_objects=3)
    te = render_scenes(X, np.array([0, 1]), 4, seed=1, size=32, max_objects=3)
    return tr, te


@pytest.fixture(scope="module")
def forest(scenes):
    tr, _ = scenes
    seg = make_segmenter(
        "forest", n_estimators=4, pixels_per_image=100, scales=(1.0, 2.0), n_jobs=1
    )
    return seg.fit(tr.images, tr.semantic)


@pytest.fixture(scope="module")
def forest_dir(forest, tmp_path_factory):
    return forest.save(
        tmp_path_factory.mktemp("forest") / "model", dataset="toy-scenes", class_names=NAMES
    )


@pytest.fixture(scope="module")
def slic(scenes):
    tr, _ = scenes
    seg = make_segmenter("slic", n_segments=40, max_iter=5, learning_rate=0.3)
    return seg.fit(tr.images, tr.semantic)


@pytest.fixture(scope="module")
def slic_dir(slic, tmp_path_factory):
    return slic.save(
        tmp_path_factory.mktemp("slic") / "model", dataset="toy-scenes", class_names=NAMES
    )


@pytest.fixture(scope="module")
def unet(scenes):
    pytest.importorskip("torch")
    tr, _ = scenes
    seg = make_segmenter("unet", width=4, depth=2, epochs=2, batch_size=4)
    return seg.fit(tr.images, tr.semantic)


@pytest.fixture(scope="module")
def unet_dir(unet, tmp_path_factory):
    return objrec.save(unet, tmp_path_factory.mktemp("unet") / "model", class_names=NAMES)


def _raw(folder) -> dict:
    return json.loads((folder / "objrec.json").read_text())


def _tampered(src, tmp_path, edit):
    folder = tmp_path / "m"
    shutil.copytree(src, folder)
    meta = _raw(folder)
    edit(meta)
    (folder / "objrec.json").write_text(json.dumps(meta))
    return folder


def test_forest_is_an_objrec_model(forest, forest_dir, scenes):
    _, te = scenes
    assert sorted(p.name for p in forest_dir.iterdir()) == ["forest.skops", "objrec.json"]
    raw = _raw(forest_dir)
    assert raw["format_version"] == 3 and raw["task"] == "segment"
    assert raw["method"] == "forest" and raw["weights"] == "forest.skops"
    assert raw["estimator"] == "objrec.segmentation.classic:FilterBankForest"
    assert raw["classes"] == [0, 1, 2] and raw["class_names"] == NAMES
    assert raw["input_shape"] == [32, 32, 3] and raw["training"]["dataset"] == "toy-scenes"
    assert raw["params"]["scales"] == [1.0, 2.0] and raw["params"]["n_estimators"] == 4
    again = objrec.load(forest_dir)
    assert type(again).__name__ == "FilterBankForest"
    assert again.objrec_metadata_.task == "segment" and again.input_shape_ == (32, 32, 3)
    assert np.array_equal(again.predict_proba(te.images), forest.predict_proba(te.images))
    a, b = again.predict_panoptic(te.images), forest.predict_panoptic(te.images)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert type(load_segmenter(forest_dir)) is type(again)  # the thin wrapper


def test_slic_is_an_objrec_model(slic, slic_dir, scenes):
    _, te = scenes
    assert sorted(p.name for p in slic_dir.iterdir()) == ["objrec.json", "slic.skops"]
    raw = _raw(slic_dir)
    assert raw["format_version"] == 3 and raw["task"] == "segment"
    assert raw["method"] == "slic" and raw["weights"] == "slic.skops"
    assert raw["estimator"] == "objrec.segmentation.slic:SlicSegmenter"
    assert raw["classes"] == [0, 1, 2] and raw["class_names"] == NAMES
    assert raw["input_shape"] == [32, 32, 3] and raw["params"]["n_segments"] == 40
    assert slic.classifier_ is not None  # a fitted classifier, not the constant case
    again = objrec.load(slic_dir)
    assert type(again).__name__ == "SlicSegmenter" and again.input_shape_ == (32, 32, 3)
    assert again.n_train_superpixels_ == slic.n_train_superpixels_ > 0
    assert np.array_equal(again.predict_proba(te.images), slic.predict_proba(te.images))
    a, b = again.predict_panoptic(te.images), slic.predict_panoptic(te.images)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert type(load_segmenter(slic_dir)) is type(again)


def test_unet_is_an_objrec_model(unet, unet_dir, scenes):
    _, te = scenes
    assert sorted(p.name for p in unet_dir.iterdir()) == ["objrec.json", "weights.safetensors"]
    raw = _raw(unet_dir)
    assert (raw["task"], raw["method"], raw["weights"]) == (
        "segment",
        "unet",
        "weights.safetensors",
    )
    assert [h["epoch"] for h in raw["history"]] == [1, 2]
    again = objrec.load(unet_dir)
    assert again.history_ == unet.history_ and (again.width, again.depth) == (4, 2)
    assert np.allclose(again.predict_proba(te.images), unet.predict_proba(te.images), atol=1e-6)


def test_save_is_all_or_nothing(forest, forest_dir, tmp_path, monkeypatch):
    folder = tmp_path / "m"
    shutil.copytree(forest_dir, folder)
    before = _raw(folder)

    def full_disk(self, where):
        (where / "forest.skops").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(forest), "_save_artifact", full_disk)
    with pytest.raises(ModelFileError, match="No space left"):
        forest.save(folder)
    assert _raw(folder) == before and objrec.load(folder).n_labels_ == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind
    with pytest.raises(ModelFileError, match=r"fit\(images, masks\)"):
        objrec.save(make_segmenter("forest"), tmp_path / "unfitted")


def _set(path: str, value):
    def edit(meta):
        *parents, last = path.split(".")
        d = meta
        for p in parents:
            d = d[p]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value
        if path == "classes":
            meta["class_names"] = None  # so that the names still fit

    return edit


_DELETE = object()

FOREST_TAMPERED = [
    ("classes", [0, 1], "'classes'"),  # fewer labels than the forest predicts
    ("classes", [0, 1, 2, 3], "'classes'"),  # more labels than the prior has weights
    ("classes", [1, 2, 3], "'classes'"),  # not the mask values 0..L-1
    ("class_names", ["a", "b"], "'class_names'"),
    ("method", "unet", "'method'"),
    ("method", "bogus", "'method'"),
    ("estimator", "objrec.segmentation.unet:UNetSegmenter", "'method'"),
    ("estimator", "objrec.segmentation.base:check_images", "'estimator'"),
    ("task", "classify", "'task'"),
    ("task", "panoptic", "'task'"),
    ("task", _DELETE, "'task'"),  # a file without a task is a classifier
    ("params.scales", [1.0], "'params.scales'"),  # 9 features, the forest takes 15
    ("params.scales", "1,2", "'params.scales'"),
    ("params.scales", [1.0, -2.0], "'params.scales'"),
    ("params.n_estimators", 0, "'params.n_estimators'"),
    ("params.max_depth", "deep", "'params.max_depth'"),
    ("params.n_labels", 5, "'classes'"),
    ("params.bogus", 1, "'params'"),
    ("input_shape", [32, 32], "'input_shape'"),
    ("input_shape", [32, 32, 1], "'input_shape'"),
    ("weights", "../forest.skops", "'weights'"),
    ("weights", "objrec.json", "forest.skops|skops"),
]


@pytest.mark.parametrize(("field", "value", "match"), FOREST_TAMPERED)
def test_tampered_forest_metadata_is_refused(forest_dir, tmp_path, field, value, match):
    folder = _tampered(forest_dir, tmp_path, _set(field, value))
    with pytest.raises(ModelFileError, match=match):
        objrec.load(folder)


UNET_TAMPERED = [
    ("classes", [0, 1], "'classes'"),  # the head has 3 outputs
    ("params.width", 8, "'params'"),
    ("params.depth", 3, "'params'"),
    ("params.depth", 0, "'params.depth'"),
    ("params.lr", -1, "'params.lr'"),
    ("input_shape", [30, 30, 3], "'input_shape'"),  # not a multiple of 2 ** depth
    ("history", [1, 2], "'history'"),
]


@pytest.mark.parametrize(("field", "value", "match"), UNET_TAMPERED)
def test_tampered_unet_metadata_is_refused(unet_dir, tmp_path, field, value, match):
    folder = _tampered(unet_dir, tmp_path, _set(field, value))
    with pytest.raises(ModelFileError, match=match):
        objrec.load(folder)


SLIC_TAMPERED = [
    ("classes", [0, 1], "'classes'"),  # the classifier predicts label 2
    ("classes", [1, 2, 3], "'classes'"),
    ("method", "forest", "'method'"),
    ("estimator", "objrec.segmentation.classic:FilterBankForest", "'method'"),
    ("task", "classify", "'task'"),
    ("params.n_segments", 0, "'params.n_segments'"),
    ("params.compactness", "soft", "'params.compactness'"),
    ("params.learning_rate", -0.1, "'params.learning_rate'"),
    ("params.n_labels", 4, "'classes'"),
    ("params.bogus", 1, "'params'"),
    ("input_shape", [32, 32, 1], "'input_shape'"),
    ("weights", "../slic.skops", "'weights'"),
]


@pytest.mark.parametrize(("field", "value", "match"), SLIC_TAMPERED)
def test_tampered_slic_metadata_is_refused(slic_dir, tmp_path, field, value, match):
    folder = _tampered(slic_dir, tmp_path, _set(field, value))
    with pytest.raises(ModelFileError, match=match):
        objrec.load(folder)


def test_slic_file_holding_another_state_is_refused(slic_dir, forest_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(slic_dir, folder)
    shutil.copy(forest_dir / "forest.skops", folder / "slic.skops")
    with pytest.raises(ModelFileError, match=r"slic\.skops.*SlicSegmenter"):
        objrec.load(folder)


def test_swapped_weight_files_are_refused(forest_dir, unet_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(forest_dir, folder)
    shutil.copy(unet_dir / "weights.safetensors", folder / "forest.skops")
    with pytest.raises(ModelFileError, match=r"forest\.skops"):
        objrec.load(folder)
    (folder / "forest.skops").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        objrec.load(folder)


def test_earlier_segmenter_folders_and_classifiers(tmp_path):
    old = tmp_path / "run" / "model"
    old.mkdir(parents=True)
    (old / "segmenter.json").write_text('{"method": "forest", "n_labels": 11}')
    for path in (old, old.parent):
        with pytest.raises(ModelFileError, match=r"segmenter\.json.*objrec segment train"):
            objrec.load(path)
    with pytest.raises(ModelFileError, match=r"segmenter\.json"):
        load_segmenter(old)
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images[:60] * (255 / 16)).round().astype(np.uint8)
    clf = objrec.make_method("pixels-logreg").fit(X, d.target[:60])
    folder = objrec.save(clf, tmp_path / "clf")
    assert objrec.load(folder).objrec_metadata_.task == "classify"
    with pytest.raises(ModelFileError, match="not a segmenter"):
        load_segmenter(folder)
