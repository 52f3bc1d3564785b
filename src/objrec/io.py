"""Small file helpers: atomic writes (temporary file + rename) and JSON with numpy types."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def default_file_mode() -> int:
    """The permission bits ``open()`` gives a new file under the current umask (e.g. 0o644).

    ``tempfile.mkstemp`` creates files readable by their owner only; files renamed into
    place get these bits instead, so that a model or report written by one user can be
    read by a server or a browser running as another.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, Mapping):  # e.g. a model's ModelMetadata
        return dict(o)
    return repr(o)


def to_json(obj, **kw) -> str:
    """``json.dumps`` that also writes numpy scalars/arrays and paths (anything else as repr)."""
    return json.dumps(obj, default=_default, indent=2, **kw)


def write_json(path: str | os.PathLike, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (to_json(obj) + "\n").encode())


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
