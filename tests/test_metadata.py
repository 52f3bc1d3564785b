"""The model metadata schema (objrec.metadata): one writer, one reader, format 1 migrated,
and every tampered field a ModelFileError that names it (no TypeError/KeyError tracebacks,
no huge allocations)."""

import json
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest

import objrec
from objrec import metadata as md
from objrec.errors import ModelFileError


@pytest.fixture(scope="module")
def digits_120():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    return X[:120], d.target[:120].astype(np.int64)


@pytest.fixture(scope="module")
def logreg_folder(digits_120, tmp_path_factory):
    est = objrec.make_method("pixels-logreg").fit(*digits_120)
    names = [f"digit-{i}" for i in range(10)]
    return objrec.save(
        est,
        tmp_path_factory.mktemp("logreg") / "model",
        dataset="digits",
        split_seed=3,
        class_names=names,
        metrics={"test_accuracy": 0.9},
    )


@pytest.fixture(scope="module")
def mlp_folder(digits_120, tmp_path_factory):
    pytest.importorskip("torch")
    X, y = digits_120
    est = objrec.make_method("mlp", epochs=1, verbose=False, threads=1, val_fraction=0).fit(X, y)
    return objrec.save(est, tmp_path_factory.mktemp("mlp") / "model", dataset="digits")


def _tampered(src, tmp_path, edit) -> Path:
    folder = tmp_path / "m"
    shutil.copytree(src, folder)
    meta = json.loads((folder / "objrec.json").read_text())
    edit(meta)
    (folder / "objrec.json").write_text(json.dumps(meta))
    return folder


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

    return edit


class _Delete:
    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()


# ------------------------------------------------------------------ the writer and reader
def test_one_writer_one_reader_round_trip(logreg_folder, digits_120):
    raw = json.loads((logreg_folder / "objrec.json").read_text())
    assert raw["format_version"] == md.FORMAT_VERSION == 3 and raw["task"] == "classify"
    assert raw["training"] == {"dataset": "digits", "seed": 3}
    assert raw["class_names"] == [f"digit-{i}" for i in range(10)]
    meta = objrec.load(logreg_folder).objrec_metadata_
    assert isinstance(meta, md.ModelMetadata)
    assert (meta.dataset, meta.split_seed) == ("digits", 3)
    assert meta.display_names[3] == "digit-3" and meta["method"] == "pixels-logreg"
    assert md.parse(meta.to_json()) == meta  # the writer's output reads back unchanged
    assert dict(meta) == raw
    from objrec.io import to_json

    assert json.loads(to_json({"meta": meta}))["meta"] == raw  # JSON-writable as it is


def test_class_names_indexed_by_label_are_aligned(digits_120, tmp_path):
    X, y = digits_120
    keep = np.isin(y, [2, 5, 7])
    est = objrec.make_method("pixels-logreg").fit(X[keep], y[keep])
    names = [f"n{i}" for i in range(10)]  # a dataset's class list, indexed by label value
    meta = objrec.load(objrec.save(est, tmp_path / "m", class_names=names)).objrec_metadata_
    assert meta.display_names == ["n2", "n5", "n7"]
    with pytest.raises(ModelFileError, match="class_names"):
        objrec.save(est, tmp_path / "m2", class_names=["a", "b"])


def test_forward_compatible_fields_are_kept(logreg_folder, tmp_path):
    """Sections other parts of objrec add: validated where known, kept as written."""
    image = {"size": [8, 8], "color": "grey", "fit": "pad"}  # objrec.data.images.ImageSpec

    def edit(meta):
        meta["image"] = image
        meta["training"]["recipe"] = {"optimizer": "adam", "lr": 0.001}
        meta["wrapped_extra"] = [1, 2]

    folder = _tampered(logreg_folder, tmp_path, edit)
    meta = objrec.load(folder).objrec_metadata_
    assert meta.image == image and meta.training["recipe"]["lr"] == 0.001
    assert meta.extra == {"wrapped_extra": [1, 2]} and meta.to_json()["wrapped_extra"] == [1, 2]
    net = md.parse(
        {
            **meta.to_json(),
            "preprocessing": {"mean": [0.5] * 3, "std": [0.2] * 3, "channels": 3, "fit": "crop"},
            "model_args": {"name": "efficientnet_lite0", "image_size": 224, "drop_rate": 0.2},
            "input_shape": [224, 224, 3],
        }
    )
    assert net.model_args["image_size"] == 224 and net.preprocessing["fit"] == "crop"


