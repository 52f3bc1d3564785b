"""Is an input like the training data? An out-of-distribution score and a polarity check.

**Score.** Every prediction carries the *maximum softmax probability* (MSP) of its
scores, the baseline out-of-distribution detector of Hendrycks & Gimpel (2017): inputs
unlike the training data tend to get a flatter distribution, so a low top probability
flags them. ``reject_below=P`` (``objrec predict/serve --reject-below P``) answers
``"unknown"`` instead of a class when the top probability is below ``P``. A network can
still be confidently wrong on strange inputs; the score is a filter, not a guarantee.

**Polarity.** MNIST-like models are trained on light strokes on a dark background; a
dark 7 on white paper is then "unlike anything seen" but often classified with
confidence. The training images' mean grey level and the mean of their one-pixel border
(the background, for centred objects) are recorded in the model's metadata under
``input_stats`` (:func:`input_statistics`, at training time). :func:`polarity_warning`
compares an input, as the model sees it, against them and says so when its background
is on the other side of the grey scale (a border mean differing by more than
:data:`BORDER_GAP` of 255 levels, with the training border clearly dark or light).
Models saved without ``input_stats`` get no polarity check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Metadata key of :func:`input_statistics`.
INPUT_STATS_KEY = "input_stats"
#: Border means further apart than this (0..255 levels) read as a different background.
BORDER_GAP = 96.0
_SAMPLE = 2000  # images :func:`input_statistics` looks at (evenly spaced)


def _grey(X: np.ndarray) -> np.ndarray:
    """(N, H, W) float grey levels of uint8 (N, H, W) or (N, H, W, 3) images."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 4:
        X = X[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as decoding does
    return X


def border_means(X: np.ndarray) -> np.ndarray:
    """(N,) mean grey level of each image's outermost rows and columns."""
    g = _grey(X)
    if g.shape[1] < 3 or g.shape[2] < 3:
        return g.reshape(len(g), -1).mean(1)
    inner = g[:, 1:-1, 1:-1].reshape(len(g), -1).sum(1)
    return (g.reshape(len(g), -1).sum(1) - inner) / (g[0].size - g[0, 1:-1, 1:-1].size)


def input_statistics(X) -> dict[str, Any] | None:
    """What the training images look like: ``mean`` and ``border_mean`` grey levels
    (0..255), ``polarity`` ("light on dark", "dark on light" or "mixed") and ``n_images``
    looked at. ``X``: uint8 images (N, H, W) or (N, H, W, 3); None for anything else
    (e.g. a lazily loaded folder), so a model without them simply gets no check."""
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim not in (3, 4) or not len(X):
        return None
    idx = np.unique(np.linspace(0, len(X) - 1, min(len(X), _SAMPLE)).astype(int))
    S = X[idx]
    mean, border = float(_grey(S).mean()), float(border_means(S).mean())
    polarity = (
        "light on dark"
        if border < 64 and mean > border
        else "dark on light"
        if border > 191 and mean < border
        else "mixed"
    )
    return {
        "mean": round(mean, 2),
        "border_mean": round(border, 2),
        "polarity": polarity,
        "n_images": len(idx),
    }


def polarity_warning(stats: dict | None, X: np.ndarray) -> list[str | None]:
    """Per image of ``X`` (uint8, at the model's input), a warning when its background
    differs from the training images' (``stats`` from :func:`input_statistics`), else None."""
    n = len(X)
    if not isinstance(stats, dict) or stats.get("polarity") not in (
        "light on dark",
        "dark on light",
    ):
        return [None] * n
    try:
        train = float(stats["border_mean"])
    except (KeyError, TypeError, ValueError):
        return [None] * n
    out: list[str | None] = []
    for b in border_means(X):
        if abs(b - train) <= BORDER_GAP:
            out.append(None)
            continue
        seen = "light" if b > train else "dark"
        fix = "light strokes on black" if stats["polarity"] == "light on dark" else "dark on white"
        out.append(
            f"this image's background is {seen} (border mean {b:.0f} of 255) but the model "
            f"was trained on {stats['polarity']} images (border mean {train:.0f}): the "
            f"prediction is unreliable; invert the image ({fix}) or crop it to the object"
        )
    return out


def max_probability(proba: np.ndarray) -> np.ndarray:
    """(N,) the maximum softmax probability of each row of ``proba`` (N, K)."""
    return np.asarray(proba, dtype=np.float64).max(axis=1)


def check_threshold(p: float | None, what: str = "--reject-below") -> float | None:
    """``p`` as a probability threshold in 0..1 (None stays None); InputError otherwise."""
    from objrec.errors import InputError

    if p is None:
        return None
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a probability between 0 and 1, got {p!r}") from None
    if not 0.0 <= v <= 1.0:
        raise InputError(f"{what} must be a probability between 0 and 1, got {p}")
    return v


def assess(
    proba: np.ndarray,
    X: np.ndarray,
    stats: dict | None,
    reject_below: float | None = None,
    top: list[float] | None = None,
) -> list[dict[str, Any]]:
    """Per image: ``max_probability``, ``unknown`` (below ``reject_below``), ``warning``
    (the polarity check, or None). ``top``: the (N,) top probabilities when the caller has
    them already (e.g. the first of each top-k), else the maxima of ``proba`` (N, K)."""
    mp = max_probability(proba).tolist() if top is None else top
    if len(mp) != len(X):
        raise ValueError(f"{len(mp)} top probabilities for {len(X)} images")
    warns = polarity_warning(stats, X) if stats is not None else [None] * len(X)
    return [
        {
            "max_probability": p,
            "unknown": reject_below is not None and p < reject_below,
            "warning": w,
        }
        for p, w in zip(mp, warns, strict=True)
    ]
