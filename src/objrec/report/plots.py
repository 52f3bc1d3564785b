"""Figures of a method's results: comparison bars, confusion matrix, per-class accuracy,
top losses, calibration, learning curves.

Each function returns a :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot state);
:func:`to_png` turns one into PNG bytes. Images are uint8 ``(N, H, W)`` grey or
``(N, H, W, 3)`` RGB, as everywhere in objrec.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

ACCENT = "#2563eb"
SECOND = "#f97316"
GOOD = "#16a34a"
BAD = "#dc2626"


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def show_image(ax, image: np.ndarray, **kw) -> None:
    """Draw one uint8 image (H, W) grey or (H, W, 3) RGB on ``ax`` without ticks."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        kw.setdefault("cmap", "gray")
        if img.dtype == np.uint8:
            kw.setdefault("vmin", 0)
            kw.setdefault("vmax", 255)
    ax.imshow(img, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def format_number(v: float) -> str:
    """A label for a positive quantity, never in exponent notation: thousands separated
    from 100 up ("1,257", "20,700"), three significant digits below ("12.3", "0.0456")."""
    v = float(v)
    if not np.isfinite(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    return np.format_float_positional(v, precision=3, unique=False, fractional=False, trim="-")


def comparison_bars(
    rows: Sequence[dict[str, Any]],
    *,
    n_test: int | None = None,
    chance: float | None = None,
) -> Figure:
    """Test accuracy, fit time and inference throughput of each method, side by side.

    The accuracy axis starts at 0. ``chance`` (a fraction: the accuracy of always
    answering the most frequent class) is drawn as a dashed line; with ``n_test`` below
    :data:`~objrec.evaluation.intervals.SMALL_TEST` each accuracy gets its 95% Wilson
    interval as an error bar.
    """
    from matplotlib.ticker import FuncFormatter

    from objrec.evaluation.intervals import SMALL_TEST, accuracy_interval

    names = [r["method"] for r in rows]
    y = np.arange(len(names))
    fig = new_figure(11, 0.45 * len(names) + 1.6)
    axes = fig.subplots(1, 3, sharey=True)
    specs = (
        ("test_accuracy", "test accuracy (%)", 100, ACCENT, False),
        ("fit_seconds", "fit time (s, log)", 1, SECOND, True),
        ("images_per_second", "inference (images/s, log)", 1, GOOD, True),
    )
    for ax, (key, label, scale, color, log) in zip(axes, specs, strict=True):
        vals = np.array([(r.get(key) or 0) * scale for r in rows], dtype=float)
        xerr = None
        if key == "test_accuracy" and n_test and n_test < SMALL_TEST:
            ci = np.array([accuracy_interval(v / 100, n_test) for v in vals]) * 100
            xerr = np.abs(ci.T - vals)
            label = f"test accuracy (%), 95% interval on {n_test:,} images"
        ax.barh(y, vals, color=color, xerr=xerr, ecolor="#374151", capsize=3)
        for i, (yi, v) in enumerate(zip(y, vals, strict=True)):
            txt = f"{v:.1f}" if key == "test_accuracy" else format_number(v)
            at = v if xerr is None else v + xerr[1, i]
            ax.text(at, yi, " " + txt, va="center", fontsize=8)
        ax.set_xlabel(label)
        if log:
            from matplotlib.ticker import LogLocator, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(numticks=5))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v)))
            ax.set_xlim(right=vals.max() * 8 if vals.max() > 0 else None)
        elif key == "test_accuracy":
            ax.set_xlim(0, 118)  # from 0: bar lengths compare; room for the labels
            ax.set_xticks([0, 20, 40, 60, 80, 100])
            if chance is not None:
                ax.axvline(
                    100 * chance,
                    color="#6b7280",
                    ls="--",
                    lw=1.2,
                    label=f"chance level {100 * chance:.1f}%",
                )
                ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), frameon=False)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    return fig