def test_format_2_classifier_still_loads(logreg_folder, tmp_path, digits_120):
    """Format 2 (before ``task``) is a classifier; ``task`` in a format-2 file is refused."""

    def v2(meta):
        meta["format_version"] = 2
        del meta["task"]

    folder = _tampered(logreg_folder, tmp_path, v2)
    est = objrec.load(folder)
    assert est.objrec_metadata_.task == "classify"
    X, _ = digits_120
    assert (est.predict(X) == objrec.load(logreg_folder).predict(X)).all()
    with pytest.raises(ModelFileError, match="'task'"):
        objrec.load(_tampered(logreg_folder, tmp_path / "b", lambda m: m.update(format_version=2)))


# ------------------------------------------------------------------ format 1 (objrec before)
def _v1(meta: dict, **top) -> dict:
    """A format-1 objrec.json as objrec wrote it before this schema."""
    out = {k: v for k, v in meta.items() if k not in ("class_names", "training", "task")}
    out.update(format_version=1, **top)
    return out


def test_format_1_train_run_reads_dataset_and_seed_from_the_run(logreg_folder, tmp_path):
    run = tmp_path / "run"
    folder = run / "model"
    shutil.copytree(logreg_folder, folder)
    meta = json.loads((folder / "objrec.json").read_text())
    names = [str(i) for i in range(10)]
    v1 = _v1(meta, dataset="digits", class_names=names, metrics={"dataset": "digits"})
    (folder / "objrec.json").write_text(json.dumps(v1))
    (run / "config.json").write_text(json.dumps({"dataset": "data/my-photos", "seed": 7}))
    back = objrec.load(run).objrec_metadata_
    assert (back.dataset, back.split_seed) == ("data/my-photos", 7)
    assert back.display_names == names and back.format_version == 3 and back.task == "classify"
    (run / "config.json").unlink()
    back = objrec.load(run).objrec_metadata_
    assert (back.dataset, back.split_seed) == ("digits", 0)


def test_format_1_compare_model(logreg_folder, tmp_path):
    meta = json.loads((logreg_folder / "objrec.json").read_text())
    names = [f"c{i}" for i in range(10)]
    training = {"dataset": "digits", "seed": 4, "class_names": names, "fit_seconds": 0.5}
    v1 = _v1(meta, training=training)
    back = md.parse(v1)
    assert (back.dataset, back.split_seed, back.display_names) == ("digits", 4, names)
    assert "class_names" not in back.training


def test_commands_read_the_schema(logreg_folder, capsys):
    from objrec.cli import main

    assert main(["info", str(logreg_folder)]) == 0
    out = capsys.readouterr().out
    assert "digit-0" in out and "pixels-logreg" in out


# ------------------------------------------------------------------ tampered fields
TAMPERED = [
    ("estimator", "objrec.artifact:load", "estimator"),  # a function
    ("estimator", "sklearn.base:clone", "estimator"),
    ("estimator", "objrec.errors:ModelFileError", "estimator"),  # a class, not an estimator
    ("estimator", "os:system", "estimator"),
    ("estimator", "objrec.__main__:main", "estimator"),  # importing it would run the CLI
    ("estimator", "objrec.methods.features:Nope", "estimator"),
    ("estimator", 5, "estimator"),
    ("format_version", 99, "newer objrec"),
    ("format_version", 0, "format_version"),
    ("format_version", "2", "format_version"),
    ("format_version", True, "format_version"),
    ("format_version", _DELETE, "format_version"),
    ("format", "other", "not an objrec model"),
    ("task", "bogus", "task"),
    ("task", 5, "task"),
    ("task", "segment", "input_shape"),  # a segmenter takes [H, W, 3] images
    ("classes", _DELETE, "classes"),
    ("classes", "abc", "classes"),
    ("classes", [], "classes"),
    ("classes", [1, 1, 2], "classes"),
    ("classes", [[1], {"a": 2}], "classes"),
    ("classes", list(range(5)), "class_names"),  # 10 names recorded
    ("class_names", ["a"], "class_names"),
    ("input_shape", [-8, 8], "input_shape"),
    ("input_shape", "abc", "input_shape"),
    ("input_shape", [100000, 100000], "input_shape"),
    ("input_shape", [8, 8, 7], "input_shape"),
    ("input_shape", [8.5, 8], "input_shape"),
    ("params", {"no_such_argument": 1}, "params"),
    ("params", [1, 2], "params"),
    ("weights", 7, "weights"),
    ("training", "digits", "training"),
    ("training.seed", "x", "training.seed"),
    ("training.dataset", 3, "training.dataset"),
    ("image", "big", "image"),
    ("image", {"size": [100000, 100000]}, "image.size"),
    ("image", {"size": [8, 8], "color": "grey", "fit": "spin"}, "fit"),
    ("image", {"size": [9, 9], "color": "grey", "fit": "squash"}, "image spec"),
    ("method", _DELETE, "method"),
    ("history", [1, 2], "history"),
]


