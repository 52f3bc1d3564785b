"""The dataset contract every loader returns: class names and train / val / test splits.

Images are uint8 arrays ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (RGB); labels are int64
``(N,)`` indices into ``Dataset.classes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from objrec.data.stats import channel_mean_std


@dataclass
class Split:
    """One split: images ``X`` uint8 (N, H, W[, 3]) and labels ``y`` int64 (N,)."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Images per class, int64 (n_classes,)."""
        return np.bincount(self.y, minlength=n_classes)


@dataclass
class Dataset:
    """A labelled image set with its three splits.

    ``source`` says where the files were found (a folder or file path, or "scikit-learn").
    ``official_test`` is True when the test split is the dataset's own (e.g. MNIST's 10,000
    test images), False when it was carved out by objrec's seeded stratified split.
    ``skipped`` lists files a folder loader could not read (path, reason).
    ``image`` is the :class:`~objrec.data.images.ImageSpec` image files were decoded to
    (None for sets stored as arrays: use :meth:`image_spec`); ``image_note`` says how a
    folder's working size was chosen ("" when given or fixed).
    """

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    source: str
    official_test: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    image: object = None  # ImageSpec | None (imported lazily: Pillow is not needed here)
    image_note: str = ""

    def image_spec(self):
        """The :class:`~objrec.data.images.ImageSpec` of the images: the folder loader's,
        else squash to the arrays' shape (what a model trained on them records)."""
        from objrec.data.images import ImageSpec

        return self.image if self.image is not None else ImageSpec.from_shape(self.image_shape)

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) or (H, W, 3) of one image."""
        return tuple(int(s) for s in self.train.X.shape[1:])

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the *training* split, in 0..1 units.

        Returns two float64 arrays of shape (C,), C = 1 for grey and 3 for RGB images.
        """
        X = self.train.X
        return channel_mean_std(X.chunks() if hasattr(X, "chunks") else X)

    def __repr__(self) -> str:
        sizes = "/".join(str(len(s)) for s in (self.train, self.val, self.test))
        return (
            f"Dataset(name={self.name!r}, classes={len(self.classes)}, train/val/test={sizes}, "
            f"shape={self.image_shape}, source={self.source!r})"
        )


def _labels(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


def take(X, idx: np.ndarray):
    """``X[idx]`` for arrays; for lazy image files (``objrec.data.lazy``) a subset, not decoded."""
    return X.subset(idx) if hasattr(X, "subset") else X[idx]


def from_pool(
    name: str,
    classes: list[str],
    X: np.ndarray,
    y: np.ndarray,
    *,
    source: str,
    seed: int = 0,
    val_size: float | int | None = None,
    test_size: float | int | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Dataset:
    """A Dataset from one labelled pool, split stratified train/val/test (default 70/15/15)."""
    from objrec.data.splits import train_val_test_indices

    y = _labels(y)
    tr, va, te = train_val_test_indices(
        y,
        val_size=0.15 if val_size is None else val_size,
        test_size=0.15 if test_size is None else test_size,
        seed=seed,
    )
    return Dataset(
        name,
        list(classes),
        Split(take(X, tr), y[tr]),
        Split(take(X, va), y[va]),
        Split(take(X, te), y[te]),
        source=source,
        official_test=False,
        skipped=list(skipped or []),
    )


def default_val_size(n_train: int) -> int | float:
    """Validation carved from an official training split when the caller gives none.

    The reference workflow for the 60,000-image sets keeps 50,000 to train and 10,000 to
    validate; any other training split gives a tenth of itself to validation.
    """
    return 10_000 if n_train == 60_000 else 0.1


def from_official(
    name: str,
    classes: list[str],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    source: str,
    seed: int = 0,
    val_size: float | int | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Dataset:
    """A Dataset whose official test split stays untouched; val is carved from train."""
    from objrec.data.splits import train_val_indices

    y_train = _labels(y_train)
    tr, va = train_val_indices(
        y_train,
        val_size=default_val_size(len(y_train)) if val_size is None else val_size,
        seed=seed,
    )
    return Dataset(
        name,
        list(classes),
        Split(take(X_train, tr), y_train[tr]),
        Split(take(X_train, va), y_train[va]),
        Split(X_test if hasattr(X_test, "subset") else np.asarray(X_test), _labels(y_test)),
        source=source,
        official_test=True,
        skipped=list(skipped or []),
    )


def apply_options(ds: Dataset, color=None, size=None, fit=None) -> Dataset:
    """Convert every split to ``color`` ('grey'/'rgb') and ``size`` ((h, w) or int) with the
    aspect policy ``fit`` (squash, crop, pad); records the resulting image spec."""
    from objrec.data.images import ImageSpec, parse_fit

    fit = parse_fit(fit)
    if color is not None or size is not None:
        from objrec.data.transforms import convert

        for s in ds.splits.values():
            s.X = convert(s.X, color, size, fit)
    ds.image = ImageSpec.from_shape(ds.image_shape, fit)
    return ds
