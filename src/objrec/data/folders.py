"""Image folders: ``root/<class>/<image>`` or pre-split ``root/{train,val,test}/<class>/...``.

Any format Pillow reads (PNG, JPEG, BMP, PGM/PPM, GIF, TIFF, ...). Files are decoded in
parallel worker processes; the decoded arrays are cached in the user cache as ``.npz``,
keyed by every file's path, modification time and size plus the options, so loading the
same folder again takes a fraction of a second. Unreadable files are skipped and listed
in one :class:`DatasetWarning`; an empty class folder or a root without class folders is
a :class:`~objrec.errors.DatasetError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from objrec.cpu import usable_cores
from objrec.data.dataset import Dataset, Split, from_official, from_pool, take
from objrec.data.paths import user_cache_dir
from objrec.data.transforms import parse_color, parse_size, to_rgb
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
#: refuse images larger than this many pixels (decompression bombs, giant scans)
MAX_PIXELS = 64_000_000
#: below this many files decoding runs in the calling process (a pool costs more)
PARALLEL_MIN_FILES = 2_000
CACHE_VERSION = 1


_FORMAT_HINTS = {
    ".jpg": ("JPEG",),
    ".jpeg": ("JPEG",),
    ".png": ("PNG",),
    ".bmp": ("BMP",),
    ".pgm": ("PPM",),
    ".ppm": ("PPM",),
    ".pbm": ("PPM",),
    ".gif": ("GIF",),
    ".tif": ("TIFF",),
    ".tiff": ("TIFF",),
}


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


def _files_under(folder: Path) -> list[tuple[str, str, int, int]]:
    """Every visible file below ``folder`` (recursively) as (relative path, path, mtime_ns,
    size), sorted by relative path. Uses ``os.scandir`` (one stat per file, no pathlib)."""
    out = []
    stack = [(str(folder), "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                r = f"{rel}{e.name}"
                if e.is_dir():
                    stack.append((e.path, r + "/"))
                elif e.is_file():
                    st = e.stat()
                    out.append((r, e.path, st.st_mtime_ns, st.st_size))
    out.sort()
    return out


def scan_folder(
    root: str | os.PathLike,
) -> tuple[dict[str, dict[str, list[tuple[str, str, int, int]]]], list[str]]:
    """Find the images of a folder dataset without reading them.

    Returns ``({split: {class: [(relpath, path, mtime_ns, size)]}}, classes)`` where
    split is ``"all"`` for a
    single pool or any of ``"train"``, ``"val"``, ``"test"`` for a pre-split root, and
    ``classes`` is the naturally sorted union of class names.
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
    out: dict[str, dict[str, list[tuple[str, str, int, int]]]] = {}
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


# ----------------------------------------------------------------------------- decoding


