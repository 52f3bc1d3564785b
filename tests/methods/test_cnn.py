"""CNNClassifier: the estimator contract, preprocessing, the artifact, fine-tuning, bad input."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import objrec  # noqa: E402
from objrec.errors import InputError, ObjrecError  # noqa: E402
from objrec.methods.cnn import CNNClassifier  # noqa: E402

FAST = {"epochs": 3, "batch_size": 32, "min_steps": 0, "verbose": False, "threads": 1}


@pytest.fixture(scope="module")
def fitted(digits_small):
    X, y, Xv, yv = digits_small
    return objrec.make_method("simple_cnn", **FAST).fit(X, y, Xv[:150], yv[:150])


def test_large_inputs_predict_in_nhwc_with_the_same_answers(fitted, digits_small):
    X = np.concatenate([digits_small[2]] * 2)[:400]  # >= 256 images: an NHWC copy predicts
    small = np.concatenate([fitted.predict_proba(X[i : i + 100]) for i in range(0, 400, 100)])
    np.testing.assert_allclose(fitted.predict_proba(X), small, atol=1e-5)
    assert fitted.model_.features[0].weight.is_contiguous()  # the estimator's net is untouched


def test_forward_passes_are_bounded_by_the_pixels_the_network_computes_on(
    fitted, digits_small, monkeypatch
):
    from objrec.methods import cnn
    from objrec.nets import create_model

    assert cnn.forward_batch(fitted.model_, (28, 28)) == cnn.FORWARD_CAP  # digits: the cap
    assert cnn.forward_batch(fitted.model_, (64, 64)) == 196
    lite = create_model("efficientnet_lite0", pretrained=False, image_size=(160, 160))
    assert cnn.forward_batch(lite, (32, 32)) == 31  # at its own side, not the input's
    X = digits_small[2][:200]  # < 256 images: the estimator's own network runs the passes
    whole = fitted.predict_proba(X)
    monkeypatch.setattr(cnn, "FORWARD_PIXELS", 50 * 8 * 8)  # 50 of the 8x8 images per pass
    passes = []
    hook = fitted.model_.register_forward_hook(lambda m, i, o: passes.append(len(i[0])))
    try:
        np.testing.assert_allclose(fitted.predict_proba(X), whole, atol=1e-5)
    finally:
        hook.remove()
    assert passes == [50, 50, 50, 50]


def test_every_network_is_a_method():
    from objrec.methods import list_methods, method_spec
    from objrec.nets import list_models

    assert set(list_models()) <= set(list_methods("cnn"))
    est = objrec.make_method("simple_cnn", epochs=5)
    assert isinstance(est, CNNClassifier) and est.epochs == 5 and est.method_name == "simple_cnn"
    assert method_spec("resnet_small").approach == "cnn"


def test_fit_predict_score(fitted, digits_small):
    _, _, Xt, yt = digits_small
    assert fitted.model_.training is False
    assert fitted.input_shape_ == (8, 8) and list(fitted.classes_) == list(range(10))
    proba = fitted.predict_proba(Xt[150:])
    assert proba.shape == (150, 10)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(fitted.predict(Xt[150:]), fitted.classes_[proba.argmax(1)])
    assert fitted.score(Xt[150:], yt[150:]) > 0.8  # 3 epochs on 600 8x8 digits
    h = fitted.history_
    assert [e["epoch"] for e in h] == [1, 2, 3]
    assert set(h[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
    }
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert fitted.val_accuracy_ == pytest.approx(fitted.score(Xt[:150], yt[:150]))


def test_preprocessing_and_to_tensor(fitted, digits_small):
    X, *_ = digits_small
    pre = fitted.preprocessing_
    assert pre["channels"] == 1 and pre["input_size"] == [8, 8]
    np.testing.assert_allclose(pre["mean"], [X.mean() / 255], rtol=1e-4)
    np.testing.assert_allclose(pre["std"], [(X / 255).std(ddof=1)], rtol=1e-3)
    t = fitted.to_tensor(X[:5])
    assert t.dtype == torch.float32 and t.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(
        t.numpy()[:, 0], (X[:5] / 255 - pre["mean"][0]) / pre["std"][0], rtol=1e-5, atol=1e-6
    )


def test_save_and_load_round_trip(fitted, digits_small, tmp_path):
    _, _, Xt, _ = digits_small
    folder = objrec.save(fitted, tmp_path / "model")
    assert (folder / "weights.safetensors").is_file()
    loaded = objrec.load(tmp_path)
    assert isinstance(loaded, CNNClassifier) and loaded.get_params() == fitted.get_params()
    np.testing.assert_allclose(loaded.predict_proba(Xt), fitted.predict_proba(Xt), rtol=1e-6)
    assert loaded.preprocessing_ == fitted.preprocessing_ and loaded.input_shape_ == (8, 8)


def test_given_validation_split_and_stratified_hold_out(digits_small):
    X, y, _, _ = digits_small
    est = objrec.make_method("mlp", epochs=1, verbose=False, val_fraction=0.2, seed=1).fit(X, y)
    assert est.val_accuracy_ is not None
    none = objrec.make_method("mlp", epochs=1, verbose=False, val_fraction=0).fit(X, y)
    assert none.history_[0]["val_loss"] is None and none.val_accuracy_ is None


def test_rgb_input_and_clone(digits_small):
    from sklearn.base import clone

    X, y, _, _ = digits_small
    rgb = np.repeat(X[:200, :, :, None], 3, axis=3)
    est = clone(objrec.make_method("lenet5", epochs=1, verbose=False, threads=1)).fit(rgb, y[:200])
    assert est.preprocessing_["channels"] == 3 and est.predict(rgb[:3]).shape == (3,)


def test_fine_tuning_replaces_head_and_freezes_backbone(fitted, digits_small, tmp_path):
    X, y, _, _ = digits_small
    objrec.save(fitted, tmp_path / "base")
    keep = y < 3
    est = objrec.make_method(
        "simple_cnn",
        epochs=1,
        verbose=False,
        init_from=str(tmp_path / "base"),
        freeze_backbone=True,
    ).fit(X[keep], y[keep])
    assert est.predict_proba(X[:2]).shape == (2, 3)
    for k, v in est.model_.features.state_dict().items():
        assert torch.equal(v, fitted.model_.features.state_dict()[k])
    assert not torch.equal(est.model_.head[0].weight, fitted.model_.head[0].weight)


def test_early_stopping_restores_best_weights(digits_small):
    X, y, Xv, yv = digits_small
    est = objrec.make_method(
        "mlp", epochs=6, lr=0.5, optimizer="sgd", early_stopping=1, verbose=False
    ).fit(X, y, Xv, yv)
    accs = [h["val_accuracy"] for h in est.history_]
    assert est.val_accuracy_ == pytest.approx(max(accs))


def test_bad_input_is_refused(fitted, digits_small):
    X, y, _, _ = digits_small
    with pytest.raises(InputError, match="trained on"):
        fitted.predict(np.zeros((2, 9, 9), np.uint8))
    with pytest.raises(InputError, match="do not occur in the training labels"):
        objrec.make_method("mlp", verbose=False).fit(X, y, X[:5], np.full(5, 42))
    with pytest.raises(InputError, match="labels for"):
        objrec.make_method("mlp", verbose=False).fit(X, y[:-1])
    with pytest.raises(InputError, match="unknown augmentation"):
        objrec.make_method("mlp", augment="wobble", verbose=False).fit(X, y)
    with pytest.raises(ObjrecError, match="unknown optimizer"):
        objrec.make_method("mlp", optimizer="lbfgs", verbose=False).fit(X, y)
    with pytest.raises(InputError, match="at least 8x8"):
        objrec.make_method("resnet_small", verbose=False).fit(
            np.zeros((4, 6, 6), np.uint8), [0, 1, 0, 1]
        )


@pytest.mark.filterwarnings("ignore:precision='bf16'")
def test_bf16_training_learns_and_predicts_in_fp32(digits_small):
    X, y, Xv, yv = digits_small
    runs = {
        p: objrec.make_method("simple_cnn", **FAST, precision=p).fit(X, y, Xv[:150], yv[:150])
        for p in ("fp32", "bf16")
    }
    w32, w16 = (runs[p].model_.features[0].weight for p in ("fp32", "bf16"))
    assert w16.dtype == torch.float32 and not torch.equal(w32, w16)  # the bf16 path ran
    scores = {p: est.score(Xv[150:], yv[150:]) for p, est in runs.items()}
    assert scores["bf16"] > 0.7 and abs(scores["bf16"] - scores["fp32"]) < 0.05, scores
    # validation runs in fp32: the recorded accuracy is what predict gives
    assert runs["bf16"].val_accuracy_ == pytest.approx(runs["bf16"].score(Xv[:150], yv[:150]))
    with pytest.raises(InputError, match="precision must be one of"):
        objrec.make_method("mlp", precision="fp16", verbose=False).fit(X, y)


def test_time_budget_stops_training_with_the_schedule_annealed(digits_small):
    import time

    X, y, _, _ = digits_small
    t0 = time.perf_counter()
    est = objrec.make_method(
        "mlp", epochs=100_000, max_time=1.0, schedule="onecycle", verbose=False, threads=1
    ).fit(X, y)
    assert time.perf_counter() - t0 < 60
    assert 1 <= len(est.history_) < 100_000
    assert est.history_[-1]["lr"] < 0.1 * 1e-3  # annealed by the clock, not by the step count
