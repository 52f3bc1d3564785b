"""The skops allow-list: exactly the types objrec's saved estimators are made of, and a
``estimator.skops`` that would call a function at load time is refused before anything runs."""

import json
import zipfile

import numpy as np
import pytest
import skops.io as sio

import objrec
from objrec.errors import ModelFileError
from objrec.methods import list_methods, method_spec, unavailable_methods
from objrec.skops_types import TRUSTED_TYPES

# Small settings so that every fit takes a fraction of a second.
FAST = {
    "pixels-rf": {"n_estimators": 3},
    "bovw-patch": {"n_words": 8, "max_descriptors": 500},
    "bovw-sift": {"n_words": 8, "max_descriptors": 500},
    "effnet-logreg": {"image_size": 32, "max_iter": 50},
}
# Methods whose fit is slow per image get fewer (still every class).
N_IMAGES = {"effnet-logreg": 30}
# Variants whose fitted estimator holds other types than the method's defaults.
VARIANTS = [
    ("pixels-rbf", {"max_exact_samples": 50, "n_components": 20}),  # Nystroem above 50 images
    ("hog-svm", {"kernel": "linear"}),
    ("eigen", {"classify": "template", "unknown_threshold": 1.0}),
    ("bovw-patch", {**FAST["bovw-patch"], "kernel": "chi2", "loss": "hinge"}),
]


@pytest.fixture(scope="module")
def digits_120():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    return X[:120], d.target[:120].astype(np.int64)


def _saved_types(est, folder) -> set[str]:
    objrec.save(est, folder)
    return set(sio.get_untrusted_types(file=folder / "estimator.skops"))


def test_allow_list_is_exactly_the_types_of_every_registered_method(digits_120, tmp_path):
    X, y = digits_120
    classic = [n for n in list_methods() if method_spec(n).approach != "cnn"]
    assert len(classic) >= 13  # every classic family is registered
    found: dict[str, str] = {}
    runs = [(n, FAST.get(n, {})) for n in classic] + VARIANTS
    for i, (name, params) in enumerate(runs):
        n = N_IMAGES.get(name, len(y))
        est = objrec.make_method(name, **params).fit(X[:n], y[:n])
        for t in _saved_types(est, tmp_path / f"m{i}"):
            found.setdefault(t, name)
    # the classic segmenters' classifiers load through the same allow-list
    from objrec.segmentation import make_segmenter

    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (4, 24, 24, 3), np.uint8)
    masks = np.zeros((4, 24, 24), np.uint8)
    masks[:, 4:14, 4:14] = 1
    masks[:, 16:22, 2:20] = 2
    images[masks == 1] = (250, 40, 40)
    images[masks == 2] = (40, 250, 40)
    for name, params, file in (("slic", {"n_segments": 30, "max_iter": 5}, "slic.skops"),
                               ("forest", {"n_estimators": 2}, "forest.skops")):  # fmt: skip
        seg = make_segmenter(name, **params).fit(images, masks)
        assert len(np.unique(seg.predict(images))) == 3  # a fitted classifier, not a constant
        seg.save(tmp_path / f"seg-{name}")
        for t in sio.get_untrusted_types(file=tmp_path / f"seg-{name}" / file):
            found.setdefault(t, f"segmenter {name}")
    missing = sorted(set(found) - TRUSTED_TYPES)
    assert not missing, (
        f"saved estimators now hold types outside objrec.skops_types.TRUSTED_TYPES: "
        f"{[(t, found[t]) for t in missing]}; add them there if they are safe classes"
    )
    # types of method modules that cannot be imported here (a missing extra) are not checked
    absent = tuple(f"{m}." for m in unavailable_methods())
    stale = sorted(t for t in TRUSTED_TYPES - set(found) if not t.startswith(absent or ("\0",)))
    assert not stale, f"TRUSTED_TYPES lists types no saved estimator holds: {stale}"
    # and every method loads back through the allow-list
    back = objrec.load(tmp_path / "m0")
    assert type(back).__name__ in {t.rsplit(".", 1)[1] for t in TRUSTED_TYPES}


def test_allow_list_holds_no_callable_and_no_prefix():
    for t in TRUSTED_TYPES:
        mod, _, name = t.rpartition(".")
        assert mod and name[0].isupper(), t  # a class, fully qualified
        assert mod.split(".")[0] in ("objrec", "sklearn"), t
    for bad in ("builtins.exec", "builtins.eval", "builtins.getattr", "builtins.open", "os.system"):
        assert bad not in TRUSTED_TYPES


def _reduce_node(module: str, name: str, *args) -> dict:
    """A skops node that calls ``module.name(*args)`` when the file is loaded."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "str",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": json.dumps(a),
                    "is_json": True,
                }
                for a in args
            ],
        },
    }


def _plant(skops_file, node: dict) -> None:
    """Add ``node`` as an attribute of the saved estimator inside ``skops_file``."""
    with zipfile.ZipFile(skops_file) as z:
        members = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(members["schema.json"])
    attrs = schema["content"]  # the estimator's __dict__: a DictNode
    attrs["content"]["planted_"] = node
    key_types = attrs["key_types"]["content"]
    key_types.append(dict(key_types[0]))  # the new key is a str, like the first one
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(skops_file, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.fixture(scope="module")
def logreg_folder(digits_120, tmp_path_factory):
    X, y = digits_120
    est = objrec.make_method("pixels-logreg").fit(X, y)
    return objrec.save(est, tmp_path_factory.mktemp("logreg") / "model")


@pytest.mark.parametrize(
    "module, name, make_args",
    [
        ("builtins", "exec", lambda m: (f"open({str(m)!r}, 'w').write('ran')",)),
        ("builtins", "eval", lambda m: (f"open({str(m)!r}, 'w').write('ran')",)),
        ("os", "system", lambda m: (f"touch '{m}'",)),
        ("builtins", "open", lambda m: (str(m), "w")),
    ],
)
def test_reduce_node_calling_a_function_is_refused_and_nothing_runs(
    logreg_folder, tmp_path, module, name, make_args
):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(logreg_folder, folder)
    marker = tmp_path / "marker"
    _plant(folder / "estimator.skops", _reduce_node(module, name, *make_args(marker)))
    assert f"{module}.{name}" in sio.get_untrusted_types(file=folder / "estimator.skops")
    with pytest.raises(ModelFileError, match=rf"allow-list: {module}\.{name}"):
        objrec.load(folder)
    from objrec.serving.predictor import Predictor

    with pytest.raises(ModelFileError):  # objrec predict and objrec serve load it this way
        Predictor.from_path(folder, backend="native")
    assert not marker.exists()


def test_planted_node_of_an_allowed_class_still_loads(logreg_folder, tmp_path, digits_120):
    """The check is on types, not on file edits: a harmless extra attribute loads."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(logreg_folder, folder)
    _plant(
        folder / "estimator.skops",
        {
            "__class__": "str",
            "__module__": "builtins",
            "__loader__": "JsonNode",
            "content": '"hello"',
            "is_json": True,
        },
    )
    back = objrec.load(folder)
    assert back.planted_ == "hello"
    X, _ = digits_120
    assert back.predict(X[:3]).shape == (3,)
