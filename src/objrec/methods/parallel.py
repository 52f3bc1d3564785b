"""Per-image work in chunks, in parallel (joblib) with a progress bar (tqdm)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def map_chunks(
    func: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    *,
    n_jobs: int | None = None,
    chunk_size: int = 1000,
    progress: bool = False,
    desc: str = "",
) -> np.ndarray:
    """``np.concatenate([func(chunk) for chunk in X])`` with chunks run on ``n_jobs`` workers.

    Parameters
    ----------
    func : callable mapping (n, ...) images to (n, ...) results; must be picklable
        (a module-level function or ``functools.partial`` of one) when ``n_jobs`` > 1.
    X : (N, ...) array
    n_jobs : int or None
        joblib's convention: None or 1 runs here, -1 uses every core.
    progress : bool
        Show a tqdm bar counting images (when there is more than one chunk: a single
        chunk would only jump from 0 to done).
    """
    from joblib import Parallel, delayed, effective_n_jobs
    from tqdm.auto import tqdm

    starts = range(0, len(X), chunk_size)
    bar = tqdm(
        total=len(X),
        desc=desc,
        unit="img",
        disable=not progress or len(X) <= chunk_size,
        leave=False,
    )
    out = []
    try:
        if effective_n_jobs(n_jobs) == 1 or len(X) <= chunk_size:
            for s in starts:
                out.append(func(X[s : s + chunk_size]))
                bar.update(len(out[-1]))
        else:
            parallel = Parallel(n_jobs=n_jobs, return_as="generator")
            for res in parallel(delayed(func)(X[s : s + chunk_size]) for s in starts):
                out.append(res)
                bar.update(len(res))
    finally:
        bar.close()
    return np.concatenate(out)
