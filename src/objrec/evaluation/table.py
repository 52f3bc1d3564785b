"""The comparison table as text: its columns, cell formats and byte sizes.

Shared by ``objrec compare``/``evaluate`` (plain text) and the HTML report, so that both
show the same columns formatted the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TABLE_COLUMNS = (
    ("method", "method", "{}"),
    ("approach", "approach", "{}"),
    ("test_accuracy", "test acc", "{:.2%}"),
    ("balanced_accuracy", "bal acc", "{:.2%}"),
    ("macro_f1", "macro F1", "{:.3f}"),
    ("val_accuracy", "val acc", "{:.2%}"),
    ("ece", "ECE", "{:.3f}"),
    ("fit_seconds", "fit s", "{:.1f}"),
    ("images_per_second", "img/s", "{:,.0f}"),
    ("latency_ms", "1-img ms", "{:.2f}"),
    ("model_bytes", "size", "bytes"),
    ("fit_peak_mib", "peak MiB", "{:.0f}"),
)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if fmt == "bytes":
        return human_bytes(value)
    return fmt.format(value)


def format_table(rows: list[dict[str, Any]], columns=TABLE_COLUMNS) -> str:
    """A plain text table (one row per method) with right-aligned numbers."""
    head = ["#", *(c[1] for c in columns)]
    body = [
        [str(i + 1), *(format_cell(r.get(key), fmt) for key, _, fmt in columns)]
        for i, r in enumerate(rows)
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if j in (1, 2) else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(b) for b in body)])
