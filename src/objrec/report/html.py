"""``report.html``: one self-contained file (every image embedded as base64 PNG).

:func:`write_report` draws every figure of a comparison (also saved as PNG files in
``plots/``), then renders ``templates/report.html.j2`` with Jinja2 (autoescaped).
"""

from __future__ import annotations

import base64
import datetime
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from objrec.io import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class Picture:
    """A figure as it goes into the page: title, caption, PNG as a data URI, file name."""

    title: str
    caption: str
    src: str
    file: str
    wide: bool = False


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


class _Plots:
    """Renders figures to PNG once: file in ``plots/`` and data URI for the page."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.used: set[str] = set()

    def add(self, fig, name: str, title: str, caption: str = "", wide: bool = False) -> Picture:
        from objrec.report.plots import to_png

        base = _slug(name)
        stem, i = base, 2
        while stem in self.used:
            stem, i = f"{base}-{i}", i + 1
        self.used.add(stem)
        png = to_png(fig)
        atomic_write_bytes(self.folder / f"{stem}.png", png)
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return Picture(title, caption, src, f"plots/{stem}.png", wide)


#: Tooltips of the comparison table's columns (by their heading in TABLE_COLUMNS).
COLUMN_TIPS = {
    "test acc": "fraction of the test images classified right",
    "bal acc": "balanced accuracy: the mean of the per-class accuracies",
    "macro F1": "F1 score averaged over classes, each class counting the same",
    "val acc": "accuracy on the validation split (used to pick the best method)",
    "ECE": "expected calibration error: the gap between confidence and accuracy "
    "(methods with probabilities only)",
    "fit s": "wall-clock seconds to fit on the training split",
    "img/s": "inference throughput, images per second in batches",
    "1-img ms": "milliseconds to classify one image on its own (median)",
    "size": "the saved model folder on disk",
    "peak MiB": "peak resident memory while fitting, above a baseline taken just before "
    "(after garbage collection and after returning the memory earlier methods freed to the "
    "operating system): the method's own working memory, sampled every 5 ms, without the "
    "interpreter, the loaded libraries or worker processes",
}
CI_HEAD = "95% CI"


def _fmt_table(
    rows: list[dict[str, Any]], n_test: int | None = None
) -> tuple[list[dict[str, str]], list[list[str]]]:
    """Headings (``label``, ``tip``) and formatted cells of the comparison table; with a
    small test set (``n_test`` below SMALL_TEST) a Wilson interval column follows test acc."""
    from objrec.evaluation.intervals import SMALL_TEST, accuracy_interval
    from objrec.evaluation.table import TABLE_COLUMNS, format_cell

    labels = ["#", *(c[1] for c in TABLE_COLUMNS)]
    body = [
        [str(i + 1), *(format_cell(r.get(k), fmt) for k, _, fmt in TABLE_COLUMNS)]
        for i, r in enumerate(rows)
    ]
    tips = dict(COLUMN_TIPS)
    if n_test and n_test < SMALL_TEST:
        at = labels.index("test acc") + 1
        labels.insert(at, CI_HEAD)
        tips[CI_HEAD] = (
            f"95% Wilson interval of the test accuracy: on only {n_test:,} test images "
            "another sample could give any accuracy in this range"
        )
        for r, cells in zip(rows, body, strict=True):
            cells.insert(at, _ci_text(accuracy_interval(r["test_accuracy"], n_test)))
    head = [{"label": h, "tip": tips.get(h, "")} for h in labels]
    return head, body


def _ci_text(ci: tuple[float, float]) -> str:
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def _chance_level(y) -> float | None:
    """Accuracy of always answering the most frequent class of ``y`` (1/K when balanced)."""
    y = np.asarray(y)
    if not len(y):
        return None
    return float(np.unique(y, return_counts=True)[1].max() / len(y))


def _method_section(result, dataset, plots: _Plots) -> dict[str, Any]:
    from objrec.evaluation.metrics import encode
    from objrec.report import plots as P
    from objrec.report.learned import learned_figures

    m = result.metrics
    names = [c["class"] for c in m["per_class"]]
    X = dataset.test.X
    y_idx = encode(dataset.test.y, result.estimator.classes_)
    key = result.name
    results_pics: list[Picture] = []
    results_pics.append(
        plots.add(
            P.confusion_matrix_figure(
                np.asarray(m["confusion_matrix_normalized"]),
                np.asarray(m["confusion_matrix"]),
                names,
            ),
            f"{key}-confusion",
            "Confusion matrix",
            "Rows: true class, columns: prediction; colour is the fraction of the row, numbers are counts.",
        )
    )
    results_pics.append(
        plots.add(
            P.per_class_accuracy_figure(m["per_class"]),
            f"{key}-per-class",
            "Per-class accuracy",
            "Fraction of each class's test images classified right (recall). Red: weak classes, "
            f"more than {P.WEAK_MARGIN:.0%} below the mean per-class accuracy (dashed) with the "
            "mean outside the class's 95% Wilson interval; none when the classes do about as well.",
            wide=len(names) > 12,
        )
    )
    if m["top_losses"]:
        how = (
            "ranked by the probability given to the true class"
            if m["top_losses"][0].get("confidence") is not None
            else "ranked by the decision-score margin"
            if m["top_losses"][0].get("loss") is not None
            else ""
        )
        results_pics.append(
            plots.add(
                P.top_losses_figure(X, m["top_losses"], names),
                f"{key}-top-losses",
                "Top losses",
                f"The most confidently wrong test images ({how}): true → predicted"
                + (", with the predicted class's probability." if "probability" in how else "."),
                wide=True,
            )
        )
    if m.get("calibration"):
        results_pics.append(
            plots.add(
                P.calibration_figure(m["calibration"], m["ece"]),
                f"{key}-calibration",
                "Calibration",
                "Reliability diagram: when the method says 90% sure, is it right 90% of the time? "
                "Bars below the diagonal mean over-confidence.",
            )
        )
    learned: list[Picture] = []
    if result.history:
        for metric in ("loss", "accuracy"):
            learned.append(
                plots.add(
                    P.learning_curve_figure(result.history, metric),
                    f"{key}-curve-{metric}",
                    f"Learning curve: {metric}",
                    "Per epoch on the training split (with augmentation, if any) and the "
                    "validation split; the test split was never used in training.",
                )
            )
    for e in learned_figures(result, X, y_idx, names):
        learned.append(plots.add(e.figure, f"{key}-{e.title}", e.title, e.caption, e.wide))
    from objrec.evaluation.intervals import SMALL_TEST, accuracy_interval

    acc = f"{m['accuracy']:.2%}"
    if 0 < len(X) < SMALL_TEST:
        acc += f" (95% CI {_ci_text(accuracy_interval(m['accuracy'], len(X)))})"
    summary = [
        ("test accuracy", acc),
        ("balanced accuracy", f"{m['balanced_accuracy']:.2%}"),
        ("macro F1", f"{m['macro_f1']:.3f}"),
        (
            "validation accuracy",
            "-" if result.val_accuracy is None else f"{result.val_accuracy:.2%}",
        ),
    ]
    for k, v in (m.get("top_k_accuracy") or {}).items():
        if k != "1":
            summary.append((f"top-{k} accuracy", f"{v:.2%}"))
    if m.get("log_loss") is not None:
        summary += [("log loss", f"{m['log_loss']:.3f}"), ("ECE", f"{m['ece']:.3f}")]
    from objrec.evaluation.table import human_bytes

    c = result.cost
    costs = [
        ("fit time", f"{c['fit_seconds']:.1f} s"),
        ("fit peak memory", f"{c['fit_peak_mib']:.0f} MiB"),
        ("throughput", f"{c['images_per_second']:,.0f} images/s (batch {c['batch_size']})"),
        ("one image", f"{c['latency_ms']:.2f} ms"),
        ("model on disk", human_bytes(c["model_bytes"])),
    ]
    return {
        "name": result.name,
        "anchor": "m-" + _slug(result.name),
        "approach": result.approach,
        "description": result.description,
        "params": {k: v for k, v in result.params.items()},
        "summary": summary,
        "costs": costs,
        "confused": m["most_confused"][:6],
        "results": results_pics,
        "learned": learned,
        "has_proba": m.get("log_loss") is not None,
    }


APPROACH_TITLES = {
    "features": "Features + classifier",
    "bovw": "Bag of visual words",
    "eigen": "Eigenfaces (PCA)",
    "cnn": "Convolutional network",
}


ROBUSTNESS_FIGURES = {
    "accuracy_vs_severity": (
        "Accuracy against severity",
        "One panel per nuisance family, one line per method, each with its own marker; "
        "severity 0 is the clean test set. Methods whose curves coincide everywhere are named "
        "in the legend (same curve as ...) and drawn with hollow markers.",
    ),
    "samples": (
        "One test image at every severity",
        "What each nuisance does at severities 0 (clean) to 5, so the numbers can be judged.",
    ),
}


def _robustness_pictures(robustness, plots: _Plots) -> list[Picture]:
    """Figures of the invariance suite (drawn by :mod:`objrec.report.robustness_plots`)."""
    if not robustness:
        return []
    out = []
    for name, fig in (robustness.get("figures") or {}).items():
        title, caption = ROBUSTNESS_FIGURES.get(name, (name.replace("_", " "), ""))
        out.append(plots.add(fig, f"robustness-{name}", title, caption, wide=True))
    return out


def _robustness_table(robustness) -> dict[str, Any] | None:
    """Head and body (formatted cells) of the suite's summary: accuracy per family, mCE."""
    rows = (robustness or {}).get("summary") or []
    if not rows:
        return None
    keys = list(rows[0])
    head = [k.replace("_", " ") for k in keys]
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            if v is None:
                cells.append("-")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}" if "mCE" in k else f"{v:.1%}")
            else:
                cells.append(str(v))
        body.append(cells)
    return {"head": head, "body": body}


