"""The robustness runner, the mCE arithmetic, augmentation by nuisances, plots and the CLI."""

import csv
import json

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import objrec
from objrec.errors import InputError
from objrec.evaluation import nuisances as nz
from objrec.evaluation import robustness as rb
from objrec.evaluation.augment import AugmentedFit, augment, heldout_family_protocol


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def tiny_knn(k=1):
    """A plain scikit-learn estimator over uint8 images (flatten + kNN)."""
    return make_pipeline(FunctionTransformer(_flatten), KNeighborsClassifier(k))


@pytest.fixture(scope="module")
def fitted(digits_small):
    Xtr, ytr, Xte, yte = digits_small
    return tiny_knn(1).fit(Xtr, ytr), tiny_knn(7).fit(Xtr, ytr), Xte[:120], yte[:120]


def test_runner_matches_direct_computation(fitted):
    m1, m7, X, y = fitted
    fams = ["pose", "blur", "translate"]
    res = rb.evaluate_robustness(
        {"pixels-knn": m1, "knn7": m7},
        X,
        y,
        families=fams,
        severities="1,3,5",
        seed=4,
        progress=False,
    )
    assert res.accuracy.shape == (2, 3, 3)
    for m, est in enumerate((m1, m7)):
        assert res.clean_accuracy[m] == np.mean(est.predict(X) == y)
        for j, f in enumerate(fams):
            for k, s in enumerate((1, 3, 5)):
                Xc = nz.corrupt(X, f, s, np.random.default_rng(rb.family_seed(4, f)))
                assert res.accuracy[m, j, k] == np.mean(est.predict(Xc) == y)
    # The per-nuisance breakdown of a family adds up to the family's accuracy.
    names, acc, counts = res.members["pose"]
    assert names == list(nz.FAMILIES["pose"])
    assert counts.sum(axis=0).tolist() == [len(y)] * 3
    np.testing.assert_allclose((acc * counts).sum(axis=1) / len(y), res.accuracy[:, 0])
    # A family's images do not depend on which other families run.
    alone = rb.evaluate_robustness(
        {"a": m1}, X, y, families=["blur"], severities=[3], seed=4, progress=False
    )
    assert alone.accuracy[0, 0, 0] == res.accuracy[0, 1, 1]
    # Heavier corruption costs accuracy here (a 1-NN on raw pixels is not pose invariant).
    assert res.accuracy[0, 0, 2] < res.accuracy[0, 0, 0] < res.clean_accuracy[0]


def test_corruption_error_hand_computed():
    err = np.array([[0.1, 0.2], [0.3, 0.4]])  # method: 2 families x 2 severities
    base = np.array([[0.2, 0.4], [0.5, 0.5]])
    np.testing.assert_allclose(rb.corruption_error(err, base), [0.3 / 0.6, 0.7 / 1.0])
    np.testing.assert_allclose(rb.mean_corruption_error(err, base), (0.5 + 0.7) / 2)
    # Relative: (errors - clean error) summed, over the baseline's: clean 0.05 vs 0.1.
    rel = rb.relative_corruption_error(err, 0.05, base, 0.1)
    np.testing.assert_allclose(rel, [(0.05 + 0.15) / (0.1 + 0.3), (0.25 + 0.35) / (0.4 + 0.4)])
    # The same through a result object holding accuracies.
    res = rb.RobustnessResult(
        methods=["m", "pixels-knn"],
        families=["pose", "noise"],
        severities=[1, 2],
        accuracy=1 - np.stack([err, base]),
        clean_accuracy=np.array([0.95, 0.9]),
        n_images=10,
    )
    np.testing.assert_allclose(res.mce(), [0.6, 1.0])
    np.testing.assert_allclose(res.relative_mce(), [(0.5 + 0.75) / 2, 1.0])
    rows = res.summary_rows()
    assert rows[0]["pose"] == pytest.approx(0.85) and rows[0]["mCE"] == pytest.approx(0.6)
    assert "pose" in res.format_table() and "noise" in res.format_table()
    # Without the baseline: no mCE, and the table says why.
    res.baseline = "absent"
    assert res.mce() is None and "not among the methods" in res.format_table()
    # The baseline never erring on a family gives NaN for that family, not a crash.
    assert np.isnan(rb.corruption_error(err, np.zeros((2, 2)))).all()


def test_files_round_trip(fitted, tmp_path):
    m1, _, X, y = fitted
    out = rb.run_suite(
        {"pixels-knn": m1},
        X,
        y,
        folder=tmp_path,
        families=["noise", "occlusion"],
        severities=[1, 5],
        limit=60,
        plots=False,
        progress=False,
    )
    res = out["result"]
    assert res.n_images == 60
    back = rb.RobustnessResult.from_dict(json.loads((tmp_path / "robustness.json").read_text()))
    np.testing.assert_array_equal(back.accuracy, res.accuracy)
    assert back.members["noise"][0] == ["gaussian_noise", "salt_and_pepper"]
    rows = list(csv.DictReader(open(tmp_path / "robustness.csv")))
    fam_rows = [r for r in rows if r["family"] == "occlusion" and r["nuisance"] == ""]
    assert [float(r["accuracy"]) for r in fam_rows] == res.accuracy[0, 1].tolist()
    assert any(r["family"] == "clean" for r in rows)
    assert (tmp_path / "robustness_summary.csv").is_file()


def test_parse_severities():
    assert rb.parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert rb.parse_severities("5,1,3") == [1, 3, 5]
    assert rb.parse_severities([2]) == [2]
    for bad in ("1-9", "x", ""):
        with pytest.raises(InputError):
            rb.parse_severities(bad)


