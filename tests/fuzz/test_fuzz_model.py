"""Fuzzing the model loader: mutated ``objrec.json`` fields and damaged ``estimator.skops``
/ ``weights.safetensors`` bytes of small real models. Whatever the mutation, loading (and,
for a model that loads, predicting) may only raise objrec's own errors (ObjrecError).

Bounded and deterministic: a fixed number of derandomised examples per test, each with a
deadline; the crashing inputs found so far are kept as explicit ``@example`` cases.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import objrec  # noqa: E402
from objrec.errors import ObjrecError  # noqa: E402

SETTINGS = settings(
    max_examples=25,
    deadline=3000,  # ms per example: a load takes ~50 ms, shared CI machines are slow
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MODELS: dict[str, Path] = {}
X_CHECK: np.ndarray | None = None

# Fields (dotted: inside a section) the mutations aim at; any other key also appears
# through "extra".
FIELDS = [
    "format",
    "format_version",
    "task",
    "method",
    "estimator",
    "params",
    "params.epochs",
    "params.no_such_param",
    "classes",
    "class_names",
    "input_shape",
    "weights",
    "training",
    "training.dataset",
    "training.seed",
    "metrics",
    "preprocessing",
    "preprocessing.mean",
    "preprocessing.std",
    "preprocessing.channels",
    "preprocessing.input_size",
    "model_args",
    "model_args.name",
    "model_args.num_classes",
    "model_args.in_channels",
    "model_args.input_size",
    "model_args.hidden",
    "history",
    "image",
    "image.size",
    "extra",
]
DELETE = "<delete>"
NASTY = [
    DELETE,
    None,
    True,
    -1,
    0,
    3,
    2**63,
    10**400,  # json.loads gives an int that float() cannot hold
    1e308,
    float("nan"),
    "",
    "abc",
    "/etc/passwd",
    "../../x",
    ".",
    "objrec.artifact:load",
    "objrec.__main__:main",
    "builtins:eval",
    [],
    {},
    [-8, 8],
    [100000, 100000],
    [8, 8, 2],
    [0.5, "x"],
    list(range(5)),
    list(range(20)),
    {"name": "mlp"},
    {"size": [1, 1]},
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
MUTATION = st.tuples(st.sampled_from(FIELDS), st.sampled_from(NASTY) | JSON)


@pytest.fixture(scope="module", autouse=True)
def small_models(tmp_path_factory):
    """A skops model (pixels-logreg) and a network (mlp), trained on 120 8x8 digits."""
    global X_CHECK
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)[:120]
    y = d.target[:120]
    X_CHECK = X[:3]
    root = tmp_path_factory.mktemp("fuzz-models")
    MODELS["logreg"] = objrec.save(
        objrec.make_method("pixels-logreg").fit(X, y), root / "logreg", dataset="digits"
    )
    if pytest.importorskip("torch"):
        mlp = objrec.make_method("mlp", epochs=1, verbose=False, threads=1, val_fraction=0)
        MODELS["mlp"] = objrec.save(mlp.fit(X, y), root / "mlp", dataset="digits")
    yield
    MODELS.clear()


def _load_and_predict(folder: Path) -> None:
    """Load the model at ``folder`` and predict; only ObjrecError may come out."""
    try:
        est = objrec.load(folder)
        est.predict(X_CHECK)
    except ObjrecError:
        pass


def _mutate(meta: dict, field: str, value) -> None:
    *parents, last = field.split(".")
    d = meta
    for p in parents:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    if value == DELETE and isinstance(value, str):
        d.pop(last, None)
    else:
        d[last] = copy.deepcopy(value)  # never the shared NASTY object itself


def _copy(model: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="objrec-fuzz-")) / "model"
    shutil.copytree(MODELS[model], folder)
    return folder


@SETTINGS
@given(
    model=st.sampled_from(["logreg", "mlp"]), mutations=st.lists(MUTATION, min_size=1, max_size=3)
)
# inputs that crashed the loader before the metadata schema (KeyError, TypeError,
# AttributeError, IndexError tracebacks), kept as regression cases
@example(model="mlp", mutations=[("model_args", DELETE)])
@example(model="mlp", mutations=[("preprocessing", DELETE)])
@example(model="mlp", mutations=[("model_args.name", DELETE)])
@example(model="mlp", mutations=[("model_args.hidden", "abc")])
@example(model="mlp", mutations=[("params", [1])])
@example(model="mlp", mutations=[("preprocessing.mean", "abc")])
@example(model="mlp", mutations=[("classes", 3)])
@example(model="logreg", mutations=[("estimator", "objrec.artifact:load")])
@example(model="logreg", mutations=[("estimator", 3)])
@example(model="logreg", mutations=[("weights", 3)])
@example(model="logreg", mutations=[("format_version", "1")])
@example(model="mlp", mutations=[("preprocessing.mean", [10**400])])  # OverflowError once
def test_mutated_metadata_gives_objrec_errors_only(model, mutations):
    if model not in MODELS:
        pytest.skip("needs torch")
    folder = _copy(model)
    try:
        meta = json.loads((folder / "objrec.json").read_text())
        for field, value in mutations:
            _mutate(meta, field, value)
        (folder / "objrec.json").write_text(json.dumps(meta))
        _load_and_predict(folder)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


BYTE_EDIT = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
)


@SETTINGS
@given(model=st.sampled_from(["logreg", "mlp"]), edits=st.lists(BYTE_EDIT, min_size=1, max_size=4))
# seeds: a truncated file and a damaged header of each kind
@example(model="mlp", edits=[("truncate", 0.5, 0)])
@example(model="mlp", edits=[("flip", 0.0, 255)])  # the header length
@example(model="logreg", edits=[("truncate", 0.9, 0)])
@example(model="logreg", edits=[("flip", 0.5, 1)])
def test_damaged_weight_bytes_give_objrec_errors_only(model, edits):
    if model not in MODELS:
        pytest.skip("needs torch")
    folder = _copy(model)
    try:
        file = folder / ("weights.safetensors" if model == "mlp" else "estimator.skops")
        data = bytearray(file.read_bytes())
        for kind, where, byte in edits:
            pos = int(where * len(data))
            if kind == "flip" and data:
                data[pos] ^= byte
            elif kind == "truncate":
                del data[pos:]
            elif kind == "insert":
                data[pos:pos] = bytes([byte])
        file.write_bytes(bytes(data))
        _load_and_predict(folder)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
