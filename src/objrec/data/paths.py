"""Where objrec looks for and caches data: the user cache (XDG honoured) and system folders."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/objrec`` (default ``~/.cache/objrec``)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "objrec"


def env_data_dir() -> Path | None:
    """``$OBJREC_DATA_DIR`` if set."""
    v = os.environ.get("OBJREC_DATA_DIR")
    return Path(v).expanduser() if v else None