def test_augmented_fit_matches_fitting_on_augmented_data(digits_small):
    Xtr, ytr, Xte, _ = digits_small
    Xtr, ytr = Xtr[:200], ytr[:200]
    aug = AugmentedFit(
        tiny_knn(1), families=["pose", "noise"], severities=[2, 4], copies=2, random_state=3
    )
    aug.fit(Xtr, ytr)
    Xa, ya = augment(Xtr, ytr, ["pose", "noise"], [2, 4], 2, rng=3)
    assert aug.n_training_images_ == len(Xa) == 600
    np.testing.assert_array_equal(Xa[:200], Xtr)
    np.testing.assert_array_equal(ya, np.tile(ytr, 3))
    oracle = tiny_knn(1).fit(Xa, ya)
    np.testing.assert_array_equal(aug.predict(Xte), oracle.predict(Xte))
    np.testing.assert_allclose(aug.predict_proba(Xte), oracle.predict_proba(Xte))
    assert not hasattr(aug, "decision_function")
    with pytest.raises(InputError, match="estimator to wrap"):
        AugmentedFit().fit(Xtr, ytr)
    with pytest.raises(InputError, match="unknown nuisance family"):
        AugmentedFit(tiny_knn(), families=["nope"]).fit(Xtr, ytr)


def test_augmented_objrec_method_saves_and_loads(digits_small, tmp_path):
    Xtr, ytr, Xte, _ = digits_small
    aug = AugmentedFit(objrec.make_method("pixels-knn"), families=["blur"], severities=[1, 2])
    aug.fit(Xtr[:200], ytr[:200])
    assert aug.method_name.endswith("+aug[blur]")
    back = objrec.load(objrec.save(aug, tmp_path / "m"))
    assert isinstance(back, AugmentedFit)
    np.testing.assert_array_equal(back.predict(Xte), aug.predict(Xte))
    assert back.objrec_metadata_["augmentation"]["families"] == ["blur"]


def test_heldout_protocol(digits_small):
    Xtr, ytr, Xte, yte = digits_small
    out = heldout_family_protocol(
        tiny_knn(1),
        Xtr[:300],
        ytr[:300],
        Xte[:80],
        yte[:80],
        train_families=["noise"],
        test_families=["blur", "illumination"],
        severities=[3],
        copies=1,
        progress=False,
    )
    rows = {r["family"]: r for r in out.rows()}
    assert rows["noise"]["role"] == "trained" and rows["blur"]["role"] == "held out"
    assert set(rows) == {"clean", "noise", "blur", "illumination"}
    r = out.robustness
    assert r.methods[1].endswith("+aug[noise]")
    assert rows["noise"]["gain"] == pytest.approx(r.accuracy[1, 0, 0] - r.accuracy[0, 0, 0])
    assert "held out" in out.format_table()


def test_plots(fitted):
    from objrec.report import robustness_plots as rp

    m1, m7, X, y = fitted
    res = rb.evaluate_robustness(
        {"pixels-knn": m1, "knn7": m7},
        X[:40],
        y[:40],
        families=["pose", "blur", "noise"],
        severities=[1, 2],
        progress=False,
    )
    fig = rp.accuracy_vs_severity_figure(res)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in visible] == ["pose", "blur", "noise"]
    assert len(visible[0].get_lines()) == 2
    mont = rp.severity_montage_figure(X[0], ["pose", "deformation"])
    assert len(mont.axes) == (4 + 1) * 6  # pose's 4 nuisances and elastic, severities 0..5


def test_cli_on_saved_model(tmp_path, capsys):
    from objrec.cli import main
    from objrec.data import load_dataset

    data = load_dataset("digits", progress=False)
    est = objrec.make_method("pixels-knn").fit(data.train.X, data.train.y)
    model = objrec.save(est, tmp_path / "run" / "model", training={"dataset": "digits"})
    out = tmp_path / "rob"
    code = main(
        [
            "robustness",
            str(model.parent),
            "--families",
            "pose",
            "translate",
            "--severities",
            "1,3",
            "--limit",
            "90",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "pose" in printed and "translate" in printed and "mCE" in printed
    res = json.loads((out / "robustness.json").read_text())
    assert res["families"] == ["pose", "translate"] and res["severities"] == [1, 3]
    assert res["methods"] == ["pixels-knn"]
    X, y = rb.subsample(data.test.X, data.test.y, 90, 0)
    Xc = nz.corrupt(X, "translate", 3, np.random.default_rng(rb.family_seed(0, "translate")))
    assert res["accuracy"][0][1][1] == np.mean(est.predict(Xc) == y)
    assert res["summary"][0]["mCE"] == pytest.approx(1.0)
    assert (out / "accuracy_vs_severity.png").is_file() and (out / "samples.png").is_file()
    # Bad input: a clear one-line error.
    assert main(["robustness", str(model), "--severities", "7", "--out", str(out)]) == 2
    assert "severit" in capsys.readouterr().err
    assert (
        main(["robustness", str(model), "--families", "posture", "--out", str(out), "--quiet"]) == 2
    )
    assert "unknown nuisance family 'posture'" in capsys.readouterr().err


def test_cli_heldout_protocol(tmp_path, capsys):
    from objrec.cli import main

    out = tmp_path / "ho"
    code = main(
        [
            "robustness",
            "--heldout",
            "pixels-knn",
            "--dataset",
            "digits",
            "--train-families",
            "noise",
            "--families",
            "blur",
            "--severities",
            "2",
            "--limit",
            "60",
            "--train-limit",
            "300",
            "--out",
            str(out),
            "--quiet",
            "--no-plots",
        ]
    )
    assert code == 0
    assert "held out" in capsys.readouterr().out
    ho = json.loads((out / "heldout.json").read_text())
    assert ho["trained"] == ["noise"] and ho["held_out"] == ["blur"]
    assert [r["family"] for r in ho["rows"]] == ["clean", "noise", "blur"]
