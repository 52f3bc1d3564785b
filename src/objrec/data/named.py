"""Datasets known by name: where their files are looked for and how they are read.

``digits`` is scikit-learn's bundled 8x8 set (needs nothing). ``mnist``, ``fashion-mnist``
and ``kmnist`` are the four-file IDX sets (60,000 train / 10,000 official test, 28x28);
``orl-faces`` is the AT&T face database (40 people x 10 grey 92x112 PGM images).
``cifar10`` is CIFAR-10's official binary version (50,000 train / 10,000 official test,
32x32 RGB; :mod:`objrec.data.cifar` reads it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from objrec.data.dataset import Dataset, from_official, from_pool
from objrec.data.idx import read_idx, read_idx_labels
from objrec.data.paths import SYSTEM_DIRS, env_data_dir, user_cache_dir
from objrec.errors import DatasetError


def load_digits(*, seed: int = 0, val_size=None, test_size=None) -> Dataset:
    """scikit-learn's 1,797 8x8 digits, scaled from 0..16 to uint8 0..255, split 70/15/15."""
    from sklearn.datasets import load_digits as _sk_load_digits

    d = _sk_load_digits()
    X = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return from_pool(
        "digits",
        [str(c) for c in d.target_names],
        X,
        d.target,
        source="scikit-learn",
        seed=seed,
        val_size=val_size,
        test_size=test_size,
    )


# ----------------------------------------------------------------------------- IDX sets

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class IdxSpec:
    """A four-file IDX dataset: class names, official mirrors and the published MD5 of
    each ``.gz`` file as distributed (checked after a download)."""

    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    md5: dict[str, str] = field(default_factory=dict)
    description: str = ""