def render(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """The HTML page for ``context`` from a Jinja2 template of ``templates/`` (default the
    comparison report, see :func:`write_report`; ``segmentation.html.j2``: see
    :mod:`objrec.report.segmentation`). Both share the style sheet ``_style.html.j2``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("objrec.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env.get_template(template).render(**context)


def write_report(
    folder: str | Path,
    dataset,
    results: list,
    *,
    robustness=None,
    title: str | None = None,
    skipped: dict[str, str] | None = None,
) -> Path:
    """Draw every figure and write ``folder/report.html``; returns its path.

    ``results``: ranked :class:`~objrec.evaluation.compare.MethodResult` list;
    ``dataset``: the :class:`objrec.data.Dataset` they were trained and tested on;
    ``skipped``: methods that could not run on it, with the reason.
    """
    from objrec import __version__
    from objrec.report import plots as P
    from objrec.report.learned import sample_images_figure

    folder = Path(folder)
    plots = _Plots(folder / "plots")
    rows = [r.row() for r in results]
    n_test = len(dataset.test.y)
    head, body = _fmt_table(rows, n_test)
    chance = _chance_level(dataset.test.y)
    from objrec.evaluation.intervals import SMALL_TEST

    classes = [str(c) for c in getattr(dataset, "classes", [])] or [
        str(c) for c in np.unique(dataset.train.y)
    ]
    overview = [
        plots.add(
            P.comparison_bars(rows, n_test=n_test, chance=chance),
            "comparison",
            "Accuracy and cost",
            "Test accuracy (axis from 0; the dashed line is the chance level, the accuracy of "
            "always answering the most frequent class"
            + (
                f"; error bars: 95% Wilson intervals, wide on {n_test:,} test images"
                if n_test < SMALL_TEST
                else ""
            )
            + "), fit time and inference throughput of each method on the same split.",
            wide=True,
        ),
    ]
    try:
        overview.append(
            plots.add(
                sample_images_figure(dataset.test.X, dataset.test.y, classes),
                "samples",
                "The data",
                "One test image per class.",
                wide=True,
            )
        )
    except (IndexError, ValueError) as e:  # labels that do not index the class list
        log.warning("sample images: %s", e)
    sections = [_method_section(r, dataset, plots) for r in results]
    with_val = [r for r in results if r.val_accuracy is not None]
    best = max(with_val, key=lambda r: r.val_accuracy).name if with_val else rows[0]["method"]
    shape = "×".join(str(s) for s in dataset.train.X.shape[1:])
    context = {
        "title": title or f"objrec comparison: {getattr(dataset, 'name', 'dataset')}",
        "dataset": {
            "name": getattr(dataset, "name", "dataset"),
            "source": str(getattr(dataset, "source", "")),
            "n_train": len(dataset.train.y),
            "n_val": len(dataset.val.y),
            "n_test": len(dataset.test.y),
            "shape": shape,
            "n_classes": len(classes),
            "classes": classes[:20],
        },
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "table_head": head,
        "table_rows": [
            {"cells": b, "anchor": "m-" + _slug(r["method"]), "best": r["method"] == best}
            for r, b in zip(rows, body, strict=True)
        ],
        "best": best,
        "overview": overview,
        "methods": sections,
        "approach_titles": APPROACH_TITLES,
        "skipped": skipped or {},
        "robustness": _robustness_pictures(robustness, plots),
        "robustness_table": _robustness_table(robustness),
        "robustness_baseline": getattr((robustness or {}).get("result"), "baseline", None),
        "chance": chance,
    }
    html = render(context)
    path = folder / "report.html"
    atomic_write_bytes(path, html.encode("utf-8"))
    return path
