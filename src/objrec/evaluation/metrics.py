"""Classification metrics as pure functions of labels, predictions and probabilities.

Conventions
-----------
``y_true``, ``y_pred`` : (N,) int arrays of class indices ``0..K-1`` (the position of
the label in the estimator's ``classes_``; :func:`encode` turns raw labels into that).
``proba`` : (N, K) float array, row ``i`` the predicted distribution over the ``K``
classes (columns in the order of ``classes_``). ``scores`` : (N, K) float decision
values where a method has no probabilities (usable for ranking, i.e. top-k, never for
log loss or calibration).

Every count-based metric here is derived from one confusion matrix, so the numbers
agree with each other; ``tests/evaluation/test_metrics.py`` checks each one against
scikit-learn's own function. Undefined ratios (a class never predicted, or absent from
``y_true``) are 0, as scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from objrec.errors import InputError


def encode(labels, classes) -> np.ndarray:
    """Class indices (N,) int64 of ``labels`` in ``classes`` (an estimator's ``classes_``).

    Raises :class:`InputError` naming labels that are not among ``classes``.
    """
    classes = np.asarray(classes)
    labels = np.asarray(labels)
    idx = np.searchsorted(classes, labels)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != labels
    if bad.any():
        unknown = sorted({str(v) for v in labels[bad]})[:5]
        raise InputError(
            f"labels {', '.join(unknown)} are not classes the model knows ({len(classes)} classes: "
            f"{', '.join(map(str, classes[:10]))}{', ...' if len(classes) > 10 else ''}); "
            "evaluate on data with the same classes as the training set"
        )
    return idx.astype(np.int64)


def _check_pair(y_true, y_pred, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise InputError(
            f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}"
        )
    if len(y_true) == 0:
        raise InputError("no samples to evaluate")
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= n_classes:
            raise InputError(
                f"{name}: expected class indices 0..{n_classes - 1}; map labels with "
                "objrec.evaluation.metrics.encode(labels, classes_)"
            )
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def _check_proba(proba, n: int, n_classes: int, what: str = "proba") -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (n, n_classes):
        raise InputError(f"{what}: expected shape ({n}, {n_classes}), got {p.shape}")
    if not np.isfinite(p).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return p


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts (K, K) int64: row = true class, column = predicted class."""
    y_true, y_pred = _check_pair(y_true, y_pred, n_classes)
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def normalize_confusion(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (K, K) float: each row sums to 1 (0 for absent classes).

    Entry (i, j) is the fraction of class-i images predicted as j; the diagonal is the
    per-class recall (scikit-learn's ``normalize="true"``).
    """
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class_prf(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (K,) float and support (K,) int from a confusion matrix."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)  # = 2PR/(P+R), 0 where undefined
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def top_k_accuracy(y_true, scores, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``k`` is capped at the number of classes (then the answer is 1.0). Ties are broken
    by class order, as a stable sort does.
    """
    y_true = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    k = int(min(max(k, 1), s.shape[1]))
    if k == s.shape[1]:
        return 1.0
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float((top == y_true[:, None]).any(axis=1).mean())


def log_loss(y_true, proba, eps: float | None = None) -> float:
    """Mean negative log probability of the true class, natural log (nats).

    Probabilities are clipped to ``[eps, 1 - eps]`` (default: float64 machine epsilon)
    and each row renormalised to sum to 1, as scikit-learn's ``log_loss`` does.
    """
    y_true = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    eps = np.finfo(np.float64).eps if eps is None else eps
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(y_true)), y_true]).mean())


