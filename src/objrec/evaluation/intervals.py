"""Confidence intervals on accuracies measured on a finite test set.

An accuracy of 25 right out of 27 test images is 92.6%, but another 27 images could as
well have given 77% or 98%: :func:`wilson_interval` says how far, with the Wilson score
interval (Wilson, 1927), which stays inside 0..1 and keeps its coverage for small
counts and accuracies near 0 or 1, where the normal approximation fails. It is
``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
"""

from __future__ import annotations

#: Below this many test images the report shows the interval next to each accuracy.
SMALL_TEST = 1000


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) fractions in 0..1: the Wilson score interval for ``correct`` successes in
    ``total`` trials at ``confidence`` (0.95: a 95% interval)."""
    from scipy.stats import binomtest

    if total <= 0:
        raise ValueError(f"an interval needs at least one trial, got total={total}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be in 0..{total}, got {correct}")
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_interval(accuracy: float, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval of an accuracy (a fraction) measured on ``total`` images."""
    return wilson_interval(round(accuracy * total), total, confidence)
