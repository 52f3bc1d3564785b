"""Image folders: ``root/<class>/<image>`` or pre-split ``root/{train,val,test}/<class>/...``.

Any common raster format (PNG, JPEG, BMP, PGM/PPM, GIF, TIFF, WebP, ...). Every image is
decoded by :mod:`objrec.data.images` (EXIF orientation, transparency on black, 16-bit and
float scaling, one resize filter, the ``fit`` aspect policy) to one
:class:`~objrec.data.images.ImageSpec`: the given ``size``, else a working size picked
from the images (median height and width, longest side at most 64), and the given
``color``, else grey when every image is grey. Files are decoded in parallel worker
processes; the decoded arrays are cached in the user cache as ``.npz``, keyed by every
file's path, modification time and size plus the options, so loading the same folder
again takes a fraction of a second. Unreadable files are skipped and listed in one
:class:`DatasetWarning`; an empty class folder or a root without class folders is a
:class:`~objrec.errors.DatasetError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from objrec.data.dataset import Dataset, Split, from_official, from_pool, take
from objrec.data.images import (
    MAX_PIXELS,
    WORKING_SIZE_CAP,
    ImageSpec,
    load_image,
    parse_color,
    parse_fit,
    parse_size,
)
from objrec.data.listing import (
    PARALLEL_MIN_FILES,
    SPLIT_NAMES,
    DatasetWarning,
    FolderPlan,
    check_classes_readable,
    list_records,
    map_files,
    n_workers,
    natural_key,
    plan_folder,
    scan_folder,
    warn_skipped,
)
from objrec.data.paths import user_cache_dir

__all__ = [
    "MAX_PIXELS",
    "PARALLEL_MIN_FILES",
    "SPLIT_NAMES",
    "DatasetWarning",
    "decode_files",
    "decode_image",
    "load_folder",
    "natural_key",
    "read_folder_pools",
    "scan_folder",
]

CACHE_VERSION = 2

#: one image file as uint8 (H, W) or (H, W, 3): ``decode_image(path, color, size, max_pixels)``
decode_image = load_image


# ----------------------------------------------------------------------------- decoding


def decode_files(
    paths: Sequence,
    spec: ImageSpec,
    *,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Decode ``paths`` to ``spec`` (in parallel processes for many files).

    Returns one entry per path: the uint8 image ``spec.shape`` (or None) and the error
    text (or None). Raises :class:`DatasetError` for an image over ``max_pixels``.
    """
    fn = functools.partial(load_image, spec=spec, max_pixels=max_pixels)
    n = len(paths)
    parallel_chunk = max(64, min(1024, n // (n_workers(workers) * 8) + 1))
    return map_files(
        fn,
        paths,
        chunk=(256, parallel_chunk),
        desc="decoding images",
        workers=workers,
        progress=progress,
    )


# ----------------------------------------------------------------------------- cache


def cache_key(root: Path, files: Sequence[tuple[str, str, int, int]], options: dict) -> str:
    """SHA-256 over the loader version, the options and each file's path, mtime and size."""
    h = hashlib.sha256()
    h.update(
        f"objrec-folder-cache v{CACHE_VERSION} {sorted(options.items())!r} {root.resolve()}\n".encode(
            errors="surrogateescape"
        )
    )  # file names that are not UTF-8 reach Python as lone surrogates: kept as their bytes
    h.update("\n".join(f"{p}\0{m}\0{n}" for _, p, m, n in files).encode(errors="surrogateescape"))
    return h.hexdigest()[:32]


def _cache_path(key: str) -> Path:
    return user_cache_dir() / "folders" / f"{key}.npz"


def _save_cache(
    path: Path, pools: dict, classes: list[str], skipped: list[tuple[str, str]], spec, note
) -> None:
    arrays = {"classes": np.array(classes, dtype=str)}
    for split, (X, y) in pools.items():
        arrays[f"{split}_X"] = X
        arrays[f"{split}_y"] = y
    arrays["skipped_path"] = np.array([s[0] for s in skipped], dtype=str)
    arrays["skipped_why"] = np.array([s[1] for s in skipped], dtype=str)
    arrays["image_spec"] = np.array(json.dumps(spec.to_dict()))
    arrays["image_note"] = np.array(note)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cache(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"]]
            splits = sorted({k.rsplit("_", 1)[0] for k in z.files if k.endswith("_X")})
            pools = {s: (z[f"{s}_X"], z[f"{s}_y"].astype(np.int64)) for s in splits}
            skipped = list(
                zip(map(str, z["skipped_path"]), map(str, z["skipped_why"]), strict=True)
            )
            spec = ImageSpec.from_dict(json.loads(str(z["image_spec"])))
            note = str(z["image_note"])
        return pools, classes, skipped, spec, note
    except Exception:  # a damaged cache file is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


# ----------------------------------------------------------------------------- loader


def read_folder_pools(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    fit: str | None = None,
    cap: int = WORKING_SIZE_CAP,
    workers: int | None = None,
    progress: bool = True,
    cache: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[
    dict[str, tuple[np.ndarray, np.ndarray]], list[str], list[tuple[str, str]], bool, ImageSpec, str
]:
    """Decode a folder dataset into ``{split: (X, y)}`` before any seeded splitting.

    Returns (pools, classes, skipped, from_cache, spec, note): ``split`` is ``"all"`` for
    a single pool, else ``"train"``/``"val"``/``"test"``; ``spec`` the
    :class:`ImageSpec` every image was decoded to; ``note`` how its size was chosen.
    """
    root = Path(root).expanduser()
    color, hw, fit = parse_color(color), parse_size(size), parse_fit(fit)
    listed = list_records(root)
    layout, classes, records = listed
    options = {"color": color, "size": hw, "fit": fit, "cap": cap, "max_pixels": max_pixels}
    key = cache_key(root, records, options) if cache else None
    if key is not None and _cache_path(key).is_file():
        got = _load_cache(_cache_path(key))
        if got is not None and got[1] == classes:
            pools, _, skipped, spec, note = got
            warn_skipped(root, skipped)
            return pools, classes, skipped, True, spec, note

    plan: FolderPlan = plan_folder(
        root, color=color, size=hw, fit=fit, cap=cap, workers=workers, progress=progress,
        max_pixels=max_pixels, listed=listed,
    )  # fmt: skip
    spec = plan.spec
    decoded, errors = decode_files(
        [plan.paths[i] for i in plan.ok],
        spec,
        workers=workers,
        progress=progress,
        max_pixels=max_pixels,
    )
    images: dict[int, np.ndarray] = {}
    skipped = list(plan.skipped)
    for i, im, err in zip(plan.ok, decoded, errors, strict=True):
        if im is None:
            skipped.append((plan.paths[i], err))
        else:
            images[i] = im
    order = {p: k for k, p in enumerate(plan.paths)}
    skipped.sort(key=lambda s: order[s[0]])
    ok = sorted(images)
    check_classes_readable(root, plan.groups, ok, len(skipped))
    pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in layout:
        idx = [i for i in ok if plan.split_of(i) == s]
        X = np.stack([images[i] for i in idx]) if idx else np.empty((0, *spec.shape), np.uint8)
        pools[s] = (X, plan.labels[idx] if idx else np.empty(0, np.int64))
    if key is not None:
        try:
            _save_cache(_cache_path(key), pools, classes, skipped, spec, plan.note)
        except OSError as e:
            warnings.warn(
                f"could not write the image cache ({e}); loading will not be faster next time",
                DatasetWarning,
                stacklevel=2,
            )
    warn_skipped(root, skipped)
    return pools, classes, skipped, False, spec, plan.note


def load_folder(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    fit: str | None = None,
    cap: int = WORKING_SIZE_CAP,
    seed: int = 0,
    val_size: float | int | None = None,
    test_size: float | int | None = None,
    workers: int | None = None,
    progress: bool = True,
    cache: bool = True,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
    stream: bool = False,
) -> Dataset:
    """Load an image folder as a :class:`Dataset`.

    Parameters
    ----------
    root : ``root/<class>/<image>`` (split seeded and stratified, default 70/15/15) or
        ``root/{train,val,test}/<class>/<image>`` (``val`` optional: carved from train,
        a tenth by default; ``test`` optional: carved from train, 15% by default).
    color : ``"grey"``, ``"rgb"`` or None (grey if every image is grey, else RGB).
    size : (height, width) or int; None: the working size picked from the images
        (:func:`objrec.data.images.working_size`: median height and width, scaled down
        until the longer side is at most ``cap``). Images of any, mixed, sizes load.
    fit : aspect policy of the resize, ``"squash"`` (default), ``"crop"`` or ``"pad"``.
    cap : longest side of the working size picked when ``size`` is None.
    workers : decoding processes (default: one per available CPU).
    cache : reuse / write the decoded arrays in the user cache.
    max_pixels : larger images are refused with a :class:`DatasetError`.
    name : dataset name (default: the folder's name).
    stream : keep the images on disk: the splits hold :class:`objrec.data.lazy.ImageFiles`
        (decoded on access, e.g. by DataLoader workers while training) instead of arrays.
        Only file headers are read now; the splits are the same as in memory.

    The returned dataset's ``image`` is the :class:`ImageSpec` of its images and
    ``image_note`` says how the working size was chosen ("" when ``size`` was given).
    """
    root = Path(root).expanduser()
    if stream:
        from objrec.data.lazy import list_folder_pools

        pools, classes, skipped, spec, note = list_folder_pools(
            root, color=color, size=size, fit=fit, cap=cap, workers=workers, progress=progress,
            max_pixels=max_pixels,
        )  # fmt: skip
    else:
        pools, classes, skipped, _, spec, note = read_folder_pools(
            root,
            color=color,
            size=size,
            fit=fit,
            cap=cap,
            workers=workers,
            progress=progress,
            cache=cache,
            max_pixels=max_pixels,
        )
    name = name or root.resolve().name
    source = str(root.resolve())
    if "all" in pools:
        X, y = pools["all"]
        ds = from_pool(
            name,
            classes,
            X,
            y,
            source=source,
            seed=seed,
            val_size=val_size,
            test_size=test_size,
            skipped=skipped,
        )
        ds.image, ds.image_note = spec, note
        return ds
    Xtr, ytr = pools["train"]
    if "test" not in pools:
        from objrec.data.splits import train_val_indices

        rest, te = train_val_indices(
            ytr, val_size=0.15 if test_size is None else test_size, seed=seed + 100
        )
        pools["test"] = (take(Xtr, te), ytr[te])
        Xtr, ytr = take(Xtr, rest), ytr[rest]
        official = False
    else:
        official = True
    Xte, yte = pools["test"]
    if "val" in pools:
        ds = Dataset(
            name,
            classes,
            Split(Xtr, ytr),
            Split(*pools["val"]),
            Split(Xte, yte),
            source=source,
            official_test=official,
            skipped=skipped,
        )
    else:
        ds = from_official(
            name,
            classes,
            Xtr,
            ytr,
            Xte,
            yte,
            source=source,
            seed=seed,
            val_size=val_size,
            skipped=skipped,
        )
        ds.official_test = official
    ds.image, ds.image_note = spec, note
    return ds