def calibration_bins(y_true, proba, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Reliability diagram data for the top-1 prediction.

    Confidence = max probability of each sample, binned into ``n_bins`` equal-width bins
    on (0, 1] (bin b holds confidences in ``(b/n, (b+1)/n]``). Returns per bin
    ``count`` (n_bins,) int, ``confidence`` and ``accuracy`` (n_bins,) float (mean over the
    bin, 0 for empty bins) and ``edges`` (n_bins + 1,).
    """
    y_true = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins; a confidence of exactly 0 (all-zero rows) falls in the first bin
    b = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    conf_sum = np.bincount(b, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(b, weights=correct, minlength=n_bins)
    return {
        "edges": edges,
        "count": count,
        "confidence": _safe_div(conf_sum, count),
        "accuracy": _safe_div(acc_sum, count),
    }


def expected_calibration_error(y_true, proba, n_bins: int = 15) -> float:
    """ECE: sum over confidence bins of (bin size / N) * |accuracy - mean confidence| (0..1).

    The top-1 definition of Guo et al. (2017), equal-width bins (see :func:`calibration_bins`).
    """
    cb = calibration_bins(y_true, proba, n_bins)
    n = cb["count"].sum()
    return float(np.sum(cb["count"] / n * np.abs(cb["accuracy"] - cb["confidence"])))


def most_confused_pairs(cm: np.ndarray, n: int = 10) -> list[tuple[int, int, int]]:
    """The ``n`` largest off-diagonal counts as (true class, predicted class, count), largest first.

    Pairs with a zero count are left out; ties keep (true, predicted) order.
    """
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    out = []
    for f in flat:
        i, j = divmod(int(f), cm.shape[1])
        if off[i, j] <= 0:
            break
        out.append((i, j, int(off[i, j])))
    return out


def top_losses(y_true, y_pred, proba=None, scores=None, n: int = 16) -> list[dict[str, Any]]:
    """The ``n`` most confidently wrong samples, worst first.

    Ranked by the loss ``-log p(true class)`` where probabilities exist, otherwise by the
    decision margin ``score(predicted) - score(true)``, otherwise in sample order. Each
    entry: ``index`` (into the evaluated set), ``true``, ``pred`` (class indices),
    ``loss`` (nats, or the margin, or None) and ``confidence`` (p(predicted) or None).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    if proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        loss = -np.log(np.clip(p[wrong, y_true[wrong]], np.finfo(np.float64).eps, 1.0))
        conf = p[wrong, y_pred[wrong]]
    elif scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        loss = s[wrong, y_pred[wrong]] - s[wrong, y_true[wrong]]
        conf = None
    else:
        loss = conf = None
    order = np.arange(len(wrong)) if loss is None else np.argsort(-loss, kind="stable")
    out = []
    for o in order[:n]:
        out.append(
            {
                "index": int(wrong[o]),
                "true": int(y_true[wrong[o]]),
                "pred": int(y_pred[wrong[o]]),
                "loss": None if loss is None else float(loss[o]),
                "confidence": None if conf is None else float(conf[o]),
            }
        )
    return out


def evaluate_predictions(
    y_true,
    y_pred,
    *,
    classes,
    proba=None,
    scores=None,
    top_k: tuple[int, ...] = (1, 3, 5),
    n_bins: int = 15,
    n_confused: int = 10,
    n_losses: int = 16,
) -> dict[str, Any]:
    """Every metric objrec reports, as one JSON-ready dict.

    Parameters
    ----------
    y_true, y_pred : (N,) int class indices (see :func:`encode`).
    classes : sequence of K class names/labels (only the count and names are used).
    proba : (N, K) float probabilities, optional: enables log loss, ECE, calibration and
        probability-ranked top-k/top losses.
    scores : (N, K) float decision values, optional, used for top-k and top losses when
        ``proba`` is None.

    Returns
    -------
    dict with ``n_samples``, ``accuracy``, ``balanced_accuracy``, ``{macro,weighted}_{precision,
    recall,f1}``, ``top_k_accuracy`` ({"k": value}, k capped at K, only when proba or scores),
    ``log_loss``, ``ece``, ``calibration`` (None without proba), ``per_class`` (list of
    dicts: class, precision, recall, f1, support), ``confusion_matrix`` (K x K counts),
    ``confusion_matrix_normalized`` (rows sum to 1), ``most_confused`` (list of dicts:
    true, pred, count), ``top_losses`` (see :func:`top_losses`).
    """
    names = [str(c) for c in classes]
    k_cls = len(names)
    y_true, y_pred = _check_pair(y_true, y_pred, k_cls)
    n = len(y_true)
    if proba is not None:
        proba = _check_proba(proba, n, k_cls)
    if scores is not None:
        scores = _check_proba(scores, n, k_cls, "scores")
    cm = confusion_matrix(y_true, y_pred, k_cls)
    prf = per_class_prf(cm)
    support = prf["support"]
    present = support > 0
    weights = support / support.sum()
    out: dict[str, Any] = {
        "n_samples": n,
        "n_classes": k_cls,
        "accuracy": float(np.trace(cm) / n),
        # mean recall over the classes present in y_true (scikit-learn's balanced_accuracy_score)
        "balanced_accuracy": float(prf["recall"][present].mean()),
    }
    for m in ("precision", "recall", "f1"):
        out[f"macro_{m}"] = float(prf[m].mean())
        out[f"weighted_{m}"] = float(np.sum(prf[m] * weights))
    ranking = proba if proba is not None else scores
    if ranking is not None:
        ks = sorted({int(min(k, k_cls)) for k in top_k})
        out["top_k_accuracy"] = {str(k): top_k_accuracy(y_true, ranking, k) for k in ks}
    else:
        out["top_k_accuracy"] = {}
    if proba is not None:
        out["log_loss"] = log_loss(y_true, proba)
        out["ece"] = expected_calibration_error(y_true, proba, n_bins)
        cb = calibration_bins(y_true, proba, n_bins)
        out["calibration"] = {k: v.tolist() for k, v in cb.items()}
    else:
        out["log_loss"] = out["ece"] = out["calibration"] = None
    out["per_class"] = [
        {
            "class": names[i],
            "precision": float(prf["precision"][i]),
            "recall": float(prf["recall"][i]),
            "f1": float(prf["f1"][i]),
            "support": int(support[i]),
        }
        for i in range(k_cls)
    ]
    out["confusion_matrix"] = cm.tolist()
    out["confusion_matrix_normalized"] = normalize_confusion(cm).round(6).tolist()
    out["most_confused"] = [
        {"true": names[i], "pred": names[j], "true_index": i, "pred_index": j, "count": c}
        for i, j, c in most_confused_pairs(cm, n_confused)
    ]
    out["top_losses"] = top_losses(y_true, y_pred, proba, scores, n_losses)
    return out


SUMMARY_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_f1",
    "log_loss",
    "ece",
)


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of :func:`evaluate_predictions` as one flat dict (for tables/CSV)."""
    row = {k: metrics.get(k) for k in SUMMARY_KEYS}
    for k, v in (metrics.get("top_k_accuracy") or {}).items():
        if k != "1":
            row[f"top{k}_accuracy"] = v
    return row