_TOO_BIG = (
    "{path}: {w}x{h} pixels is more than the {limit:,} allowed (a decompression bomb or a "
    "very large scan); shrink the image or raise max_pixels"
)
_GREY_MODES = ("L", "1", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def open_image(path: str):
    """Open an image file with Pillow (reads the header only; pixels are decoded on use).

    Raises ``OSError``/``ValueError`` for unreadable files and :class:`DatasetError` for
    Pillow's decompression bomb error.
    """
    from PIL import Image

    hint = _FORMAT_HINTS.get(os.path.splitext(path)[1].lower())
    try:
        try:  # naming the format skips Pillow's trial of every plugin (1.5x faster on JPEG)
            return Image.open(path, formats=hint)
        except Image.UnidentifiedImageError:
            if hint is None:
                raise
            return Image.open(path)  # content does not match the extension
    except Image.DecompressionBombError as e:  # Pillow's own, far higher, limit
        raise DatasetError(f"{path}: {e}; shrink the image or raise max_pixels") from e


def decoded_mode(img, color: str | None) -> str:
    """The Pillow mode ("L" or "RGB") :func:`decode_image` gives an opened image.

    Needs only the header, except for palette images under ``color=None`` (decoded to see
    whether the palette colours in use are grey).
    """
    if color is not None:
        return "L" if color == "grey" else "RGB"
    if img.mode in _GREY_MODES:
        return "L"
    if img.mode == "P":
        rgb = np.asarray(img.convert("RGB"))
        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        return "L" if grey else "RGB"
    return "RGB"


def decode_image(
    path: str, color: str | None, size: tuple[int, int] | None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read one image file as uint8 (H, W) grey or (H, W, 3) RGB.

    ``color=None`` keeps grey images grey (palette images too, when their palette is
    grey) and turns everything else into RGB (alpha dropped). ``size`` = (height, width)
    resizes with Pillow's antialiased bilinear filter. Raises ``OSError``/``ValueError``
    for unreadable files and :class:`DatasetError` for images above ``max_pixels``.
    """
    from PIL import Image

    with open_image(path) as img:
        w, h = img.size
        if w * h > max_pixels:
            raise DatasetError(_TOO_BIG.format(path=path, w=w, h=h, limit=max_pixels))
        mode = decoded_mode(img, color)
        if img.mode.startswith("I;16") or img.mode == "I":
            arr = np.asarray(img, dtype=np.float64)
            peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
            img = Image.fromarray(np.clip(arr * (255.0 / peak), 0, 255).round().astype(np.uint8))
        if img.mode != mode:
            img = img.convert(mode)
        if size is not None and (img.height, img.width) != tuple(size):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _decode_chunk(
    paths: Sequence[str], color, size, max_pixels
) -> tuple[list[np.ndarray | None], list[str | None], str | None]:
    """Worker: decode many files; returns images, per-file error text and a fatal error."""
    images: list[np.ndarray | None] = []
    errors: list[str | None] = []
    for p in paths:
        try:
            images.append(decode_image(p, color, size, max_pixels))
            errors.append(None)
        except DatasetError as e:
            return images, errors, str(e)
        except Exception as e:  # any decoder failure means "unreadable"
            images.append(None)
            errors.append(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    return images, errors, None


def _n_workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    return usable_cores()


def decode_files(
    paths: Sequence[Path],
    *,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Decode ``paths`` (in parallel processes for many files).

    Returns one entry per path: the image (or None) and the error text (or None).
    """
    from tqdm.auto import tqdm

    strs = [str(p) for p in paths]
    n_workers = _n_workers(workers)
    images: list[np.ndarray | None] = []
    errors: list[str | None] = []
    bar = tqdm(
        total=len(strs), desc="decoding images", unit="img", disable=not progress, leave=False
    )
    with bar:
        if n_workers == 1 or len(strs) < PARALLEL_MIN_FILES:
            chunk = 256
            for i in range(0, len(strs), chunk):
                ims, errs, fatal = _decode_chunk(strs[i : i + chunk], color, size, max_pixels)
                if fatal:
                    raise DatasetError(fatal)
                images += ims
                errors += errs
                bar.update(len(ims))
        else:
            chunk = max(64, min(1024, len(strs) // (n_workers * 8) + 1))
            chunks = [strs[i : i + chunk] for i in range(0, len(strs), chunk)]
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                results = pool.map(
                    _decode_chunk,
                    chunks,
                    [color] * len(chunks),
                    [size] * len(chunks),
                    [max_pixels] * len(chunks),
                )
                for ims, errs, fatal in results:
                    if fatal:
                        pool.shutdown(cancel_futures=True)
                        raise DatasetError(fatal)
                    images += ims
                    errors += errs
                    bar.update(len(ims))
    return images, errors


# ----------------------------------------------------------------------------- cache


def cache_key(root: Path, files: Sequence[tuple[str, str, int, int]], options: dict) -> str:
    """SHA-256 over the loader version, the options and each file's path, mtime and size."""
    h = hashlib.sha256()
    h.update(
        f"objrec-folder-cache v{CACHE_VERSION} {sorted(options.items())!r} {root.resolve()}\n".encode()
    )
    h.update("\n".join(f"{p}\0{m}\0{n}" for _, p, m, n in files).encode())
    return h.hexdigest()[:32]


def _cache_path(key: str) -> Path:
    return user_cache_dir() / "folders" / f"{key}.npz"


def _save_cache(
    path: Path, pools: dict, classes: list[str], skipped: list[tuple[str, str]]
) -> None:
    arrays = {"classes": np.array(classes, dtype=str)}
    for split, (X, y) in pools.items():
        arrays[f"{split}_X"] = X
        arrays[f"{split}_y"] = y
    arrays["skipped_path"] = np.array([s[0] for s in skipped], dtype=str)
    arrays["skipped_why"] = np.array([s[1] for s in skipped], dtype=str)
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
        return pools, classes, skipped
    except Exception:  # a damaged cache file is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


# ----------------------------------------------------------------------------- loader


def _summarise_skipped(root: Path, skipped: list[tuple[str, str]], shown: int = 5) -> str:
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


def check_one_size(root, files: list, sizes: dict[int, tuple[int, int]]) -> None:
    """Refuse images of different sizes; ``sizes``: readable file index -> (H, W)."""
    counts = Counter(sizes.values())
    if len(counts) > 1:
        (common, n_common), *others = counts.most_common()
        odd = next(files[i] for i, hw in sizes.items() if hw != common)
        raise DatasetError(
            f"{root}: images have {len(counts)} different sizes ({n_common} are {common}, "
            f"e.g. {odd} is {others[0][0]}); pass size=(height, width) (--size HxW) to resize them"
        )


def read_folder_pools(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
    workers: int | None = None,
    progress: bool = True,
    cache: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], list[tuple[str, str]], bool]:
    """Decode a folder dataset into ``{split: (X, y)}`` before any seeded splitting.

    Returns (pools, classes, skipped, from_cache). ``split`` is ``"all"`` for a single
    pool, else ``"train"``/``"val"``/``"test"``.
    """
    root = Path(root).expanduser()
    color = parse_color(color)
    hw = parse_size(size)
    layout, classes = scan_folder(root)
    records = [f for per_class in layout.values() for files in per_class.values() for f in files]
    all_files = [f[1] for f in records]
    options = {"color": color, "size": hw, "max_pixels": max_pixels}
    key = cache_key(root, records, options) if cache else None
    if key is not None and _cache_path(key).is_file():
        got = _load_cache(_cache_path(key))
        if got is not None:
            pools, cached_classes, skipped = got
            if cached_classes == classes:
                _warn_skipped(root, skipped)
                return pools, classes, skipped, True

    class_index = {c: i for i, c in enumerate(classes)}
    labels = [
        class_index[c]
        for per_class in layout.values()
        for c, files in per_class.items()
        for _ in files
    ]
    split_of = [s for s, per_class in layout.items() for files in per_class.values() for _ in files]
    images, errors = decode_files(
        all_files, color=color, size=hw, workers=workers, progress=progress, max_pixels=max_pixels
    )
    skipped = [(p, e) for p, e in zip(all_files, errors, strict=True) if e is not None]

    ok = [i for i, im in enumerate(images) if im is not None]
    groups = [
        (s, c) for s, per_class in layout.items() for c, files in per_class.items() for _ in files
    ]
    check_classes_readable(root, groups, ok, len(skipped))
    # one mode for the whole set: RGB if any image is RGB (grey ones are repeated)
    if (
        color is None
        and any(images[i].ndim == 3 for i in ok)
        and any(images[i].ndim == 2 for i in ok)
    ):
        for i in ok:
            if images[i].ndim == 2:
                images[i] = to_rgb(images[i][None])[0]
    check_one_size(root, all_files, {i: images[i].shape[:2] for i in ok})
    pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in layout:
        idx = [i for i in ok if split_of[i] == s]
        X = (
            np.stack([images[i] for i in idx])
            if idx
            else np.empty((0, *images[ok[0]].shape), np.uint8)
        )
        pools[s] = (X, np.array([labels[i] for i in idx], dtype=np.int64))
    if key is not None:
        try:
            _save_cache(_cache_path(key), pools, classes, skipped)
        except OSError as e:
            warnings.warn(
                f"could not write the image cache ({e}); loading will not be faster next time",
                DatasetWarning,
                stacklevel=2,
            )
    _warn_skipped(root, skipped)
    return pools, classes, skipped, False


def _warn_skipped(root: Path, skipped: list[tuple[str, str]]) -> None:
    if skipped:
        warnings.warn(_summarise_skipped(root, skipped), DatasetWarning, stacklevel=3)


def load_folder(
    root: str | os.PathLike,
    *,
    color: str | None = None,
    size=None,
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
    size : (height, width) or int; needed when the images differ in size.
    workers : decoding processes (default: one per available CPU).
    cache : reuse / write the decoded arrays in the user cache.
    max_pixels : larger images are refused with a :class:`DatasetError`.
    name : dataset name (default: the folder's name).
    stream : keep the images on disk: the splits hold :class:`objrec.data.lazy.ImageFiles`
        (decoded on access, e.g. by DataLoader workers while training) instead of arrays.
        Only file headers are read now; the splits are the same as in memory.
    """
    root = Path(root).expanduser()
    if stream:
        from objrec.data.lazy import list_folder_pools

        pools, classes, skipped = list_folder_pools(
            root, color=color, size=size, workers=workers, progress=progress, max_pixels=max_pixels
        )
    else:
        pools, classes, skipped, _ = read_folder_pools(
            root,
            color=color,
            size=size,
            workers=workers,
            progress=progress,
            cache=cache,
            max_pixels=max_pixels,
        )
    name = name or root.resolve().name
    source = str(root.resolve())
    if "all" in pools:
        X, y = pools["all"]
        return from_pool(
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
    return ds
