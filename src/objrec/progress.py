"""Progress of long work, readable on a terminal and in a log file alike.

Every progress report of objrec goes through :func:`progress`:

- on a terminal (stderr is a TTY): a tqdm bar, redrawn in place and removed when done;
- anywhere else (a file, a pipe, CI logs): no redrawing at all, i.e. no carriage returns
  and no cursor escapes; one plain line when a stage of :data:`MIN_SECONDS` or more ends
  (``hog features: 60,000 img in 12.4 s``) and, for a long stage, a line every :data:`LOG_INTERVAL` seconds with the count
  so far, much as Keras' ``verbose=2`` prints one line per epoch;
- nothing when disabled: by the caller (``enabled=False``) or for the whole process with
  :func:`silence` (what ``--quiet`` does, so that it also silences the bars of saved
  models, e.g. the classic methods' feature extraction during ``evaluate`` or ``predict``).

The object returned supports what objrec uses of tqdm's: iteration, ``update(n)``,
``set_postfix(...)``, ``close()`` and ``with``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

LOG_INTERVAL = 30.0  # seconds between the intermediate lines of a long stage off a terminal
MIN_SECONDS = 1.0  # off a terminal, stages shorter than this end without a line

_silenced = 0


def silence() -> None:
    """Turn every progress report of this process off (``--quiet``); undo with :func:`unsilence`."""
    global _silenced
    _silenced += 1


def unsilence() -> None:
    global _silenced
    _silenced = max(0, _silenced - 1)


@contextmanager
def silenced(on: bool = True):
    """Context manager: no progress reports inside when ``on``."""
    if on:
        silence()
    try:
        yield
    finally:
        if on:
            unsilence()


def is_silenced() -> bool:
    return _silenced > 0


def on_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    unit: str = "it",
    enabled: bool = True,
    **tqdm_kw: Any,
):
    """A progress report over ``iterable`` (or updated by hand with ``update(n)``).

    ``desc`` names the stage, ``total`` the count expected (default ``len(iterable)`` when
    it has one), ``unit`` what is counted; ``tqdm_kw`` are passed to tqdm on a terminal
    (e.g. ``unit_scale=True``). See the module docstring for what is shown where.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled or is_silenced():
        return _Silent(iterable)
    if on_terminal():
        from tqdm.auto import tqdm

        tqdm_kw.setdefault("leave", False)
        return tqdm(iterable, desc=desc, total=total, unit=unit, **tqdm_kw)
    return _Lines(iterable, desc=desc, total=total, unit=unit, scale=tqdm_kw.get("unit_scale"))


def write(line: str) -> None:
    """Print a line to stderr without breaking a bar being drawn on the terminal."""
    if on_terminal():
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


class _Silent:
    """Progress that shows nothing."""

    def __init__(self, iterable=None):
        self.iterable = iterable
        self.n = 0

    def __iter__(self) -> Iterator:
        yield from self.iterable or ()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *a, **k) -> None:
        pass

    def set_description(self, *a, **k) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Lines(_Silent):
    """Progress as plain lines on stderr: one when the stage ends, one every
    :data:`LOG_INTERVAL` seconds meanwhile. Never a carriage return or an escape code."""

    def __init__(self, iterable, *, desc: str, total: int | None, unit: str, scale=None):
        super().__init__(iterable)
        self.desc, self.total, self.unit, self.scale = desc, total, unit, scale
        self.t0 = self.last = time.perf_counter()
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= LOG_INTERVAL and (self.total is None or self.n < self.total):
            self.last = now
            of = f"/{self._count(self.total)}" if self.total else ""
            self._print(f"{self._count(self.n)}{of} {self.unit} ({now - self.t0:.0f} s)")

    def set_postfix(self, *a, **k) -> None:
        self.postfix = "  ".join(f"{key} {v}" for key, v in k.items())

    def _count(self, n) -> str:
        if self.scale and n >= 1024:
            for size, name in ((1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")):
                if n >= size:
                    return f"{n / size:.1f} {name}"
        return f"{n:,}"

    def _print(self, text: str) -> None:
        head = f"{self.desc}: " if self.desc else ""
        tail = f"  {self.postfix}" if self.postfix else ""
        print(f"{head}{text}{tail}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.n and time.perf_counter() - self.t0 >= MIN_SECONDS:
            self._print(
                f"{self._count(self.n)} {self.unit} in {time.perf_counter() - self.t0:.1f} s"
            )