def confusion_matrix_figure(
    cm_normalized: np.ndarray, cm_counts: np.ndarray, class_names: Sequence[str]
) -> Figure:
    """Row-normalised confusion matrix as a heat map, annotated with counts (up to 20 classes)."""
    cmn = np.asarray(cm_normalized, dtype=float)
    cmc = np.asarray(cm_counts)
    k = len(class_names)
    side = min(8.0, 1.8 + 0.32 * k)
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    im = ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    ticks = np.arange(k)
    short = [n if len(n) <= 12 else n[:11] + "…" for n in class_names]
    ax.set_xticks(ticks, short, rotation=45 if k > 6 or max(map(len, short)) > 3 else 0, ha="right")
    ax.set_yticks(ticks, short)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cmc[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cmc[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7 if k > 12 else 8,
                        color="white" if cmn[i, j] > 0.5 else "black",
                    )
    return fig


WEAK_MARGIN = 0.10  # a class is weak this far (10 points) below the mean per-class accuracy


def weak_classes(per_class: Sequence[dict[str, Any]], margin: float = WEAK_MARGIN) -> list[bool]:
    """Which classes are weak: accuracy (recall) more than ``margin`` below the mean
    per-class accuracy, and the mean outside the class's 95% Wilson interval (so that a
    class of few images is not called weak for one miss). Classes with equal accuracy and
    support are marked alike; when every class does about as well, none is."""
    from objrec.evaluation.intervals import wilson_interval

    rec = np.array([float(c["recall"]) for c in per_class])
    if not len(rec):
        return []
    mean = float(rec.mean())
    out = []
    for c, r in zip(per_class, rec, strict=True):
        n = int(c.get("support") or 0)
        upper = wilson_interval(round(r * n), n)[1] if n else 1.0
        out.append(bool(r < mean - margin and upper < mean))
    return out


def per_class_accuracy_figure(per_class: Sequence[dict[str, Any]]) -> Figure:
    """Per-class accuracy (recall: fraction of each class's images classified right); weak
    classes (:func:`weak_classes`) in red, the mean per-class accuracy as a dashed line."""
    names = [c["class"] for c in per_class]
    rec = np.array([c["recall"] for c in per_class]) * 100
    k = len(names)
    fig = new_figure(min(12.0, max(5.0, 0.3 * k + 1.5)), 3.2)
    ax = fig.subplots()
    weak = weak_classes(per_class)
    colors = [BAD if w else ACCENT for w in weak]
    ax.bar(np.arange(k), rec, color=colors)
    ax.axhline(rec.mean(), color="0.4", linestyle="--", linewidth=1, label="mean")
    ax.set_xticks(
        np.arange(k), names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center"
    )
    lo = max(0.0, rec.min() - 5)
    ax.set_ylim(lo, 100.5)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    *,
    cols: int = 8,
    cell: float = 1.2,
    title_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of images with a small title above each (one Axes, see :mod:`.mosaic`)."""
    from objrec.report.mosaic import tile_figure, to_rgb

    fig, _, _ = tile_figure(
        [to_rgb(im) for im in images],
        cols=cols,
        titles=titles,
        title_colors=title_colors,
        cell=cell,
    )
    return fig


def top_losses_figure(
    images: np.ndarray, top: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> Figure:
    """The most confidently wrong test images: true class, prediction and p(predicted)."""
    titles = []
    for t in top:
        conf = f" {t['confidence']:.0%}" if t.get("confidence") is not None else ""
        titles.append(f"{class_names[t['true']]}→{class_names[t['pred']]}{conf}")
    return image_grid(
        images[[t["index"] for t in top]], titles, cols=8, title_colors=[BAD] * len(top)
    )


def calibration_figure(calibration: dict[str, Sequence[float]], ece: float) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, bar widths = bins, with counts."""
    edges = np.asarray(calibration["edges"])
    acc = np.asarray(calibration["accuracy"])
    conf = np.asarray(calibration["confidence"])
    count = np.asarray(calibration["count"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig = new_figure(7.5, 3.4)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.2, 1])
    nz = count > 0
    ax.bar(centers[nz], acc[nz], width=width * 0.95, color=ACCENT, alpha=0.85, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(conf[nz], acc[nz], "o", color=SECOND, ms=3, label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability, ECE = {ece:.3f}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax2.bar(centers, count, width=width * 0.95, color="grey")
    ax2.set_yscale("log")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence")
    ax2.set_ylabel("test images (log)")
    ax2.set_title("how many per bin", fontsize=10)
    return fig


def learning_curve_figure(history: Sequence[dict[str, Any]], metric: str) -> Figure:
    """One quantity (``"loss"`` or ``"accuracy"``) per epoch, training against validation."""
    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = new_figure(5.2, 3.3)
    ax = fig.subplots()
    for split, color, style in (("train", ACCENT, "-o"), ("val", SECOND, "-s")):
        vals = [h.get(f"{split}_{metric}") for h in history]
        pts = [(e, v) for e, v in zip(ep, vals, strict=True) if v is not None]
        if pts:
            e, v = zip(*pts, strict=True)
            v = np.asarray(v, dtype=float) * (100 if metric == "accuracy" else 1)
            ax.plot(
                e,
                v,
                style,
                color=color,
                ms=4,
                label="training" if split == "train" else "validation",
            )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)" if metric == "accuracy" else "cross-entropy loss")
    ax.set_title(f"{metric}: training vs validation", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_class_plots(
    metrics: dict[str, Any], folder, *, prefix: str = "", title: str = ""
) -> list:
    """``PREFIXconfusion.png`` and ``PREFIXper_class.png`` of ``metrics`` (what
    :func:`objrec.evaluation.metrics.evaluate_predictions` returns) into ``folder``, as
    ``objrec compare``'s report draws them; returns the paths written."""
    from pathlib import Path

    folder = Path(folder)
    names = [c["class"] for c in metrics["per_class"]]
    figs = {
        "confusion.png": confusion_matrix_figure(
            np.asarray(metrics["confusion_matrix_normalized"]),
            np.asarray(metrics["confusion_matrix"]),
            names,
        ),
        "per_class.png": per_class_accuracy_figure(metrics["per_class"]),
    }
    out = []
    for name, fig in figs.items():
        if title:
            fig.suptitle(title, fontsize=9)
        (folder / f"{prefix}{name}").write_bytes(to_png(fig))
        out.append(folder / f"{prefix}{name}")
    return out
