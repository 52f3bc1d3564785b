"""Run folders: every command that trains writes one.

``runs/NAME/`` holds ``config.json`` (the resolved options), ``versions.json``
(libraries and git hash), ``metrics.json``, per-epoch ``history.csv``/``history.json``
for networks, the plots, and ``model/`` (the artifact, see :mod:`objrec.artifact`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from objrec.artifact import library_versions
from objrec.io import write_json

DEFAULT_ROOT = Path("runs")


def git_hash(cwd: str | Path | None = None) -> str | None:
    """The commit hash of the source tree objrec runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_run(name: str | None = None, *, out: str | Path | None = None, prefix: str = "run") -> Path:
    """Create and return a fresh run folder.

    ``out`` is used as given (created if needed); otherwise ``runs/NAME``, or
    ``runs/NAME-2``, ``-3``... when NAME is taken, and a timestamped name when no
    name is given.
    """
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    if name is None:
        import datetime

        name = f"{prefix}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    folder = DEFAULT_ROOT / name
    i = 2
    while folder.exists():
        folder = DEFAULT_ROOT / f"{name}-{i}"
        i += 1
    folder.mkdir(parents=True)
    return folder


def write_run_info(folder: str | Path, config: dict) -> None:
    """Write ``config.json`` and ``versions.json`` (library versions and git hash)."""
    folder = Path(folder)
    write_json(folder / "config.json", config)
    write_json(folder / "versions.json", {**library_versions(), "git": git_hash()})
