"""Metrics against scikit-learn's own functions on fixed predictions, plus hand-worked cases."""

import numpy as np
import pytest
from sklearn import metrics as skm

from objrec.errors import InputError
from objrec.evaluation import metrics as M

K = 4


@pytest.fixture(scope="module")
def fixed():
    """200 fixed predictions over 4 classes: imbalanced, one class never predicted."""
    rng = np.random.default_rng(7)
    y_true = rng.choice(K, size=200, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(size=(200, K)) + 2.0 * np.eye(K)[y_true]
    logits[:, 3] -= 3.0  # class 3 is (almost) never predicted
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    return y_true, y_pred, proba


def test_scalar_metrics_match_sklearn(fixed):
    y_true, y_pred, proba = fixed
    m = M.evaluate_predictions(y_true, y_pred, classes=list("abcd"), proba=proba)
    labels = list(range(K))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        assert m[f"{avg}_precision"] == pytest.approx(p)
        assert m[f"{avg}_recall"] == pytest.approx(r)
        assert m[f"{avg}_f1"] == pytest.approx(f)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=labels))


def test_per_class_match_sklearn(fixed):
    y_true, y_pred, proba = fixed
    m = M.evaluate_predictions(y_true, y_pred, classes=list("abcd"), proba=proba)
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(K)), zero_division=0
    )
    got = m["per_class"]
    assert [c["class"] for c in got] == list("abcd")
    np.testing.assert_allclose([c["precision"] for c in got], p)
    np.testing.assert_allclose([c["recall"] for c in got], r)
    np.testing.assert_allclose([c["f1"] for c in got], f)
    assert [c["support"] for c in got] == s.tolist()


def test_confusion_matrix_matches_sklearn(fixed):
    y_true, y_pred, _ = fixed
    m = M.evaluate_predictions(y_true, y_pred, classes=list("abcd"))
    labels = list(range(K))
    np.testing.assert_array_equal(
        m["confusion_matrix"], skm.confusion_matrix(y_true, y_pred, labels=labels)
    )
    np.testing.assert_allclose(
        m["confusion_matrix_normalized"],
        skm.confusion_matrix(y_true, y_pred, labels=labels, normalize="true"),
        atol=1e-6,
    )


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_matches_sklearn(fixed, k):
    y_true, _, proba = fixed
    assert M.top_k_accuracy(y_true, proba, k) == pytest.approx(
        skm.top_k_accuracy_score(y_true, proba, k=k, labels=list(range(K)))
    )


def test_top_k_capped_at_class_count(fixed):
    y_true, y_pred, proba = fixed
    m = M.evaluate_predictions(y_true, y_pred, classes=list("abcd"), proba=proba, top_k=(1, 3, 5))
    assert set(m["top_k_accuracy"]) == {"1", "3", "4"}
    assert m["top_k_accuracy"]["4"] == 1.0
    assert m["top_k_accuracy"]["1"] == pytest.approx(m["accuracy"])


def test_confusion_matrix_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 1, 2, 0, 2, 1])
    cm = M.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 2, 0], [0, 2, 0], [1, 1, 2]])
    np.testing.assert_allclose(
        M.normalize_confusion(cm), [[1 / 3, 2 / 3, 0], [0, 1, 0], [0.25, 0.25, 0.5]]
    )
    assert M.most_confused_pairs(cm, 5) == [(0, 1, 2), (2, 0, 1), (2, 1, 1)]
    prf = M.per_class_prf(cm)
    # class 1: predicted 5 times, 2 right -> precision 0.4; recall 2/2 = 1
    assert prf["precision"][1] == pytest.approx(0.4)
    assert prf["recall"][1] == pytest.approx(1.0)
    assert prf["f1"][1] == pytest.approx(2 * 0.4 / 1.4)


def test_ece_by_hand():
    # 4 samples, 2 bins: confidences 0.9, 0.8 (bin (0.5, 1]) and 0.3, 0.4 (bin (0, 0.5])
    proba = np.array(
        [
            [0.9, 0.1, 0.0],  # pred 0, true 0: right
            [0.1, 0.8, 0.1],  # pred 1, true 0: wrong
            [0.3, 0.3 - 1e-9, 0.4 + 1e-9],  # pred 2 (conf ~0.4), true 2: right
            [0.3, 0.35, 0.35 - 1e-9],  # pred 1 (conf 0.35), true 0: wrong
        ]
    )
    y_true = np.array([0, 0, 2, 0])
    # high bin: acc 1/2, conf 0.85 -> |0.5 - 0.85| = 0.35, weight 2/4
    # low bin: acc 1/2, conf (0.4 + 0.35) / 2 = 0.375 -> 0.125, weight 2/4
    expected = 0.5 * 0.35 + 0.5 * 0.125
    assert M.expected_calibration_error(y_true, proba, n_bins=2) == pytest.approx(
        expected, abs=1e-8
    )
    cb = M.calibration_bins(y_true, proba, n_bins=2)
    assert cb["count"].tolist() == [2, 2]
    np.testing.assert_allclose(cb["accuracy"], [0.5, 0.5])


def test_ece_perfectly_calibrated_is_zero():
    # every prediction has confidence 1 and is right
    y = np.array([0, 1, 2, 1])
    assert M.expected_calibration_error(y, np.eye(3)[y]) == pytest.approx(0.0)


def test_top_losses_ranked_by_true_class_probability(fixed):
    y_true, y_pred, proba = fixed
    tl = M.top_losses(y_true, y_pred, proba, n=5)
    assert len(tl) == 5
    losses = [t["loss"] for t in tl]
    assert losses == sorted(losses, reverse=True)
    wrong = np.flatnonzero(y_true != y_pred)
    worst = wrong[np.argmax(-np.log(proba[wrong, y_true[wrong]]))]
    assert tl[0]["index"] == worst
    for t in tl:
        assert t["true"] != t["pred"] and t["pred"] == y_pred[t["index"]]
        assert t["loss"] == pytest.approx(-np.log(proba[t["index"], t["true"]]))


def test_without_probabilities_uses_scores_for_ranking(fixed):
    y_true, y_pred, proba = fixed
    scores = np.log(proba)  # same ranking, not probabilities
    m = M.evaluate_predictions(y_true, y_pred, classes=list("abcd"), scores=scores)
    assert m["log_loss"] is None and m["ece"] is None and m["calibration"] is None
    assert m["top_k_accuracy"]["3"] == pytest.approx(
        skm.top_k_accuracy_score(y_true, scores, k=3, labels=list(range(K)))
    )
    assert m["top_losses"][0]["loss"] > 0


def test_encode_and_bad_input():
    classes = np.array([3, 5, 9])
    np.testing.assert_array_equal(M.encode([9, 3, 5, 5], classes), [2, 0, 1, 1])
    with pytest.raises(InputError, match="not classes the model knows"):
        M.encode([3, 4], classes)
    with pytest.raises(InputError, match="same length"):
        M.evaluate_predictions([0, 1], [0], classes=["a", "b"])
    with pytest.raises(InputError, match="class indices"):
        M.evaluate_predictions([0, 2], [0, 1], classes=["a", "b"])
    with pytest.raises(InputError, match="shape"):
        M.evaluate_predictions([0, 1], [0, 1], classes=["a", "b"], proba=np.ones((2, 3)))
