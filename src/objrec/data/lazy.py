"""Image folders read lazily: a list of files that decodes only the images asked for.

    >>> ds = load_dataset("photos/", size=64, stream=True)
    >>> ds.train.X                      # ImageFiles(n=8400, shape=(64, 64, 3))
    >>> ds.train.X[[0, 5, 9]].shape     # (3, 64, 64, 3) uint8, decoded now

:class:`ImageFiles` stands where a uint8 array would: ``len``, ``shape`` (N, H, W[, 3]),
``dtype`` uint8, and indexing with an int, a slice or an index array returns the decoded
pixels, identical to what :func:`objrec.data.load_folder` holds in memory (both call
:func:`objrec.data.folders.decode_image`). ``subset(idx)`` selects files without decoding;
``np.asarray(files)`` decodes everything.

Unreadable files. When the folder is listed, every file's header is opened (Pillow reads a
few hundred bytes; no pixels are decoded), so empty files, non-images and images of the
wrong size are found up front and skipped with one
:class:`~objrec.data.folders.DatasetWarning`, exactly as the in-memory loader skips them,
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from objrec.data.folders import (
    _TOO_BIG,
    MAX_PIXELS,
    PARALLEL_MIN_FILES,
    DatasetWarning,
    _n_workers,
    _warn_skipped,
    check_classes_readable,
    check_one_size,
    decode_image,
    decoded_mode,
    open_image,
    scan_folder,
)
from objrec.data.transforms import parse_color, parse_size
from objrec.errors import DatasetError


class ImageFiles:
    """Labelled image files decoded on access to uint8 (H, W) or (H, W, 3).

    Parameters
    ----------
    paths : N file paths
    labels : int64 (N,) class indices
    image_shape : (H, W) or (H, W, 3): the shape every decoded image has
    color : the ``color`` option passed to :func:`decode_image` ("grey", "rgb" or None)
    resize : (height, width) passed to :func:`decode_image`, or None (no resizing)
    max_pixels : larger images are refused
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        paths: Sequence[str],
        labels,
        image_shape: tuple[int, ...],
        *,
        color: str | None = None,
        resize: tuple[int, int] | None = None,
        max_pixels: int = MAX_PIXELS,
    ):
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} files but {len(self.labels)} labels")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.color, self.resize, self.max_pixels = color, resize, max_pixels

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
        """Image ``i`` as uint8 (H, W[, 3]); ``OSError``/``ValueError`` if unreadable."""
        path = self.paths[i]
        img = decode_image(path, self.color, self.resize, self.max_pixels)
        if len(self.image_shape) == 3 and img.ndim == 2:  # a grey image in an RGB set
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.shape != self.image_shape:
            raise ValueError(
                f"decoded as {img.shape}, expected {self.image_shape} (changed since listing?)"
            )
        return img

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
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
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
            color=self.color,
            resize=self.resize,
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


def probe_image(
    path: str, color: str | None, size: tuple[int, int] | None, max_pixels: int = MAX_PIXELS
) -> tuple[int, int, str]:
    """(height, width, mode) that :func:`decode_image` would give, from the file's header.

    ``mode`` is "L" or "RGB"; height and width are ``size`` when given. Raises as
    :func:`decode_image` does for unreadable files and images above ``max_pixels``.
    """
    with open_image(path) as img:
        w, h = img.size
        if w * h > max_pixels:
            raise DatasetError(_TOO_BIG.format(path=path, w=w, h=h, limit=max_pixels))
        mode = decoded_mode(img, color)
    hh, ww = size if size is not None else (h, w)
    return int(hh), int(ww), mode


def _probe_chunk(paths, color, size, max_pixels):
    """Worker: probe many files; returns per-file (h, w, mode) or None, errors, fatal error."""
    shapes, errors = [], []
    for p in paths:
        try:
            shapes.append(probe_image(p, color, size, max_pixels))
            errors.append(None)
        except DatasetError as e:
            return shapes, errors, str(e)
        except Exception as e:
            shapes.append(None)
            errors.append(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    return shapes, errors, None


def probe_files(
    paths: Sequence[str],
    *,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[list[tuple[int, int, str] | None], list[str | None]]:
    """:func:`probe_image` over many files (in parallel processes for many files)."""
    from tqdm.auto import tqdm

    n_workers = _n_workers(workers)
    chunk = 512 if n_workers == 1 or len(paths) < PARALLEL_MIN_FILES else 2048
    chunks = [list(paths[i : i + chunk]) for i in range(0, len(paths), chunk)]
    shapes, errors = [], []
    bar = tqdm(
        total=len(paths), desc="checking images", unit="img", disable=not progress, leave=False
    )
    with bar:
        if n_workers == 1 or len(paths) < PARALLEL_MIN_FILES:
            results = (_probe_chunk(c, color, size, max_pixels) for c in chunks)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=n_workers)
            k = len(chunks)
            results = pool.map(_probe_chunk, chunks, [color] * k, [size] * k, [max_pixels] * k)
        try:
            for sh, errs, fatal in results:
                if fatal:
                    raise DatasetError(fatal)
                shapes += sh
                errors += errs
                bar.update(len(sh))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return shapes, errors


def list_folder_pools(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[dict[str, tuple[ImageFiles, np.ndarray]], list[str], list[tuple[str, str]]]:
    """The lazy counterpart of :func:`objrec.data.folders.read_folder_pools`.

    Returns ``({split: (ImageFiles, labels int64 (n,))}, classes, skipped)``, with the same
    files, order, labels, colour mode and errors as the in-memory loader, from headers only.
    """
    root = Path(root).expanduser()
    color = parse_color(color)
    hw = parse_size(size)
    layout, classes = scan_folder(root)
    class_index = {c: i for i, c in enumerate(classes)}
    groups = [(s, c) for s, per_class in layout.items() for c, files in per_class.items() for _ in files]  # fmt: skip
    all_files = [f[1] for per_class in layout.values() for files in per_class.values() for f in files]  # fmt: skip
    labels = np.array([class_index[c] for _, c in groups], dtype=np.int64)
    shapes, errors = probe_files(
        all_files, color=color, size=hw, workers=workers, progress=progress, max_pixels=max_pixels
    )
    skipped = [(p, e) for p, e in zip(all_files, errors, strict=True) if e is not None]
    ok = [i for i, sh in enumerate(shapes) if sh is not None]
    check_classes_readable(root, groups, ok, len(skipped))
    # one mode for the whole set, as the in-memory loader: RGB if any image is RGB
    rgb = any(shapes[i][2] == "RGB" for i in ok)
    check_one_size(root, all_files, {i: tuple(shapes[i][:2]) for i in ok})
    hw_common = tuple(shapes[ok[0]][:2])
    image_shape = (*hw_common, 3) if rgb else hw_common
    paths = np.asarray(all_files, dtype=object)
    pools = {}
    for s in layout:
        idx = np.array([i for i in ok if groups[i][0] == s], dtype=np.int64)
        files = ImageFiles(
            paths[idx], labels[idx], image_shape, color=color, resize=hw, max_pixels=max_pixels
        )
        pools[s] = (files, files.labels)
    _warn_skipped(root, skipped)
    return pools, classes, skipped
