"""Run folders: every command that trains writes one.

``runs/NAME/`` holds ``config.json`` (the resolved options), ``versions.json``
(libraries and git hash), ``metrics.json``, per-epoch ``history.csv``/``history.json``
for networks, the plots, and ``model/`` (the artifact, see :mod:`objrec.artifact`).

A run that trains a network also keeps ``checkpoints/last.pt`` (and ``best.pt``) there
(:mod:`objrec.training.checkpoint`), and ``--resume RUN`` continues it: :func:`add_resume_option`,
:func:`resume_config`, :func:`last_checkpoint` and :func:`interrupted_note` are what
``objrec train`` and ``objrec segment train`` share for that.

One run writes a folder at a time: :func:`open_run` takes an exclusive ``fcntl.flock``
on ``.objrec-run.lock`` inside it for the run's lifetime, so a second ``objrec train``
or ``objrec compare`` given the same ``--out`` (or a ``--resume`` of it) is refused
instead of mixing its files with the first one's. A folder that already holds a run
is only written again with ``overwrite=True`` (``--overwrite``), and a non-empty
folder that does not look like a run folder is never written into nor cleared.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from objrec.artifact import library_versions
from objrec.errors import ObjrecError
from objrec.io import write_json

try:  # POSIX; elsewhere run folders are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

DEFAULT_ROOT = Path("runs")
#: The lock file inside every run folder; it also marks the folder as an objrec run's.
LOCK_NAME = ".objrec-run.lock"
#: The folder inside a run that holds its checkpoints (``last.pt``, ``best.pt``).
CHECKPOINTS = "checkpoints"
#: The commands whose runs ``--resume`` continues.
RESUMABLE = ("train", "segment train")


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


def add_resume_option(parser) -> None:
    """The ``--resume RUN`` option (an argparse parser or argument group)."""
    parser.add_argument(
        "--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint"
    )


def resume_config(folder: str | Path, command: str) -> dict:
    """The ``config.json`` of the run in ``folder`` that ``objrec COMMAND --resume`` is to
    continue; :class:`ObjrecError` when there is none."""
    from objrec.io import read_json

    file = Path(folder) / "config.json"
    if not file.is_file():
        raise ObjrecError(
            f"--resume {folder}: no config.json there; give a run folder written by objrec {command}"
        )
    return read_json(file)


def last_checkpoint(folder: str | Path) -> Path:
    """The checkpoint (``checkpoints/last.pt``) a resumed run in ``folder`` starts from;
    :class:`ObjrecError` when the run has none."""
    path = Path(folder) / CHECKPOINTS / "last.pt"
    if not path.is_file():
        raise ObjrecError(
            f"--resume {folder}: no {CHECKPOINTS}/last.pt there (the run ended before "
            "its first epoch, or it was deleted); train again instead"
        )
    return path


def interrupted_note(folder: str | Path, command: str) -> str:
    """What an interrupted (Ctrl-C) training run in ``folder`` tells: where its last
    checkpoint is and the command that continues it."""
    folder = Path(folder)
    return (
        f"objrec: interrupted; the last finished epoch is saved in {folder / CHECKPOINTS}. "
        f"Continue with: objrec {command} --resume {folder}"
    )


# Locks this process holds: resolved folder -> [file descriptor, holders].
_HELD: dict[str, list[int]] = {}


def is_run_folder(folder: str | Path) -> bool:
    """Whether ``folder`` looks like a folder objrec wrote a run into: it holds the run
    lock file, or a ``config.json`` and a ``versions.json`` as :func:`write_run_info`
    writes them (both JSON objects, the versions naming the Python version)."""
    folder = Path(folder)
    if (folder / LOCK_NAME).is_file():
        return True
    try:
        config = json.loads((folder / "config.json").read_text())
        versions = json.loads((folder / "versions.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(versions, dict) and "python" in versions


def _holder(lock_file: Path) -> str:
    """Who holds a lock, from what the holder wrote into the lock file (best effort)."""
    try:
        info = json.loads(lock_file.read_text())
        return f" (objrec {info['command']}, process {int(info['pid'])}, since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _lock(folder: Path, command: str) -> None:
    """Take the exclusive lock of an existing ``folder`` or raise :class:`ObjrecError`."""
    key = str(folder.resolve())
    lock_file = folder / LOCK_NAME
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ObjrecError(
                    f"{folder}: another objrec run is writing this folder{_holder(lock_file)}; "
                    "wait for it to finish or write to another folder (--out)"
                ) from None
            except OSError:  # a file system without flock: run unlocked
                pass
        info = {
            "pid": os.getpid(),
            "command": command,
            "started": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}",
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = [fd, 1]


def _unlock(folder: Path) -> None:
    key = str(folder.resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        os.close(held[0])  # closing the descriptor releases the flock


class RunLock:
    """The lock of one run folder, held until :meth:`release` (or garbage collection).

    Joins a lock this process already holds on the folder (one writer may hand the
    folder to the function that fills it) and refuses one held by another process.
    """

    def __init__(self, folder: str | Path, *, command: str = "run") -> None:
        self.folder = Path(folder)
        self._held = False
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _lock(self.folder, command)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            _unlock(self.folder)

    def __enter__(self) -> Path:
        return self.folder

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # also at interpreter exit
            self.release()


def lock_run_folder(folder: str | Path, *, command: str = "run") -> RunLock:
    """Create ``folder`` if needed and lock it (see :class:`RunLock`); use as a context
    manager, or keep the returned object for as long as the folder is being written."""
    return RunLock(folder, command=command)


def _entries(folder: Path) -> list[str]:
    """The names in ``folder`` other than the lock file, sorted; [] when it does not exist."""
    try:
        return sorted(n for n in os.listdir(folder) if n != LOCK_NAME)
    except FileNotFoundError:
        return []


def _shown(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _clear(folder: Path) -> None:
    """Delete everything in a run folder but its lock file (links are removed, never followed)."""
    here = Path.cwd().resolve()
    real = folder.resolve()
    if real == Path.home().resolve() or real == here or real in here.parents:
        raise ObjrecError(
            f"{folder}: refusing to clear the home folder, the current folder or one above it; "
            "write the run to a folder of its own"
        )
    for name in _entries(folder):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def open_run(
    out: str | Path | None = None,
    *,
    name: str | None = None,
    prefix: str = "run",
    overwrite: bool = False,
    resume: bool = False,
    command: str = "train",
) -> Iterator[Path]:
    """Create (or, with ``resume``, reopen) a run folder and hold its lock while the block runs.

    Parameters
    ----------
    out : the folder, used as given (``--out``); with ``resume``, the run to continue.
        Without it: ``runs/NAME``, or ``runs/NAME-2``, ``-3``... when NAME is taken, and
        ``runs/PREFIX-DATE-TIME`` when no name is given (always a new folder).
    overwrite : ``out`` holds another run: delete its files first (only a folder that
        :func:`is_run_folder` recognises is ever cleared). Without it such a folder is
        refused, so that two runs never mix their files.
    resume : ``out`` is a run to continue in place: it must exist and look like a run.
    command : the command writing the run, shown to a second writer that is refused.

    Raises :class:`ObjrecError`, before creating anything, when the folder is a file,
    holds files that are not an objrec run, holds a run and ``overwrite`` is not given,
    or is being written by another run (another process, or another ``open_run`` of
    this process).
    """
    if resume and overwrite:
        raise ObjrecError("--resume continues a run and --overwrite replaces it: give only one")
    if resume and out is None:
        raise ObjrecError("resume needs the folder of the run to continue")
    if out is None:
        if name is None:
            name = f"{prefix}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
        folder, i = DEFAULT_ROOT / name, 2
        while True:
            try:
                folder.mkdir()
                break
            except FileExistsError:
                folder, i = DEFAULT_ROOT / f"{name}-{i}", i + 1
    else:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ObjrecError(f"{folder}: is a file, not a run folder; give a folder for --out")
        if resume and not is_run_folder(folder):
            raise ObjrecError(
                f"{folder}: not an objrec run folder (no config.json); give a folder written "
                "by objrec train"
            )
        entries = _entries(folder)
        if entries and not is_run_folder(folder):
            raise ObjrecError(
                f"{folder}: not empty ({_shown(entries)}) and not an objrec run folder; "
                "objrec writes a run only into a new or empty folder: choose another --out"
            )
        if str(folder.resolve()) in _HELD:
            raise ObjrecError(f"{folder}: this process is already writing a run into this folder")
        folder.mkdir(parents=True, exist_ok=True)
    was_run = is_run_folder(folder)  # before the lock file below marks it as one
    with lock_run_folder(folder, command=command):
        entries = _entries(folder)  # again, under the lock: another run may have just ended
        if entries and not resume:
            if not was_run:  # files appeared since the check above
                raise ObjrecError(
                    f"{folder}: not empty ({_shown(entries)}) and not an objrec run folder; "
                    "choose another --out"
                )
            if not overwrite:
                raise ObjrecError(
                    f"{folder}: holds another run ({_shown(entries)}); give --overwrite to "
                    "replace it"
                    + (f", --resume {folder} to continue it" if command in RESUMABLE else "")
                    + ", or write to another folder (--out)"
                )
            _clear(folder)
        yield folder