@pytest.mark.parametrize(
    "path, value, field", TAMPERED, ids=[f"{p}={v!r}"[:40] for p, v, _ in TAMPERED]
)
def test_tampered_metadata_names_the_field(logreg_folder, tmp_path, path, value, field):
    folder = _tampered(logreg_folder, tmp_path, _set(path, value))
    with pytest.raises(ModelFileError, match=field.replace(".", r"\.")):
        objrec.load(folder)


NETWORK_TAMPERED = [
    ("model_args", _DELETE, "model_args"),
    ("preprocessing", _DELETE, "preprocessing"),
    ("preprocessing.mean", "abc", "preprocessing.mean"),
    ("preprocessing.std", [0.0], "preprocessing.std"),
    ("preprocessing.channels", 3, "preprocessing"),
    ("preprocessing.input_size", [9, 9], "preprocessing.input_size"),
    ("model_args.name", "no_such_net", "model_args"),
    ("model_args.name", 3, "model_args.name"),
    ("model_args.bogus", 1, "model_args"),  # an unknown keyword argument
    ("model_args.hidden", "abc", "model_args"),
    ("model_args.hidden", [100000, 100000], "weights do not fit"),  # no 40 GB allocation
    ("model_args.input_size", [8192, 2048], "weights do not fit"),
    ("model_args.in_channels", 3, "in_channels"),
    ("model_args.num_classes", 5, "classes"),
    ("model_args.num_classes", 20, "classes"),
    ("params.bogus", 1, "params"),
    ("model_args.weights", "https://example.com/w.pt#sha256=" + "0" * 64, "model_args.weights"),
    ("model_args.pretrained", True, "model_args.pretrained"),
]


@pytest.mark.parametrize(
    "path, value, field", NETWORK_TAMPERED, ids=[f"{p}={v!r}"[:40] for p, v, _ in NETWORK_TAMPERED]
)
def test_tampered_network_metadata_names_the_field(mlp_folder, tmp_path, path, value, field):
    folder = _tampered(mlp_folder, tmp_path, _set(path, value))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    with pytest.raises(ModelFileError, match=field.replace(".", r"\.")):
        objrec.load(folder)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) << 10
    assert peak < 256 << 20, f"the peak memory grew by {peak / 2**20:.0f} MiB to refuse the file"


@pytest.mark.parametrize("classes", [list(range(5)), list(range(20)), list("abcdefghij")])
def test_classes_must_match_the_saved_estimator(logreg_folder, tmp_path, classes):
    def edit(meta):
        meta["classes"], meta["class_names"] = classes, None

    with pytest.raises(ModelFileError, match="field 'classes'"):
        objrec.load(_tampered(logreg_folder, tmp_path, edit))


@pytest.mark.parametrize("n", [5, 20])
def test_class_count_must_match_the_network_outputs(mlp_folder, tmp_path, n):
    """Both the classes and model_args.num_classes edited: the weights' last layer decides."""

    def edit(meta):
        meta["classes"] = list(range(n))
        meta["class_names"] = None
        meta["model_args"]["num_classes"] = n

    with pytest.raises(ModelFileError, match="weights do not fit"):
        objrec.load(_tampered(mlp_folder, tmp_path, edit))


def test_network_loads_and_predicts(mlp_folder, digits_120):
    est = objrec.load(mlp_folder)
    X, _ = digits_120
    assert est.predict_proba(X[:4]).shape == (4, 10)
    assert est.objrec_metadata_.dataset == "digits"


@pytest.mark.parametrize(
    "text",
    [
        "{truncated",
        "[" * 100_000,
        '"just a string"',
        "\xff\xfe",
        json.dumps({"format": "objrec-model"}),
    ],
)
def test_unreadable_metadata(logreg_folder, tmp_path, text):
    folder = tmp_path / "m"
    shutil.copytree(logreg_folder, folder)
    (folder / "objrec.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ModelFileError):
        objrec.load(folder)
