"""Listing an image folder before decoding it: files, classes, headers, the image spec.

Shared by the in-memory loader (:mod:`objrec.data.folders`) and the streaming one
(:mod:`objrec.data.lazy`), so both see the same files, skip the same unreadable ones and
decode every image with the same :class:`~objrec.data.images.ImageSpec`.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from objrec.cpu import usable_cores
from objrec.data.images import (
    MAX_PIXELS,
    WORKING_SIZE_CAP,
    ImageDecodeError,
    ImageSpec,
    ImageTooLargeError,
    describe_working_size,
    parse_color,
    parse_fit,
    parse_size,
    probe,
    working_size,
)
from objrec.errors import DatasetError

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
#: below this many files decoding runs in the calling process (a pool costs more)
PARALLEL_MIN_FILES = 2_000

Record = tuple[str, str, int, int]  # (relative path, path, mtime_ns, size in bytes)


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped (the message lists what and why)."""


def natural_key(s: str) -> list:
    """Sort key that orders ``s2`` before ``s10`` (digits compared as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def _files_under(folder: Path) -> list[Record]:
    """Every visible file below ``folder`` (recursively) as (relative path, path, mtime_ns,
    size), sorted by relative path. Uses ``os.scandir`` (one stat per file, no pathlib)."""
    out = []
    stack = [(str(folder), "", frozenset())]
    while stack:
        path, rel, above = stack.pop()
        st = os.stat(path)
        here = above | {(st.st_dev, st.st_ino)}
        with os.scandir(path) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                r = f"{rel}{e.name}"
                if e.is_dir():
                    t = e.stat()
                    if (t.st_dev, t.st_ino) in here:  # a link to this folder or one above it
                        raise DatasetError(
                            f"{e.path}: links back to a folder that contains it (a loop); "
                            "remove the link"
                        )
                    stack.append((e.path, r + "/", here))
                elif e.is_file():
                    st = e.stat()
                    out.append((r, e.path, st.st_mtime_ns, st.st_size))
    out.sort()
    return out


def scan_folder(root: str | os.PathLike) -> tuple[dict[str, dict[str, list[Record]]], list[str]]:
    """Find the images of a folder dataset without reading them.

    Returns ``({split: {class: [(relpath, path, mtime_ns, size)]}}, classes)`` where
    split is ``"all"`` for a single pool or any of ``"train"``, ``"val"``, ``"test"`` for
    a pre-split root, and ``classes`` is the naturally sorted union of class names.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    subdirs = _visible_dirs(root)
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_NAMES}
    if "train" in split_dirs and len(split_dirs) >= 2:
        layout = {s: _visible_dirs(d) for s, d in split_dirs.items()}
    else:
        layout = {"all": subdirs}
    if not any(layout.values()):
        loose = [p.name for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        hint = (
            f" (it holds {len(loose)} loose files: sort them into one folder per class)"
            if loose
            else ""
        )
        raise DatasetError(
            f"{root}: no class folders found{hint}; expected root/<class>/<image> or "
            "root/{train,val,test}/<class>/<image>"
        )
    out: dict[str, dict[str, list[Record]]] = {}
    for split, class_dirs in layout.items():
        out[split] = {}
        for d in class_dirs:
            files = _files_under(d)
            if not files:
                raise DatasetError(
                    f"{d}: class folder '{d.name}' holds no images; add images or remove the folder"
                )
            out[split][d.name] = files
    classes = sorted({c for s in out.values() for c in s}, key=natural_key)
    return out, classes


def n_workers(workers: int | None) -> int:
    """Decoding processes: ``workers`` if given, else one per usable core."""
    if workers is not None:
        return max(1, int(workers))
    return usable_cores()


def reason(e: BaseException) -> str:
    """Why a file could not be read, without its path (for the skipped-files summary)."""
    if isinstance(e, ImageDecodeError):
        return e.reason
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def too_large(e: ImageTooLargeError) -> DatasetError:
    """An image over the pixel limit stops a folder load (it is not skipped)."""
    return DatasetError(str(e))


# ----------------------------------------------------------------------------- headers


def _map_chunk(fn, paths):
    """Worker: ``fn(path)`` for many files; returns per-file results (None where the file
    is unreadable), per-file error text, and a fatal error (an image over the pixel limit,
    which stops the whole load)."""
    results, errors = [], []
    for p in paths:
        try:
            results.append(fn(p))
            errors.append(None)
        except ImageTooLargeError as e:
            return results, errors, str(e)
        except Exception as e:  # any decoder failure means "unreadable"
            results.append(None)
            errors.append(reason(e))
    return results, errors, None


def map_files(
    fn,
    paths: Sequence[str],
    *,
    chunk: tuple[int, int],
    desc: str,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[list, list[str | None]]:
    """``fn(path)`` over many files, in chunks, in parallel processes for many files.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one);
    ``chunk`` is the (serial, parallel) number of files per chunk. Returns one entry per
    path: ``fn``'s result (or None) and the error text (or None). Raises
    :class:`DatasetError` for an image over the pixel limit.
    """
    from objrec.progress import progress as progress_bar

    paths = [str(p) for p in paths]
    workers = n_workers(workers)
    serial = workers == 1 or len(paths) < PARALLEL_MIN_FILES
    size = chunk[0] if serial else chunk[1]
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    out, errors = [], []
    bar = progress_bar(total=len(paths), desc=desc, unit="img", enabled=progress)
    with bar:
        pool = None
        if serial:
            results = (_map_chunk(fn, c) for c in chunks)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_map_chunk, [fn] * len(chunks), chunks)
        try:
            for res, errs, fatal in results:
                if fatal:
                    raise DatasetError(fatal)
                out += res
                errors += errs
                bar.update(len(res))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return out, errors


def probe_files(
    paths: Sequence[str],
    *,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[list[tuple[int, int, str] | None], list[str | None]]:
    """:func:`objrec.data.images.probe` over many files (in parallel processes for many).

    Returns per file ``(height, width, "L"|"RGB")`` or None, and the error text or None.
    Raises :class:`DatasetError` for an image over ``max_pixels``.
    """
    fn = functools.partial(probe, max_pixels=max_pixels)
    return map_files(
        fn, paths, chunk=(512, 2048), desc="checking images", workers=workers, progress=progress
    )


# ----------------------------------------------------------------------------- checks


def check_classes_readable(root, groups: list[tuple[str, str]], ok: list[int], n_skipped: int):
    """Refuse a folder where a class (of a split) has no readable image.

    ``groups[i]`` is file i's (split, class); ``ok`` the indices of the readable files.
    """
    readable = Counter(groups[i] for i in ok)
    empty = sorted(
        {c if s == "all" else f"{s}/{c}" for s, c in groups if readable[(s, c)] == 0},
        key=natural_key,
    )
    if empty:
        raise DatasetError(
            f"{root}: class folder(s) {', '.join(empty)} hold no readable images "
            f"({n_skipped} file(s) could not be read); add images or remove the folder"
        )


def summarise_skipped(root: Path, skipped: list[tuple[str, str]], shown: int = 5) -> str:
    lines = [
        f"{Path(p).relative_to(root) if Path(p).is_relative_to(root) else p} ({why})"
        for p, why in skipped[:shown]
    ]
    more = f", and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return (
        f"{root}: skipped {len(skipped)} unreadable or non-image file(s): "
        + "; ".join(lines)
        + more
    )


def warn_skipped(root: Path, skipped: list[tuple[str, str]]) -> None:
    """One :class:`DatasetWarning` listing the skipped files (nothing if none)."""
    if skipped:
        warnings.warn(summarise_skipped(root, skipped), DatasetWarning, stacklevel=3)


# ----------------------------------------------------------------------------- the plan


@dataclass
class FolderPlan:
    """A listed folder: which files, their classes and splits, and how to decode them.

    ``paths[i]``, ``labels[i]`` (int64) and ``groups[i]`` = (split, class) describe file i;
    ``ok`` are the files whose header was readable; ``spec`` is what every image is decoded
    to; ``note`` says how the size was chosen ("" when ``size`` was given).
    """

    root: Path
    layout: dict[str, dict[str, list[Record]]]
    classes: list[str]
    paths: list[str]
    labels: np.ndarray
    groups: list[tuple[str, str]]
    ok: list[int]
    skipped: list[tuple[str, str]]
    spec: ImageSpec
    note: str = ""
    records: list[Record] = field(default_factory=list)

    def split_of(self, i: int) -> str:
        return self.groups[i][0]


def list_records(root: Path):
    """(layout, classes, records) of ``root`` (see :func:`scan_folder`)."""
    layout, classes = scan_folder(root)
    records = [f for per_class in layout.values() for files in per_class.values() for f in files]
    return layout, classes, records


def plan_folder(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    fit: str | None = None,
    cap: int = WORKING_SIZE_CAP,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
    listed=None,
) -> FolderPlan:
    """List ``root`` and read every file's header: the files to decode and their spec.

    Colour: ``color``, else grey when every readable image is grey, RGB otherwise. Size:
    ``size``, else :func:`~objrec.data.images.working_size` of the images' (upright) sizes
    under ``cap``. ``listed``: the output of :func:`list_records` when already at hand.
    """
    root = Path(root).expanduser()
    color, hw, fit = parse_color(color), parse_size(size), parse_fit(fit)
    layout, classes, records = listed or list_records(root)
    class_index = {c: i for i, c in enumerate(classes)}
    groups = [(s, c) for s, per_class in layout.items() for c, files in per_class.items() for _ in files]  # fmt: skip
    paths = [f[1] for f in records]
    labels = np.array([class_index[c] for _, c in groups], dtype=np.int64)
    shapes, errors = probe_files(paths, workers=workers, progress=progress, max_pixels=max_pixels)
    skipped = [(p, e) for p, e in zip(paths, errors, strict=True) if e is not None]
    ok = [i for i, sh in enumerate(shapes) if sh is not None]
    check_classes_readable(root, groups, ok, len(skipped))
    if color is None:
        color = "rgb" if any(shapes[i][2] == "RGB" for i in ok) else "grey"
    note = ""
    if hw is None:
        sizes = [shapes[i][:2] for i in ok]
        hw = working_size(sizes, cap)
        note = describe_working_size(sizes, hw, cap)
    return FolderPlan(
        root=root,
        layout=layout,
        classes=classes,
        paths=paths,
        labels=labels,
        groups=groups,
        ok=ok,
        skipped=skipped,
        spec=ImageSpec(size=hw, color=color, fit=fit),
        note=note,
        records=records,
    )
