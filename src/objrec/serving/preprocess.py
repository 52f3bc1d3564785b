"""Any image file or array -> the model's input: uint8 ``(N, *input_shape)``.

A thin layer over :mod:`objrec.data.images`, the one image pipeline that also loads the
training folders, so ``objrec predict``, the server and the exported-model checks see the
same pixels as training did:

1. :func:`decode_image`: Pillow decode (pixel limit checked on the header before any pixel
   is decoded; only common raster formats are opened), EXIF orientation applied,
   transparency composited on black, 16-bit / float / palette / CMYK images to uint8;
2. :func:`to_model_input`: colour conversion (grey by ITU-R 601 luma, RGB by repeating
   grey) and the one resize filter with the model's aspect policy, from the model's
   :class:`~objrec.data.images.ImageSpec` (its metadata's ``image``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from objrec.data.images import (
    FORMATS,
    MAX_PIXELS,
    ImageSpec,
    ImageTooLargeError,
    OpenedImage,
    bomb_warning_ignored,
    decode,
    open_image,
    prepare,
    spec_for_model,
)
from objrec.errors import InputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "ImageTooLargeError",
    "OpenedImage",
    "bomb_warning_ignored",
    "decode_image",
    "find_images",
    "open_image",
    "spec_for_model",
    "to_model_input",
]

#: Largest image (width x height) decoded by default: the one limit of objrec.data.images.
DEFAULT_MAX_PIXELS = MAX_PIXELS
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
    | {".pnm", ".ico"}
)


def decode_image(
    data: bytes | str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = ""
) -> np.ndarray:
    """Decode one image file (bytes or a path) to uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB,
    at its own size (:func:`objrec.data.images.decode`).

    Raises :class:`InputError` naming the file for an empty, corrupt or unsupported file
    and :class:`ImageTooLargeError` when width x height exceeds ``max_pixels``.
    """
    return decode(data, max_pixels=max_pixels, name=name)


def to_model_input(images, input_shape, spec: ImageSpec | None = None) -> np.ndarray:
    """Bring images of any size and colour mode to the model's ``input_shape``.

    Parameters
    ----------
    images : list of uint8 arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``
        (alpha dropped: files are composited on black when decoded), or one array
        ``(N, H, W[, C])``.
    input_shape : ``(H, W)`` or ``(H, W, C)``, the model's ``input_shape_``.
    spec : the model's :class:`ImageSpec` (aspect policy); default: squash to
        ``input_shape``.

    Returns
    -------
    uint8 ``(N, *input_shape)``
    """
    from objrec.validation import check_images

    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise InputError(f"input_shape must be (H, W) or (H, W, C), got {shape}")
    spec = spec or ImageSpec.from_shape(shape)
    if spec.shape[:2] != shape[:2]:
        raise InputError(f"image spec {spec.size} does not match input_shape {shape}")
    if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype == np.uint8:
        if images.shape[1:] == shape:
            return images
    items = list(images)
    out = np.empty((len(items), *shape), np.uint8)
    ready = spec.shape  # an image already in this shape and colour needs no conversion
    expand = len(shape) == 3 and shape[2] == 1
    for i, img in enumerate(items):
        if type(img) is np.ndarray and img.dtype == np.uint8 and img.shape == ready:
            a = img  # what check_images and prepare would give back unchanged
        else:
            a = check_images(np.asarray(img)[None], what=f"image {i}")[0]
            a = prepare(a, spec)
        out[i] = a[..., None] if expand else a
    return out


def find_images(paths, *, recursive: bool = True) -> list[Path]:
    """Expand files, folders (recursively, image suffixes only) and glob patterns, in order.

    A path that matches nothing is returned as given so the caller can report it.
    """
    import glob

    found: list[Path] = []
    for p in map(str, paths):
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if not matches:
            found.append(Path(p))
            continue
        for m in map(Path, matches):
            if m.is_dir():
                it = m.rglob("*") if recursive else m.glob("*")
                found.extend(
                    sorted(f for f in it if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
                )
            else:
                found.append(m)
    return found
