"""Image folders read lazily: a list of files that decodes only the images asked for.

    >>> ds = load_dataset("photos/", size=64, stream=True)
    >>> ds.train.X                      # ImageFiles(n=8400, shape=(64, 64, 3))
    >>> ds.train.X[[0, 5, 9]].shape     # (3, 64, 64, 3) uint8, decoded now

:class:`ImageFiles` stands where a uint8 array would: ``len``, ``shape`` (N, H, W[, 3]),
``dtype`` uint8, and indexing with an int, a slice or an index array returns the decoded
pixels, identical to what :func:`objrec.data.load_folder` holds in memory (both call
:func:`objrec.data.images.load_image` with the folder's one
:class:`~objrec.data.images.ImageSpec`; mixed sizes are resized to it). ``subset(idx)`` selects files without decoding;
``np.asarray(files)`` decodes everything.

Unreadable files. When the folder is listed, every file's header is opened (Pillow reads a
few hundred bytes; no pixels are decoded), so empty files and non-images are found up front and skipped with one
:class:`~objrec.data.listing.DatasetWarning`, exactly as the in-memory loader skips them,
and the splits are the same. A file whose header is fine but whose pixel data is broken
(a truncated download) is only found when it is decoded: training
(:class:`objrec.training.streaming.StreamingLoader`) leaves it out of its batch and warns
once, naming the file, so a long run goes on; prediction needs an answer for every image
and raises :class:`~objrec.errors.DatasetError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from objrec.data.images import (
    MAX_PIXELS,
    WORKING_SIZE_CAP,
    ImageSpec,
    load_image,
)
from objrec.data.listing import DatasetWarning, plan_folder, reason, warn_skipped
from objrec.errors import DatasetError


class ImageFiles:
    """Labelled image files decoded on access to uint8 (H, W) or (H, W, 3).

    Parameters
    ----------
    paths : N file paths
    labels : int64 (N,) class indices
    image_shape : (H, W) or (H, W, 3): the shape every decoded image has
    spec : the :class:`ImageSpec` images are decoded to (default: squash to ``image_shape``)
    fit : aspect policy when ``spec`` is not given
    max_pixels : larger images are refused
    color, resize : ignored (kept for callers of earlier versions; ``spec`` says it all)
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        paths: Sequence[str],
        labels,
        image_shape: tuple[int, ...],
        *,
        spec: ImageSpec | None = None,
        fit: str | None = None,
        max_pixels: int = MAX_PIXELS,
        color: str | None = None,
        resize: tuple[int, int] | None = None,
    ):
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} files but {len(self.labels)} labels")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.spec = spec if spec is not None else ImageSpec.from_shape(self.image_shape, fit)
        if self.spec.shape != self.image_shape:
            raise ValueError(
                f"spec gives {self.spec.shape} images, image_shape is {self.image_shape}"
            )
        self.max_pixels = max_pixels

    # --------------------------------------------------------------- array-like
    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, H, W) or (N, H, W, 3)."""
        return (len(self), *self.image_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.image_shape)

    def __repr__(self) -> str:
        return f"ImageFiles(n={len(self)}, shape={self.image_shape})"

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 ``image_shape``; :class:`~objrec.errors.InputError` if unreadable."""
        return load_image(self.paths[i], spec=self.spec, max_pixels=self.max_pixels)

    def read(
        self, indices, *, skip_errors: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        """Decode the images at ``indices``.

        Returns ``(images uint8 (B, H, W[, 3]), kept int64 (B,), failed)``: ``kept`` are the
        positions in ``indices`` that decoded, ``failed`` lists (path, reason) of the others.
        With ``skip_errors=False`` a failure raises :class:`DatasetError` instead.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(indices), *self.image_shape), np.uint8)
        kept, failed = [], []
        for j, i in enumerate(indices):
            try:
                out[len(kept)] = self.decode(int(i))
            except DatasetError:
                raise
            except Exception as e:  # any decoder failure means "unreadable"
                why = reason(e)
                if not skip_errors:
                    raise DatasetError(
                        f"{self.paths[i]}: could not be decoded ({why}); its header was readable "
                        "when the folder was listed, its pixel data is not. Replace or remove "
                        "the file"
                    ) from e
                failed.append((str(self.paths[i]), why))
                continue
            kept.append(j)
        return out[: len(kept)], np.asarray(kept, dtype=np.int64), failed

    def __getitem__(self, key) -> np.ndarray:
        """``files[i]`` -> (H, W[, 3]); ``files[slice or index array]`` -> (B, H, W[, 3]) uint8."""
        if isinstance(key, int | np.integer):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} out of range for {n} images")
            return self.read([int(key) % n])[0][0]
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.read(np.arange(len(self))[key])[0]

    def subset(self, indices) -> ImageFiles:
        """The files at ``indices`` (int array or boolean mask), nothing decoded."""
        return ImageFiles(
            self.paths[indices],
            self.labels[indices],
            self.image_shape,
            spec=self.spec,
            max_pixels=self.max_pixels,
        )

    def chunks(self, batch_size: int | None = None):
        """Yield decoded uint8 batches (B, H, W[, 3]) in order, unreadable files skipped."""
        batch_size = batch_size or chunk_size(self.image_shape)
        for start in range(0, len(self), batch_size):
            images, _, failed = self.read(
                np.arange(start, min(start + batch_size, len(self))), skip_errors=True
            )
            warn_failed(failed)
            yield images

    def load(self) -> np.ndarray:
        """Every image decoded into memory, uint8 (N, H, W[, 3]) (raises on unreadable files)."""
        return self.read(np.arange(len(self)))[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        X = self.load()
        return X if dtype is None else X.astype(dtype)


def is_lazy(X) -> bool:
    """True for an :class:`ImageFiles` (or anything else with its ``read``/``subset`` methods)."""
    return hasattr(X, "read") and hasattr(X, "subset") and hasattr(X, "image_shape")


def chunk_size(image_shape: Sequence[int], budget_bytes: int = 64 << 20, cap: int = 4096) -> int:
    """Images per decoded batch that keep one batch under ``budget_bytes`` (at most ``cap``)."""
    return max(1, min(cap, budget_bytes // max(1, int(np.prod(image_shape)))))


def warn_failed(failed: Sequence[tuple[str, str]], shown: int = 5) -> None:
    """One :class:`DatasetWarning` for files that could not be decoded while streaming."""
    if not failed:
        return
    lines = "; ".join(f"{p} ({why})" for p, why in failed[:shown])
    more = f", and {len(failed) - shown} more" if len(failed) > shown else ""
    warnings.warn(
        f"skipped {len(failed)} image(s) whose pixel data could not be decoded: {lines}{more}. "
        "They are left out of their batches; replace or remove the files",
        DatasetWarning,
        stacklevel=3,
    )


# ----------------------------------------------------------------------------- listing


def list_folder_pools(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    fit: str | None = None,
    cap: int = WORKING_SIZE_CAP,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[
    dict[str, tuple[ImageFiles, np.ndarray]], list[str], list[tuple[str, str]], ImageSpec, str
]:
    """The lazy counterpart of :func:`objrec.data.folders.read_folder_pools`.

    Returns ``({split: (ImageFiles, labels int64 (n,))}, classes, skipped, spec, note)``,
    with the same files, order, labels, image spec and errors as the in-memory loader,
    from headers only.
    """
    plan = plan_folder(
        root, color=color, size=size, fit=fit, cap=cap, workers=workers, progress=progress,
        max_pixels=max_pixels,
    )  # fmt: skip
    paths = np.asarray(plan.paths, dtype=object)
    pools = {}
    for s in plan.layout:
        idx = np.array([i for i in plan.ok if plan.split_of(i) == s], dtype=np.int64)
        files = ImageFiles(
            paths[idx], plan.labels[idx], plan.spec.shape, spec=plan.spec, max_pixels=max_pixels
        )
        pools[s] = (files, files.labels)
    warn_skipped(Path(plan.root), plan.skipped)
    return pools, plan.classes, plan.skipped, plan.spec, plan.note
