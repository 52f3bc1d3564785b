"""Writing one benchmark's section of BENCHMARKS.md, leaving the others as they are."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(heading: str, text: str, *, keep: str | None = None) -> None:
    """Replace the ``## heading`` section of BENCHMARKS.md with ``text`` (append it when
    the section is new). ``keep``: the title of a ``### keep`` block inside the old section
    (e.g. a written reading of the numbers) that is carried over to the end of the new one.
    """
    doc = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    m = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", doc, flags=re.S | re.M)
    section = text.rstrip() + "\n"
    if m and keep:
        kept = re.search(rf"^### {re.escape(keep)}\n.*", m.group(0), flags=re.S | re.M)
        if kept:
            section += "\n" + kept.group(0).rstrip() + "\n"
    if m:
        rest = doc[m.end() :]
        doc = doc[: m.start()] + section + ("\n" if rest else "") + rest
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(doc)
