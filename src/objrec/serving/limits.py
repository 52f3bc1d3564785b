"""Per-request checks of the server that run before any pixel is decoded.

- :func:`header_pixels`: an image file's width x height, read from its header only (Pillow
  opens files lazily), so a request whose images add up to more than the server's pixel
  budget is refused without decoding any of them;
- :func:`parse_top_k`: the ``top_k`` field from a query string, a form or JSON, checked
  against its valid range;
- :func:`hide_paths`: metadata with absolute file-system paths cut to their last part.
"""

from __future__ import annotations

import io
import logging
import re
import warnings

from objrec.errors import InputError
from objrec.serving.preprocess import DEFAULT_MAX_PIXELS, FORMATS

log = logging.getLogger("objrec.serving")

#: Largest total width x height of all images in one request: one image at the per-image
#: limit, or several smaller ones (40 megapixels decode to 40 MB grey, 120 MB RGB).
DEFAULT_MAX_TOTAL_PIXELS = DEFAULT_MAX_PIXELS
#: Largest ``top_k`` accepted (it is capped at the model's class count anyway).
MAX_TOP_K = 10_000


def header_pixels(data: bytes) -> int | None:
    """Width x height from the image header of ``data``, without decoding the pixels.

    None when Pillow cannot identify the file (the decoder then reports why); a header
    beyond Pillow's decompression-bomb guard counts as ``Image.MAX_IMAGE_PIXELS * 2 + 1``.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, corrupt-tag warnings
            with Image.open(io.BytesIO(data), formats=FORMATS) as img:
                w, h = img.size
        return max(int(w), 0) * max(int(h), 0)
    except Image.DecompressionBombError:
        return 2 * int(Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS) + 1
    except Exception:  # any failure to read a header: left to the decoder's own message
        return None


_TOP_K = re.compile(r"[0-9]{1,9}")


def parse_top_k(value, where: str, *, text: bool = True) -> int | None:
    """``top_k`` from a query string or form (``text``: ASCII digits) or JSON (an integer,
    ``text=False``): 1..MAX_TOP_K.

    None when absent. Raises :class:`InputError` naming the valid range otherwise: for
    ``0``, negatives, booleans, fractions (``3.0`` is 3 in JSON), Unicode digits such as
    ``²`` and numbers of thousands of digits.
    """
    if value is None:
        return None
    if isinstance(value, str) and text:
        text = value.strip()
        k = int(text) if _TOP_K.fullmatch(text) else None
    elif isinstance(value, int) and not isinstance(value, bool):
        k = value
    elif isinstance(value, float) and value.is_integer():  # JSON Schema: 3.0 is an integer
        k = int(value)
    else:
        k = None
    if k is None or not 1 <= k <= MAX_TOP_K:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InputError(
            f"{where} top_k must be a whole number from 1 to {MAX_TOP_K:,} "
            f"(capped at the class count), got {shown}"
        )
    return k


_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


def _is_abs_path(s: str) -> bool:
    return (s.startswith(("/", "~", "file:")) and len(s) > 1 and "\n" not in s) or bool(
        _WINDOWS_ABS.match(s)
    )


def hide_paths(obj):
    """``obj`` (JSON-like) with every string that is an absolute path (``/...``, ``~...``,
    ``file:...``, ``C:\\...``) replaced by its last component, e.g. the run folder's
    ``/home/me/runs/mnist/checkpoints`` by ``checkpoints``: clients learn nothing of the
    server's file system."""
    if isinstance(obj, dict):
        return {k: hide_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [hide_paths(v) for v in obj]
    if isinstance(obj, str) and _is_abs_path(obj):
        tail = re.split(r"[\\/]", obj.rstrip("/\\"))[-1]
        return tail or "(path)"
    return obj
