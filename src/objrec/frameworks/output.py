"""The frameworks comparison's outputs: a text table, ``frameworks.json``/``.csv`` and
``frameworks.html`` (objrec's report style: the source notes' opinion table next to the
measured rows, and validation accuracy against wall time for every framework)."""

from __future__ import annotations

import base64
import csv
import datetime
import io
from pathlib import Path

from objrec.frameworks import NOTES_COLUMNS, NOTES_TABLE
from objrec.io import atomic_write_bytes, write_json

#: (key, heading, format) of the measured table, in the text table and the page.
COLUMNS = (
    ("framework", "framework", "{}"),
    ("test_acc", "test acc", "{:.2%}"),
    ("final_val_acc", "val acc", "{:.2%}"),
    ("first_epoch_seconds", "1st epoch s", "{:.1f}"),
    ("later_epoch_seconds", "epoch s", "{:.1f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("seconds_to_pytorch_acc", "to PyTorch acc s", "{:.1f}"),
    ("import_seconds", "import s", "{:.1f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
    ("params", "params", "{:,}"),
    ("lines", "lines", "{}"),
    ("exports_text", "exports", "{}"),
)
TIPS = {
    "test acc": "fraction of the test split classified right after the last epoch",
    "val acc": "validation accuracy after the last epoch",
    "1st epoch s": "wall seconds of the first epoch with its validation, from the call that "
    "starts training: includes set-up, graph tracing and compilation",
    "epoch s": "mean wall seconds of the later epochs (training and validation)",
    "train s": "wall seconds of all epochs",
    "to PyTorch acc s": "training seconds until the validation accuracy first reached the "
    "PyTorch hand loop's final one (- : never)",
    "import s": "seconds to import the framework in a fresh process",
    "peak RSS MiB": "peak resident memory of the framework's process (getrusage): the "
    "framework, the data and the training",
    "params": "trainable parameters (121,930 for 28x28x1 and 10 classes)",
    "exports": "deployment formats exported and run locally: agreement of their predictions "
    "with the framework's own on 256 test images (and the largest output difference)",
    "lines": "code lines of the framework's file (no blank lines, comments or docstrings)",
}


def exports_text(row: dict) -> str | None:
    """``onnx 100% (2e-06)``, one entry per exported format; None when nothing was exported."""
    parts = []
    for e in row.get("exports") or []:
        if "error" in e:
            parts.append(f"{e['format']} failed")
        else:
            parts.append(f"{e['format']} {e['agreement']:.0%} ({e['max_abs_diff']:.0e})")
    return ", ".join(parts) or None


def _cell(row: dict, key: str, fmt: str) -> str:
    v = exports_text(row) if key == "exports_text" else row.get(key)
    return "-" if v is None else fmt.format(v)


def format_table(rows: list[dict]) -> str:
    """Plain text table; a row that did not run shows its status and note."""
    head = [c[1] for c in COLUMNS]
    body = []
    notes = []
    for r in rows:
        if r.get("status") == "ok":
            body.append([_cell(r, k, f) for k, _, f in COLUMNS])
        else:
            body.append([r["framework"], r["status"], *[""] * (len(COLUMNS) - 2)])
            notes.append(f"{r['framework']}: {r['note']}")
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in (head, *body)
    ]
    return "\n".join(lines + notes)


SCALARS = (
    "framework", "label", "status", "note", "notes_column", "test_acc", "final_val_acc",
    "first_epoch_seconds", "later_epoch_seconds", "train_seconds", "seconds_to_pytorch_acc",
    "pytorch_val_acc_target", "import_seconds", "peak_rss_mib", "params", "lines", "threads",
    "process_seconds",
)  # fmt: skip


def write_tables(folder: Path, rows: list[dict], config: dict) -> None:
    """``frameworks.json`` (config and full rows, per-epoch lists included) and
    ``frameworks.csv`` (one line per framework, the scalar columns)."""
    write_json(folder / "frameworks.json", {"config": config, "rows": rows})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SCALARS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in SCALARS})
    atomic_write_bytes(folder / "frameworks.csv", buf.getvalue().encode())


def accuracy_time_figure(rows: list[dict]):
    """Validation accuracy (y, 0..1) against cumulative wall seconds (x), one line per
    framework that ran."""
    from objrec.report.plots import new_figure

    fig = new_figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for r in rows:
        if r.get("status") == "ok":
            ax.plot(r["wall_seconds"], r["val_acc"], marker="o", label=r["framework"])
    ax.set_xlabel("wall seconds since training started")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return fig


def write_html(folder: Path, rows: list[dict], config: dict) -> Path:
    """``frameworks.html`` (self-contained) and ``plots/val-acc-vs-time.png``."""
    import jinja2

    from objrec.report.plots import to_png

    png = to_png(accuracy_time_figure(rows))
    (folder / "plots").mkdir(exist_ok=True)
    atomic_write_bytes(folder / "plots" / "val-acc-vs-time.png", png)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("objrec", "report/templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    measured = [
        {
            "ok": r.get("status") == "ok",
            "label": r["label"],
            "notes_column": r["notes_column"],
            "cells": [_cell(r, k, f) for k, _, f in COLUMNS],
            "status": r.get("status"),
            "note": r.get("note", ""),
        }
        for r in rows
    ]
    html = env.get_template("frameworks.html.j2").render(
        title=f"Four frameworks, one network: {config['dataset']}",
        config=config,
        columns=[(h, TIPS.get(h, "")) for _, h, _ in COLUMNS],
        rows=measured,
        notes_columns=NOTES_COLUMNS,
        notes_table=NOTES_TABLE,
        plot="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    )
    path = folder / "frameworks.html"
    atomic_write_bytes(path, html.encode())
    return path
