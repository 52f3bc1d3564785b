"""Download a file from a list of mirrors: checksum-verified, resumable, atomic.

The file is streamed into ``<dest>.part`` next to the destination. A broken transfer is
resumed with an HTTP ``Range`` request (or restarted when the server ignores it), up to
``retries`` times per mirror; the finished file is checked against its MD5 and only then
renamed to ``dest`` (so ``dest`` is either absent or complete and verified).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from objrec.errors import DatasetError

USER_AGENT = "objrec (+https://github.com/objrec/objrec)"
_BLOCK = 1 << 16


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file's bytes."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Incomplete(Exception):
    """The connection ended before the announced number of bytes arrived."""


def _transfer(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its current size)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # server ignored the range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        from objrec.progress import progress as progress_bar

        with (
            open(part, "ab" if have else "wb") as f,
            progress_bar(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                enabled=progress,
            ) as bar,
        ):
            got = have
            while True:
                try:
                    block = resp.read(_BLOCK)
                except http.client.IncompleteRead as e:
                    f.write(e.partial)
                    raise _Incomplete(
                        f"connection closed after {got + len(e.partial)} bytes"
                    ) from e
                if not block:
                    break
                f.write(block)
                got += len(block)
                bar.update(len(block))
        if total is not None and got < total:
            raise _Incomplete(f"connection closed after {got} of {total} bytes")


def download(
    urls: Sequence[str],
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Fetch ``dest`` from the first mirror in ``urls`` that delivers the right bytes.

    Parameters
    ----------
    urls : full URLs of the same file, tried in order.
    dest : final path; written only when the download is complete and verified.
    md5 : expected hex MD5 of the downloaded bytes (skip the check if None).
    retries : extra attempts per mirror after a broken transfer (each resumes).
    timeout : seconds without data before a connection counts as broken.
    backoff : seconds before the first retry, doubled each time.

    Raises :class:`DatasetError` listing every mirror and why it failed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in urls:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, timeout, progress, dest.name)
            except _Incomplete as e:
                reason = f"{url}: broken transfer ({e})"
            except urllib.error.HTTPError as e:
                part.unlink(missing_ok=True)
                failures.append(f"{url}: HTTP {e.code} {e.reason}")
                break  # the server answered; retrying the same URL will not help
            except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as e:
                cause = getattr(e, "reason", None) or e
                reason = f"{url}: {cause}"
                if isinstance(cause, socket.gaierror | ConnectionRefusedError):
                    failures.append(reason)  # no such host / nothing listening: next mirror
                    break
            else:
                got = md5sum(part) if md5 else None
                if md5 and got != md5.lower():
                    part.unlink(missing_ok=True)
                    failures.append(f"{url}: checksum mismatch (MD5 {got}, expected {md5})")
                    break
                os.replace(part, dest)
                return dest
            if attempt == retries:
                failures.append(reason)
            elif backoff:
                time.sleep(backoff * 2**attempt)
    part.unlink(missing_ok=True)
    raise DatasetError(f"could not download {dest.name}: " + ("; ".join(failures) or "no mirrors"))
