"""The CLI on small real runs: --limit, --class-weight for classic methods, the class plots
of train and evaluate, compare runs given to info, predict and robustness, aliases."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import objrec
from objrec.cli import main
from objrec.data import load_dataset

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    """``objrec compare digits`` of two quick methods, with its report."""
    out = tmp_path_factory.mktemp("cmp") / "compare-digits"
    argv = ["compare", "digits", "--methods", "pixels-knn", "pixels-logreg", "--limit", "150"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    return out


def test_limit_caps_the_training_split_stratified(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", "--method", "pixels-knn", "--limit", "100", "--out",
                 str(out), "--quiet"]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    full = load_dataset("digits", progress=False)
    assert m["n_train"] == 100
    assert (m["n_val"], m["n_test"]) == (len(full.val.y), len(full.test.y))  # kept whole
    from objrec.evaluation.compare import limit_train

    small = limit_train(full, 100, seed=0)
    counts = np.bincount(small.train.y, minlength=10)
    share = np.bincount(full.train.y, minlength=10) / len(full.train.y) * 100
    assert np.all(np.abs(counts - share) <= 1), counts  # stratified: the same proportions
    again = limit_train(full, 100, seed=0)
    np.testing.assert_array_equal(small.train.X, again.train.X)  # seeded


def test_class_weight_balanced_reaches_a_classic_classifier(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "digits", "--method", "hog-svm", "--class-weight", "balanced",
                 "--limit", "120", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    est = objrec.load(out)
    assert est.class_weight == "balanced"
    assert est.classifier_.class_weight == "balanced"
    # the weights change the fit: an imbalanced set fitted with and without them
    data = load_dataset("digits", progress=False)
    X, y = data.train.X[:500], data.train.y[:500]
    keep = np.flatnonzero((y != 3) | (np.arange(len(y)) % 8 == 0))
    plain = objrec.make_method("pixels-svm").fit(X[keep], y[keep])
    weighted = objrec.make_method("pixels-svm", class_weight="balanced").fit(X[keep], y[keep])
    assert not np.allclose(plain.classifier_.coef_, weighted.classifier_.coef_)


def test_train_and_evaluate_draw_the_confusion_matrix_and_per_class_plots(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", "--method", "pixels-knn", "--limit", "80", "--out",
                 str(out), "--quiet"]) == 0  # fmt: skip
    for name in ("confusion.png", "per_class.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert main(["evaluate", str(out), "--quiet"]) == 0
    for name in ("evaluation-test-confusion.png", "evaluation-test-per_class.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert "evaluation-test-confusion.png" in capsys.readouterr().out


def test_methods_all_trains_an_alias_once():
    from objrec.evaluation.compare import ALIASES, resolve_methods

    names = resolve_methods(["all"])
    assert "hog-svm" in names and "hog-rbf" not in names
    assert len(names) == len(set(names))
    assert resolve_methods(["hog-rbf", "hog-svm"]) == ["hog-svm"]
    assert resolve_methods(["hog-rbf"]) == ["hog-rbf"]  # alone, an alias still runs
    # the alias claim itself: both names fit the same classifier to the same predictions
    data = load_dataset("digits", progress=False)
    X, y, Xt = data.train.X[:300], data.train.y[:300], data.test.X
    for alias, name in ALIASES.items():
        a, b = objrec.make_method(alias).fit(X, y), objrec.make_method(name).fit(X, y)
        assert type(a.classifier_) is type(b.classifier_)
        assert a.classifier_.get_params() == b.classifier_.get_params()
        np.testing.assert_array_equal(a.predict(Xt), b.predict(Xt))


def test_info_shows_every_model_of_a_compare_run(compare_run, capsys):
    assert main(["info", str(compare_run)]) == 0
    out = capsys.readouterr().out
    assert "== pixels-knn" in out and "== pixels-logreg" in out
    assert main(["info", str(compare_run), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(r["method"] for r in records) == ["pixels-knn", "pixels-logreg"]


def test_predict_uses_the_best_model_of_a_compare_run_or_the_one_named(
    compare_run, tmp_path, capsys
):
    from PIL import Image

    data = load_dataset("digits", progress=False)
    img = tmp_path / "digit.png"
    Image.fromarray(data.test.X[0]).save(img)
    best = json.loads((compare_run / "metrics.json").read_text())["best_method"]
    assert main(["predict", str(compare_run), str(img), "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert f"using its best model, {best}" in cap.err
    for method in ("pixels-knn", "pixels-logreg"):
        assert main(["predict", str(compare_run), str(img), "--method", method,
                     "--format", "json"]) == 0  # fmt: skip
        rec = json.loads(capsys.readouterr().out)
        est = objrec.load(compare_run / "methods" / method)
        assert rec["label"] == str(est.predict(data.test.X[:1])[0])


def _page_text(report) -> str:
    """report.html without its embedded images (base64 can hold any short string)."""
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", report.read_text())


def test_robustness_of_a_compare_run_adds_its_section_to_the_report(compare_run, capsys):
    report = compare_run / "report.html"
    assert "mCE" not in _page_text(report)
    argv = ["robustness", str(compare_run), "--families", "noise", "--severities", "1",
            "--limit", "60", "--no-plots", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (compare_run / "robustness" / "robustness.json").is_file()
    html = _page_text(report)
    assert "mCE" in html and "noise" in html
    assert "with the robustness section" in capsys.readouterr().out
    # the methods' sections are still there, drawn from the saved models
    assert html.count("pixels-logreg") >= 2


WARNS = """
import sys
from sklearn.linear_model import LogisticRegression
from objrec.cli import main
from objrec.methods.features import FeatureClassifier

# a solver stopped after 2 iterations warns at each of its fits
FeatureClassifier._make_classifier = lambda self, F: LogisticRegression(max_iter=2)
sys.exit(main(["train", "digits", "--method", "pixels-logreg", "--limit", "100", "--out",
               sys.argv[1], "--quiet"]))
"""


def test_library_warnings_are_said_once_in_objrecs_words(tmp_path):
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [sys.executable, "-c", WARNS, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": src},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    said = [line for line in err if "did not converge" in line]
    assert said == [
        "objrec: warning: pixels-logreg: the solver did not converge in 2 iterations; results "
        "may be slightly worse (a smaller --param C, e.g. C=0.1, regularises more and "
        "converges sooner)"
    ], err
    assert not any("ConvergenceWarning" in line or "warnings.warn" in line for line in err), err


def test_method_warnings_reissues_each_distinct_warning_once():
    import warnings

    from sklearn.datasets import load_digits

    from objrec.methods.base import MethodWarning, method_warnings

    X, y = load_digits(return_X_y=True)
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with method_warnings("m", {"max_iter": 3}):
            for _ in range(3):
                LogisticRegression(max_iter=3).fit(X[:200], y[:200])
    assert [w.category for w in caught] == [MethodWarning]
    assert "m: the solver did not converge in 3 iterations" in str(caught[0].message)
    assert "--param max_iter" in str(caught[0].message)


def test_compare_run_folder_paths_are_what_the_commands_use(compare_run):
    from objrec.commands.predict import choose_model

    best = json.loads((compare_run / "metrics.json").read_text())["best_method"]
    assert choose_model(compare_run) == compare_run / "methods" / best / "model"
    assert Path(choose_model(compare_run, "pixels-knn")).parent.name == "pixels-knn"
    run = compare_run / "methods" / "pixels-knn"
    assert choose_model(run) == run  # one model: itself
