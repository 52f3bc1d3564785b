"""Per-request checks of the server that run before any pixel is decoded (the pixel
budget itself is counted from the images' headers, :func:`objrec.data.images.open_image`,
in :mod:`objrec.serving.app`).

- :func:`parse_top_k`: the ``top_k`` field from a query string, a form or JSON, checked
  against its valid range;
- :func:`hide_paths`: metadata with absolute file-system paths cut to their last part.
"""

from __future__ import annotations

import logging
import re

from objrec.errors import InputError
from objrec.serving.preprocess import DEFAULT_MAX_PIXELS

log = logging.getLogger("objrec.serving")

#: Largest total width x height of all images in one request: one image at the per-image
#: limit, or several smaller ones (40 megapixels decode to 40 MB grey, 120 MB RGB).
DEFAULT_MAX_TOTAL_PIXELS = DEFAULT_MAX_PIXELS
#: Largest ``top_k`` accepted (it is capped at the model's class count anyway).
MAX_TOP_K = 10_000


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
