"""CIFAR-10's official binary version: fixed-size records, read without unpickling.

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` ..
``data_batch_5.bin`` (the 50,000 training images), ``test_batch.bin`` (the 10,000 test
images) and ``batches.meta.txt`` (the class names, one a line). Each batch file is
10,000 records of 3,073 bytes: one label byte (0..9), then the 1,024 red, 1,024 green
and 1,024 blue pixel bytes of a 32x32 image, each plane row-major. The Python version of
the same set is pickled, and unpickling a download executes code: it is never read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from objrec.errors import DatasetError

SIDE = 32
CHANNELS = 3
RECORD_BYTES = 1 + SIDE * SIDE * CHANNELS  # 3,073
RECORDS_PER_BATCH = 10_000
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
BATCH_FILES = (*TRAIN_FILES, TEST_FILE)
MEMBERS = (*BATCH_FILES, META_FILE)
# The meta file is ten short names; anything much larger is not the meta file.
_MAX_META_BYTES = 4096


def decode_records(
    data: bytes | np.ndarray, *, n_classes: int = 10, what: str = "CIFAR batch"
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from the bytes of whole CIFAR-10 binary records.

    Parameters
    ----------
    data : bytes (or a uint8 array) of N records of :data:`RECORD_BYTES` bytes each.
    n_classes : labels must lie in 0..n_classes-1.
    what : how to name the data in an error (a file name).

    Returns
    -------
    X : (N, 32, 32, 3) uint8, channels last: ``X[i, r, c, k]`` is byte
        ``1 + k * 1024 + r * 32 + c`` of record i.
    y : (N,) int64 labels.

    Raises :class:`DatasetError` when the length is not a whole number of records or a
    label is out of range.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    buf = np.asarray(buf, dtype=np.uint8).ravel()
    if len(buf) % RECORD_BYTES:
        raise DatasetError(
            f"{what}: {len(buf):,} bytes is not a whole number of {RECORD_BYTES:,}-byte records "
            "(truncated or not a CIFAR-10 binary batch); download cifar-10-binary.tar.gz again"
        )
    rec = buf.reshape(-1, RECORD_BYTES)
    y = rec[:, 0].astype(np.int64)
    if len(y) and int(y.max()) >= n_classes:
        bad = int(np.flatnonzero(y >= n_classes)[0])
        raise DatasetError(
            f"{what}: record {bad} has label {int(y[bad])}, expected 0..{n_classes - 1} "
            "(not a CIFAR-10 batch: CIFAR-100's records have two label bytes)"
        )
    X = rec[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(X), y


def read_batch(
    path: str | os.PathLike, *, records: int | None = RECORDS_PER_BATCH, n_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: ``(X (N, 32, 32, 3) uint8, y (N,) int64)``.

    ``records``: the number of records the file must hold (10,000 in the official files;
    None accepts any whole number). A file of another size is refused with a
    :class:`DatasetError` before it is read.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
    if records is not None and size != records * RECORD_BYTES:
        raise DatasetError(
            f"{path}: {size:,} bytes, expected {records * RECORD_BYTES:,} "
            f"({records:,} records of {RECORD_BYTES:,} bytes): the file is truncated or not "
            "from cifar-10-binary.tar.gz; delete it and download the archive again"
        )
    return decode_records(path.read_bytes(), n_classes=n_classes, what=str(path))


def read_class_names(path: str | os.PathLike, n_classes: int = 10) -> list[str]:
    """The class names of ``batches.meta.txt`` (the first ``n_classes`` non-empty lines)."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_META_BYTES:
            raise DatasetError(f"{path}: {path.stat().st_size:,} bytes, too large for {META_FILE}")
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the class names ({e})") from e
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) < n_classes:
        raise DatasetError(f"{path}: {len(names)} class names, expected {n_classes} (one a line)")
    return names[:n_classes]


def batch_folder(folder: str | os.PathLike) -> Path | None:
    """The folder holding the six batch files: ``folder`` itself or its
    ``cifar-10-batches-bin``; None when neither has all of them."""
    folder = Path(folder)
    for cand in (folder, folder / FOLDER):
        if cand.is_dir() and all((cand / f).is_file() for f in MEMBERS):
            return cand
    return None


def read_folder(
    folder: str | os.PathLike, *, records: int | None = RECORDS_PER_BATCH
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(classes, X_train, y_train, X_test, y_test)`` from an extracted batch folder:
    (50,000, 32, 32, 3) and (10,000, 32, 32, 3) uint8 images, int64 labels."""
    root = batch_folder(folder)
    if root is None:
        missing = [f for f in MEMBERS if not (Path(folder) / FOLDER / f).is_file()]
        raise DatasetError(f"{folder}: no CIFAR-10 batch folder (missing {', '.join(missing)})")
    classes = read_class_names(root / META_FILE)
    parts = [read_batch(root / f, records=records, n_classes=len(classes)) for f in TRAIN_FILES]
    X_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    X_test, y_test = read_batch(root / TEST_FILE, records=records, n_classes=len(classes))
    return classes, X_train, y_train, X_test, y_test


def extract(
    archive: str | os.PathLike, dest: str | os.PathLike, *, records: int | None = RECORDS_PER_BATCH
) -> Path:
    """Extract the batch files of ``cifar-10-binary.tar.gz`` into ``dest/cifar-10-batches-bin``.

    Only the seven expected members (:data:`MEMBERS`, inside :data:`FOLDER`) are taken,
    each a regular file, batch files of exactly ``records`` records; everything else in
    the archive (``readme.html``) is skipped. Members are extracted with tarfile's
    ``"data"`` filter into a temporary folder next to ``dest`` and moved in place only
    when all are there, so an interrupted extraction leaves nothing half-written.

    Returns the batch folder. Raises :class:`DatasetError` for a corrupt archive, a
    missing member or a batch file of the wrong size.
    """
    archive, dest = Path(archive), Path(dest)
    wanted = {f"{FOLDER}/{m}": m for m in MEMBERS}
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {}
            for info in tar:
                name = info.name.lstrip("./")
                if name not in wanted:
                    continue
                if not info.isreg():
                    raise DatasetError(f"{archive}: {name} is not a regular file")
                m = wanted[name]
                if m in BATCH_FILES and records is not None:
                    expected = records * RECORD_BYTES
                    if info.size != expected:
                        raise DatasetError(
                            f"{archive}: {name} is {info.size:,} bytes, expected {expected:,} "
                            f"({records:,} records of {RECORD_BYTES:,} bytes); the archive is "
                            "damaged or not cifar-10-binary.tar.gz: delete it and download it again"
                        )
                elif m == META_FILE and info.size > _MAX_META_BYTES:
                    raise DatasetError(f"{archive}: {name} is {info.size:,} bytes, too large")
                members[m] = info
            missing = [m for m in MEMBERS if m not in members]
            if missing:
                raise DatasetError(
                    f"{archive}: not the CIFAR-10 binary archive (missing "
                    f"{', '.join(FOLDER + '/' + m for m in missing)}); the Python (pickle) "
                    "version is not read: use cifar-10-binary.tar.gz"
                )
            dest.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".cifar-extract-", dir=dest))
            try:
                for m in MEMBERS:
                    tar.extract(members[m], tmp, filter="data")
                target = dest / FOLDER
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp / FOLDER, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DatasetError(
            f"{archive}: cannot extract ({e}); the archive is damaged: delete it and download "
            "it again"
        ) from e
    return dest / FOLDER