IDX_SETS: dict[str, IdxSpec] = {
    "mnist": IdxSpec(
        "mnist",
        tuple(str(i) for i in range(10)),
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "MNIST handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0)",
    ),
    "fashion-mnist": IdxSpec(
        "fashion-mnist",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "Fashion-MNIST, Zalando article images (Xiao, Rasul, Vollgraf; MIT licence)",
    ),
    "kmnist": IdxSpec(
        "kmnist",
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        "Kuzushiji-MNIST, cursive Japanese (CODH; CC BY-SA 4.0)",
    ),
}


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` (also torchvision's ``stem`` with a dot: ``train-images.idx3-ubyte``)."""
    for cand in (
        stem + ".gz",
        stem,
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        p = folder / cand
        if p.is_file():
            return p
    return None


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (compressed or not), or None if any is missing."""
    found = {stem: _idx_file(folder, stem) for stem in IDX_FILES}
    return found if all(found.values()) else None  # type: ignore[return-value]


def candidate_dirs(name: str, data_dir=None, aliases: tuple[str, ...] = ()) -> list[Path]:
    """Folders searched for a named set, in order: ``data_dir`` (and ``data_dir/<name>``),
    ``$OBJREC_DATA_DIR/<name>``, the user cache, then the system folders."""
    names = (name, *aliases)
    out: list[Path] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        out += [d, *(d / n for n in names)]
    env = env_data_dir()
    if env is not None:
        out += [env, *(env / n for n in names)]
    out += [user_cache_dir() / name]
    out += [s / n for s in SYSTEM_DIRS for n in names]
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def read_idx_pair(
    images_path: Path, labels_path: Path, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W) and labels int64 (N,) from two IDX files, cross-checked."""
    X = read_idx(images_path)
    if X.ndim != 3 or X.dtype != np.uint8:
        raise DatasetError(
            f"{images_path.name}: expected uint8 images (N, H, W), got {X.dtype} {X.shape}"
        )
    y = read_idx_labels(labels_path, n_classes)
    if len(y) != len(X):
        raise DatasetError(
            f"{labels_path.name}: {len(y)} labels for the {len(X)} images of {images_path.name}"
        )
    return X, y


def load_idx_folder(
    folder: Path,
    name: str,
    classes: list[str] | None = None,
    *,
    seed: int = 0,
    val_size=None,
) -> Dataset:
    """A Dataset from a folder holding the four MNIST-format files (official test kept)."""
    files = find_idx_files(folder)
    if files is None:
        missing = [s for s in IDX_FILES if _idx_file(folder, s) is None]
        raise DatasetError(f"{folder}: missing {', '.join(missing)} (.gz or uncompressed)")
    Xtr, ytr = read_idx_pair(files[IDX_FILES[0]], files[IDX_FILES[1]], len(classes or range(256)))
    Xte, yte = read_idx_pair(files[IDX_FILES[2]], files[IDX_FILES[3]], len(classes or range(256)))
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise DatasetError(
            f"{folder}: train images are {Xtr.shape[1:]}, test images {Xte.shape[1:]}"
        )
    if classes is None:
        n = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
        classes = [str(i) for i in range(n)]
    return from_official(
        name,
        list(classes),
        Xtr,
        ytr,
        Xte,
        yte,
        source=str(folder.resolve()),
        seed=seed,
        val_size=val_size,
    )


def _download_idx(spec: IdxSpec, dest: Path, progress: bool, **download_kw) -> None:
    from objrec.data.download import download

    for stem in IDX_FILES:
        if _idx_file(dest, stem) is not None:
            continue
        fname = stem + ".gz"
        download(
            [m.rstrip("/") + "/" + fname for m in spec.mirrors],
            dest / fname,
            md5=spec.md5.get(fname),
            progress=progress,
            **download_kw,
        )


def locate_idx_set(
    spec: IdxSpec, data_dir=None, *, download: bool = True, progress: bool = True, **download_kw
) -> Path:
    """The folder holding ``spec``'s four files; downloads into the user cache if allowed."""
    looked = candidate_dirs(spec.name, data_dir, aliases=(spec.name.replace("-", "_"),))
    for d in looked:
        if d.is_dir() and find_idx_files(d) is not None:
            return d
    target = user_cache_dir() / spec.name
    howto = (
        f"put the four files ({', '.join(s + '[.gz]' for s in IDX_FILES)}) in one of these "
        "folders, pass --data-dir DIR (data_dir=...), or set OBJREC_DATA_DIR"
    )
    where = ", ".join(str(p) for p in looked)
    if not download:
        raise DatasetError(f"{spec.name}: files not found (looked in {where}); {howto}")
    try:
        _download_idx(spec, target, progress, **download_kw)
    except DatasetError as e:
        raise DatasetError(
            f"{spec.name}: files not found (looked in {where}) and the download failed ({e}); {howto}"
        ) from e
    return target


def load_idx_set(
    name: str,
    *,
    data_dir=None,
    seed: int = 0,
    val_size=None,
    download: bool = True,
    progress: bool = True,
    spec: IdxSpec | None = None,
    **download_kw,
) -> Dataset:
    """Load ``mnist``, ``fashion-mnist`` or ``kmnist`` (or a custom ``spec``), official
    60,000/10,000 split with validation carved from train (50,000/10,000 by default)."""
    spec = spec or IDX_SETS[name]
    folder = locate_idx_set(spec, data_dir, download=download, progress=progress, **download_kw)
    return load_idx_folder(folder, spec.name, list(spec.classes), seed=seed, val_size=val_size)


# ----------------------------------------------------------------------------- ORL faces


def _is_orl_folder(d: Path) -> bool:
    return d.is_dir() and (d / "s1").is_dir() and any((d / "s1").glob("*.pgm"))


def load_orl_faces(
    *, data_dir=None, seed: int = 0, val_size=None, test_size=None, progress: bool = True
) -> Dataset:
    """The AT&T (ORL) faces: 40 people ``s1``..``s40`` x 10 grey 112x92 ``K.pgm`` images,
    split stratified 70/15/15 (classes in natural order: s1, s2, ..., s10, ...)."""
    from objrec.data.folders import load_folder

    looked = candidate_dirs("orl-faces", data_dir, aliases=("orl_faces", "att_faces", "orl"))
    for d in looked:
        if _is_orl_folder(d):
            return load_folder(
                d,
                name="orl-faces",
                color="grey",
                cap=112,  # a named set keeps its own size, 112x92
                seed=seed,
                val_size=val_size,
                test_size=test_size,
                progress=progress,
            )
    raise DatasetError(
        "orl-faces: no folder with the AT&T layout sNN/K.pgm found (looked in "
        + ", ".join(map(str, looked))
        + "); there is no official download any more: put the extracted att_faces folder "
        "(s1 ... s40) in one of these places or pass --data-dir DIR"
    )


# ----------------------------------------------------------------------------- CIFAR-10


@dataclass(frozen=True)
class CifarSpec:
    """CIFAR-10's binary archive: where to download it, its published MD5, the records
    per batch file and the validation images carved from the 50,000 training images."""

    name: str = "cifar10"
    urls: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
    md5: str | None = "c32a1d4ab5d03f1284b67883e8d87530"
    archive: str = "cifar-10-binary.tar.gz"
    records: int = 10_000
    val_size: int = 5_000
    description: str = (
        "CIFAR-10, 60,000 32x32 colour images in 10 classes (Krizhevsky 2009), binary version"
    )


CIFAR10 = CifarSpec()
CIFAR_ALIASES = ("cifar-10", "cifar_10", "cifar-10-binary")


def _extract_cifar(spec: CifarSpec, archive: Path, folder: Path) -> Path:
    """Extract ``archive`` next to itself, or into the user cache if that folder is read-only."""
    from objrec.data.cifar import extract

    dest = folder if os.access(folder, os.W_OK) else user_cache_dir() / spec.name
    return extract(archive, dest, records=spec.records)


def locate_cifar(
    spec: CifarSpec = CIFAR10,
    data_dir=None,
    *,
    download: bool = True,
    progress: bool = True,
    **download_kw,
) -> Path:
    """The folder holding the extracted batch files (``cifar-10-batches-bin``).

    Looks in :func:`candidate_dirs` for the extracted folder, then for the archive
    (extracted on first use), then downloads the archive into the user cache (MD5
    checked) and extracts it there.
    """
    from objrec.data.cifar import FOLDER, MEMBERS, batch_folder

    looked = candidate_dirs(spec.name, data_dir, aliases=CIFAR_ALIASES)
    for d in looked:
        found = batch_folder(d)
        if found is not None:
            return found
    for d in looked:
        if (d / spec.archive).is_file():
            return _extract_cifar(spec, d / spec.archive, d)
    howto = (
        f"put {spec.archive} (or its extracted {FOLDER}/ with {', '.join(MEMBERS)}) in one of "
        "these folders, pass --data-dir DIR (data_dir=...), or set OBJREC_DATA_DIR"
    )
    where = ", ".join(str(p) for p in looked)
    if not download:
        raise DatasetError(f"{spec.name}: files not found (looked in {where}); {howto}")
    from objrec.data.download import download as fetch

    target = user_cache_dir() / spec.name
    try:
        archive = fetch(
            list(spec.urls), target / spec.archive, md5=spec.md5, progress=progress, **download_kw
        )
    except DatasetError as e:
        raise DatasetError(
            f"{spec.name}: files not found (looked in {where}) and the download failed ({e}); "
            f"{howto}"
        ) from e
    try:
        return _extract_cifar(spec, archive, target)
    except DatasetError:
        archive.unlink(missing_ok=True)  # a damaged download is not kept to fail again
        raise


def load_cifar10(
    *,
    data_dir=None,
    seed: int = 0,
    val_size=None,
    download: bool = True,
    progress: bool = True,
    spec: CifarSpec | None = None,
    **download_kw,
) -> Dataset:
    """CIFAR-10 from its binary version: uint8 (N, 32, 32, 3) RGB images, int64 labels,
    classes from ``batches.meta.txt``; the official 10,000 test images untouched and
    5,000 validation images carved from the 50,000 training images (seeded, stratified:
    45,000 / 5,000 / 10,000)."""
    from objrec.data.cifar import read_folder

    spec = spec or CIFAR10
    folder = locate_cifar(spec, data_dir, download=download, progress=progress, **download_kw)
    classes, Xtr, ytr, Xte, yte = read_folder(folder, records=spec.records)
    return from_official(
        spec.name,
        classes,
        Xtr,
        ytr,
        Xte,
        yte,
        source=str(folder.resolve()),
        seed=seed,
        val_size=spec.val_size if val_size is None else val_size,
    )
