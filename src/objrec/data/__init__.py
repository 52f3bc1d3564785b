"""Datasets: named sets (digits, MNIST-format IDX sets, ORL faces, CIFAR-10) and image folders.

    >>> from objrec.data import load_dataset
    >>> ds = load_dataset("mnist")                 # 50,000 / 10,000 / 10,000 (official test)
    >>> ds.train.X.shape, ds.train.X.dtype         # (50000, 28, 28) uint8
    >>> mean, std = ds.channel_stats()             # per channel, training split, 0..1 units

Every loader returns a :class:`Dataset`: ``classes`` (names), and ``train``/``val``/``test``
splits holding uint8 images (N, H, W) or (N, H, W, 3) and int64 labels (N,).
"""

from __future__ import annotations

import os
from pathlib import Path

from objrec.data.dataset import Dataset, Split, apply_options
from objrec.errors import DatasetError

NAMES = ("digits", "mnist", "fashion-mnist", "kmnist", "orl-faces", "cifar10")


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_size: float | int | None = None,
    test_size: float | int | None = None,
    color: str | None = None,
    size: int | tuple[int, int] | None = None,
    fit: str | None = None,
    cap: int | None = None,
    download: bool = True,
    progress: bool = True,
    stream: bool = False,
) -> Dataset:
    """Load a dataset by name or from a folder and split it train / val / test.

    Parameters
    ----------
    name_or_path : one of ``NAMES`` or a folder (``root/<class>/<image>``, pre-split
        ``root/{train,val,test}/<class>/<image>``, or the four MNIST-format IDX files).
    data_dir : folder to look in first for a named set's files.
    seed : seed of the stratified split (same seed, same split on every machine).
    val_size, test_size : fraction (float in (0, 1)) or count (int). With an official test
        split only ``val_size`` applies (default 10,000 for 60,000-image training sets, a
        tenth otherwise, e.g. 5,000 of CIFAR-10's 50,000 whether named or a train/test
        folder); a single pool defaults to 70/15/15.
    color : ``"grey"`` or ``"rgb"`` (default: as stored).
    size : resize every image to ``size`` (int or (height, width)). A folder of image files
        without ``size`` is loaded at a working size picked from its images (median height
        and width, longest side at most ``cap``, never enlarged: ``ds.image_note`` says what
        was chosen); named sets keep their stored size (MNIST-format sets 28x28).
    cap : longest side of that working size (default
        :data:`objrec.data.images.WORKING_SIZE_CAP`, 64; pretrained networks ask for their
        native input, 224)
    fit : aspect policy when resizing: ``"squash"`` (default), ``"crop"`` or ``"pad"``
        (:mod:`objrec.data.images`). ``ds.image`` records the resulting image spec.
    download : allow downloading a named set from its official mirrors.
    progress : show progress bars.
    stream : for a folder of image files: keep the images on disk and decode them on
        access (the splits' ``X`` are :class:`objrec.data.lazy.ImageFiles`; networks
        stream them through DataLoader workers). Named sets and IDX folders are stored as
        arrays and always load into memory.
    """
    key = str(name_or_path)
    lowered = key.lower().replace("_", "-")
    if lowered == "digits":
        from objrec.data.named import load_digits

        ds = load_digits(seed=seed, val_size=val_size, test_size=test_size)
    elif lowered in ("mnist", "fashion-mnist", "kmnist"):
        from objrec.data.named import load_idx_set

        ds = load_idx_set(
            lowered,
            data_dir=data_dir,
            seed=seed,
            val_size=val_size,
            download=download,
            progress=progress,
        )
    elif lowered in ("cifar10", "cifar-10"):
        from objrec.data.named import load_cifar10

        ds = load_cifar10(
            data_dir=data_dir, seed=seed, val_size=val_size, download=download, progress=progress
        )
    elif lowered in ("orl-faces", "orl", "att-faces"):
        from objrec.data.named import load_orl_faces

        ds = load_orl_faces(
            data_dir=data_dir, seed=seed, val_size=val_size, test_size=test_size, progress=progress
        )
        return apply_options(ds, color, size, fit)
    elif Path(key).expanduser().is_dir():
        folder = Path(key).expanduser()
        from objrec.data.named import find_idx_files, load_idx_folder

        if find_idx_files(folder) is not None:
            ds = load_idx_folder(folder, folder.resolve().name, seed=seed, val_size=val_size)
        else:
            from objrec.data.folders import load_folder

            return load_folder(
                folder,
                color=color,
                size=size,
                fit=fit,
                **({} if cap is None else {"cap": cap}),
                seed=seed,
                val_size=val_size,
                test_size=test_size,
                progress=progress,
                stream=stream,
            )
    elif Path(key).expanduser().exists():
        raise DatasetError(
            f"{key}: is a file; give a folder of class folders, a folder holding the four "
            f"IDX files, or a dataset name ({', '.join(NAMES)})"
        )
    else:
        raise DatasetError(
            f"unknown dataset {key!r}: not a known name ({', '.join(NAMES)}) nor an existing folder"
        )
    return apply_options(ds, color, size, fit)


def __getattr__(name: str):
    # the folder loader pulls in Pillow and concurrent.futures: import it on first use
    if name == "load_folder":
        from objrec.data.folders import load_folder

        return load_folder
    if name == "DatasetWarning":
        from objrec.data.listing import DatasetWarning

        return DatasetWarning
    if name == "ImageFiles":
        from objrec.data.lazy import ImageFiles

        return ImageFiles
    raise AttributeError(f"module 'objrec.data' has no attribute {name!r}")


__all__ = [
    "NAMES",
    "Dataset",
    "DatasetError",
    "DatasetWarning",
    "ImageFiles",
    "Split",
    "load_dataset",
    "load_folder",
]
