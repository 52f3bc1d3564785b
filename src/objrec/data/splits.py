"""Deterministic, seeded, stratified splits.

Every class is split in the same proportion (largest-remainder rounding makes the totals
exact), the permutation comes from ``numpy.random.default_rng(seed)`` (PCG64: the same
numbers on every platform), and the result depends only on the labels and their order.
Loaders sort file paths before labelling, so file system order never matters.
"""

from __future__ import annotations

import numpy as np

from objrec.errors import DatasetError


def resolve_size(size: float | int, n: int, what: str) -> int:
    """A split size given as a fraction (float, 0 < f < 1) or a count (int), as a count of ``n``."""
    if isinstance(size, float | np.floating):
        if not 0 < size < 1:
            raise DatasetError(
                f"{what}={size}: a fraction must lie in (0, 1); give a count as an int"
            )
        return round(float(size) * n)
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        if not 0 <= size < n:
            raise DatasetError(
                f"{what}={size}: must be at least 0 and less than the {n} images available"
            )
        return int(size)
    raise DatasetError(f"{what} must be a fraction in (0, 1) or a count, got {size!r}")


def stratified_indices(y: np.ndarray, n_take: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(y)-1`` into (rest, taken) with ``len(taken) == n_take``.

    Each class contributes ``n_take * n_class / N`` images (rounded by largest remainder,
    ties broken at random by the seed). Both outputs are sorted int64 arrays.
    """
    y = np.asarray(y)
    n = len(y)
    if not 0 <= n_take <= n:
        raise DatasetError(f"cannot take {n_take} of {n} images")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    ideal = counts * (n_take / n) if n else counts.astype(float)
    take = np.floor(ideal).astype(np.int64)
    remainder = ideal - take
    short = n_take - int(take.sum())
    tiebreak = rng.random(len(classes))  # equal remainders: a seeded, not a fixed, choice
    if short > 0:
        order = np.lexsort((tiebreak, -remainder))
        take[order[:short]] += 1
    taken = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        taken.append(members[rng.permutation(len(members))[: take[c]]])
    taken_idx = np.sort(np.concatenate(taken)) if taken else np.empty(0, np.int64)
    mask = np.ones(n, bool)
    mask[taken_idx] = False
    return np.flatnonzero(mask).astype(np.int64), taken_idx.astype(np.int64)


def train_val_test_indices(
    y: np.ndarray, *, val_size: float | int = 0.15, test_size: float | int = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train / val / test positions for one labelled pool (default 70/15/15).

    Sizes are fractions of the whole pool or counts. Test is carved first, then val from
    what remains, each with its own seeded stream, so changing ``val_size`` leaves the test
    split unchanged.
    """
    n = len(y)
    n_test = resolve_size(test_size, n, "test_size")
    n_val = resolve_size(val_size, n, "val_size")
    if n_test + n_val >= n:
        raise DatasetError(
            f"val_size + test_size take {n_val + n_test} of {n} images, leaving none to train on"
        )
    rest, test = stratified_indices(y, n_test, seed)
    rest_pos, val_pos = stratified_indices(np.asarray(y)[rest], n_val, seed + 1)
    return rest[rest_pos], rest[val_pos], test


def train_val_indices(
    y: np.ndarray, *, val_size: float | int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / val positions inside an official training split."""
    n_val = resolve_size(val_size, len(y), "val_size")
    if n_val >= len(y):
        raise DatasetError(f"val_size={val_size} leaves no training images of {len(y)}")
    return stratified_indices(y, n_val, seed + 1)
