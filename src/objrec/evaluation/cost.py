"""What a method costs: fit time, inference throughput and latency, size on disk, peak memory.

Peak memory is the **peak resident set size (RSS) of this process above a fresh
baseline**, in MiB. Before the work starts, :func:`release_free_memory` collects garbage
and hands the memory that earlier work freed back to the operating system (glibc's
``malloc_trim``); then a background thread samples ``/proc/self/statm`` every few
milliseconds while the work runs. Without that release, a method run after another one
reuses the pages its predecessor freed but the allocator kept, and its peak reads as
little as 0: the numbers depended on the order the methods ran in. Unlike
``tracemalloc`` it sees every allocation (NumPy, PyTorch's own allocator, OpenCV, BLAS
buffers) and does not slow Python down; unlike a ``ru_maxrss`` delta it is not hidden by
an earlier, larger peak of the same process. It does not count the interpreter and the
libraries already loaded, nor worker processes (``n_jobs`` with the loky backend), and
can miss a spike shorter than the sampling interval. Where ``/proc`` is absent it falls
back to the ``ru_maxrss`` delta (0 when an earlier peak was higher).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")


def current_rss() -> int | None:
    """Resident set size of this process in bytes (None where /proc is unavailable)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere: musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Collect garbage and return the heap's free pages to the OS, so that the RSS
    measured next starts from what is actually in use (not from earlier work's leftovers)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


class PeakMemory:
    """Context manager measuring the peak RSS above the starting RSS, in bytes (``.peak``).

    >>> with PeakMemory() as pm:
    ...     work()
    >>> pm.peak_mib
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self.method = "rss-sampling" if current_rss() is not None else "ru_maxrss-delta"

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = current_rss()
            if rss is not None and rss - self._start > self.peak:
                self.peak = rss - self._start
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = 0
        release_free_memory()
        if self.method == "rss-sampling":
            self._start = current_rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.method == "rss-sampling":
            self._stop.set()
            self._thread.join()
            rss = current_rss()
            if rss is not None:
                self.peak = max(self.peak, rss - self._start)
        else:
            end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.peak = max(0, end - self._start)

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def timed_fit(estimator, X, y, **fit_params) -> dict[str, Any]:
    """Fit ``estimator`` in place; returns ``fit_seconds`` (wall clock) and ``fit_peak_mib``."""
    with PeakMemory() as pm:
        t0 = time.perf_counter()
        estimator.fit(X, y, **fit_params)
        seconds = time.perf_counter() - t0
    return {"fit_seconds": seconds, "fit_peak_mib": pm.peak_mib, "memory_method": pm.method}


def _outputs(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(predicted labels, probabilities or None, decision scores or None) for one batch."""
    if hasattr(estimator, "predict_proba"):
        try:
            proba = np.asarray(estimator.predict_proba(X))
        except AttributeError:  # sklearn's available_if hides predict_proba this way
            proba = None
        if proba is not None:
            return estimator.classes_[proba.argmax(axis=1)], proba, None
    if hasattr(estimator, "decision_function"):
        s = np.asarray(estimator.decision_function(X))
        if s.ndim == 1:  # binary: positive score means classes_[1]
            s = np.stack([-s, s], axis=1)
        return estimator.classes_[s.argmax(axis=1)], None, s
    return np.asarray(estimator.predict(X)), None, None


def batched_predict(
    estimator, X: np.ndarray, batch_size: int = 256, progress: bool = False
) -> dict[str, Any]:
    """Predict ``X`` in batches of ``batch_size``, timing it.

    Returns ``pred`` (N,) labels, ``proba`` (N, K) or None, ``scores`` (N, K) or None,
    ``seconds`` (wall clock for all batches), ``images_per_second`` and ``batch_size``,
    plus ``predict_peak_mib``. One call of ``predict_proba`` (or ``decision_function``)
    per batch gives both labels and probabilities, so the timing is that of real use.
    """
    from objrec.progress import progress as bar

    preds, probas, scores = [], [], []
    starts = range(0, len(X), batch_size)
    with PeakMemory() as pm:
        t0 = time.perf_counter()
        for s in bar(starts, desc="predict", unit="batch", enabled=progress):
            p, pr, sc = _outputs(estimator, X[s : s + batch_size])
            preds.append(p)
            probas.append(pr)
            scores.append(sc)
        seconds = time.perf_counter() - t0
    return {
        "pred": np.concatenate(preds),
        "proba": None if probas[0] is None else np.concatenate(probas),
        "scores": None if scores[0] is None else np.concatenate(scores),
        "seconds": seconds,
        "images_per_second": len(X) / seconds if seconds > 0 else float("inf"),
        "batch_size": batch_size,
        "predict_peak_mib": pm.peak_mib,
    }


def single_image_latency(estimator, X: np.ndarray, n: int = 20, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``predict`` on one image, over ``n`` images of ``X``."""
    n = min(n, len(X))
    for i in range(min(warmup, len(X))):
        estimator.predict(X[i : i + 1])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        estimator.predict(X[i : i + 1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def folder_size(path: str | os.PathLike) -> int:
    """Total size in bytes of the files under ``path`` (a saved model folder)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
