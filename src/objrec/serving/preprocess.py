"""Any image file or array -> the model's input: uint8 ``(N, *input_shape)``.

A model remembers the image shape it was trained on (``input_shape_``: ``(H, W)`` for grey,
``(H, W, C)`` for colour). New images of any size and colour mode are brought to that
shape the same way everywhere (``objrec predict``, the server, the exported-model checks):

1. decode (Pillow, header checked against a pixel limit before any pixel is decoded, so a
   decompression bomb is refused cheaply; only common raster formats are opened);
2. apply the EXIF orientation; flatten transparency onto black (the background of the
   digit and clothing data sets, and of the web page's canvas);
3. convert the colour mode: grey via ITU-R 601 luma (Pillow's ``"L"``), RGB by repeating grey;
4. resize to ``(H, W)`` with area interpolation when shrinking (no aliasing) and bilinear
   when enlarging (OpenCV).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from objrec.errors import InputError

#: Largest image (width x height) decoded by default: 40 megapixels, about a 7,000 x 6,000 photo.
DEFAULT_MAX_PIXELS = 40_000_000
#: Raster formats Pillow may open (its other plugins, e.g. EPS or PSD, are never tried).
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "ICO")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
    | {".pnm", ".ico"}
)


class ImageTooLargeError(InputError):
    """The image has more pixels than the limit (a decompression bomb or a huge photo)."""


def decode_image(
    data: bytes | str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = ""
) -> np.ndarray:
    """Decode one image file (bytes or a path) to uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB.

    Raises :class:`InputError` for an empty, corrupt or unsupported file and
    :class:`ImageTooLargeError` when width x height exceeds ``max_pixels``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(data, str | os.PathLike):
        name = name or str(data)
        data = Path(data).read_bytes()
    label = f"{name}: " if name else ""
    if not data:
        raise InputError(f"{label}empty file (0 bytes); send an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLargeError(
                    f"{label}image too large: {w}x{h} = {w * h:,} pixels, over the limit of "
                    f"{max_pixels:,}; resize it before sending"
                )
            if w == 0 or h == 0:
                raise InputError(f"{label}image has no pixels ({w}x{h})")
            img.load()  # decode now, inside the try: truncated files fail here
            if "exif" in img.info or img.format in ("JPEG", "TIFF", "WEBP"):
                img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                black = Image.new("RGBA", img.size, (0, 0, 0, 255))
                img = Image.alpha_composite(black, img).convert("RGB")
            if img.mode in ("1", "L", "I", "I;16", "F"):
                arr = np.asarray(img)
                if arr.dtype != np.uint8:  # 16-bit or float grey: scale its range to 0..255
                    arr = arr.astype(np.float64)
                    top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else 255.0
                    arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.ascontiguousarray(arr)
            return np.asarray(img.convert("RGB"))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(
            f"{label}image too large ({e}); the limit is {max_pixels:,} pixels, resize it before sending"
        ) from e
    except UnidentifiedImageError as e:
        raise InputError(
            f"{label}not a readable image (supported: {', '.join(FORMATS)}); the file may be corrupt"
        ) from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{label}corrupt or truncated image ({e})") from e


def to_model_input(images, input_shape) -> np.ndarray:
    """Bring images of any size and colour mode to the model's ``input_shape``.

    Parameters
    ----------
    images : list of uint8 arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``,
        or one array ``(N, H, W[, C])``.
    input_shape : ``(H, W)`` or ``(H, W, C)``, the model's ``input_shape_``.

    Returns
    -------
    uint8 ``(N, *input_shape)``
    """
    import cv2

    from objrec.validation import check_images

    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise InputError(f"input_shape must be (H, W) or (H, W, C), got {shape}")
    th, tw = shape[:2]
    channels = shape[2] if len(shape) == 3 else 0  # 0: grey without a channel axis
    if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype == np.uint8:
        if images.shape[1:] == shape:
            return images
        items = list(images)
    else:
        items = list(images)
    out = np.empty((len(items), *shape), np.uint8)
    for i, img in enumerate(items):
        a = check_images(np.asarray(img)[None], what=f"image {i}")[0]
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]  # arrays: alpha dropped (files are composited on black when decoded)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if channels in (0, 1) and a.ndim == 3:
            a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
        elif channels == 3 and a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        if a.shape[:2] != (th, tw):
            shrink = a.shape[0] >= th and a.shape[1] >= tw
            a = cv2.resize(
                np.ascontiguousarray(a),
                (tw, th),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            )
        if channels == 1:
            a = a[..., None]
        out[i] = a
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
