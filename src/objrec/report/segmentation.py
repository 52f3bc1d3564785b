"""The segmentation report: ``report.html`` of ``objrec segment compare`` / ``evaluate``.

One self-contained page in the style of the classification report (the same figure
store :class:`objrec.report.html._Plots`, PNGs also in ``plots/``, the same Jinja2
rendering and style sheet), with:

* the comparison of every method: a table of mIoU, pixel accuracy, Dice, PQ / SQ / RQ,
  mask AP, fit time and predict speed; bars of quality and cost side by side (classic
  and CNN methods on the same scenes); per-class IoU bars per method; and, with two
  methods or more, the test scenes on which they differ most, panoptic view;
* the colours (:mod:`objrec.segmentation.overlay`, the one owner) with a legend;
* per method: its figures, a per-class table (IoU, Dice, PQ, SQ, RQ, TP/FP/FN, mask AP)
  and its most right and most wrong test scenes (ranked by per-image PQ, then per-image
  mIoU: :func:`objrec.evaluation.segmentation.per_image_scores`) as image | truth |
  prediction in the semantic, instance and panoptic views.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from objrec.io import atomic_write_bytes

#: Approach ("classic" or "CNN") and a one-line description of each known method.
METHOD_INFO = {
    "forest": ("classic", "per-pixel random forest on a filter bank (the TextonBoost idea)"),
    "slic": ("classic", "SLIC superpixels, per-superpixel features and a classifier"),
    "unet": ("CNN", "a small U-Net trained with cross-entropy + Dice"),
}

#: Tooltips of the comparison table's columns.
COLUMN_TIPS = {
    "mIoU": "mean over labels (background included) of intersection over union, pixels "
    "of all test scenes pooled",
    "mIoU obj": "mIoU without the background label",
    "pixel acc": "fraction of the test pixels given the right label",
    "Dice": "mean over labels of 2 TP / (2 TP + FP + FN)",
    "PQ": "panoptic quality SQ x RQ, mean over the labels that occur",
    "PQ things": "PQ over the object classes only (background left out)",
    "SQ": "segmentation quality: mean IoU of the matched segments (IoU > 0.5)",
    "RQ": "recognition quality: TP / (TP + FP/2 + FN/2), an F1 score of segments",
    "mask AP": "COCO instance mask AP, mean over IoU 0.50:0.05:0.95 and classes",
    "AP50": "mask AP at IoU 0.5",
    "fit s": "wall-clock seconds to fit on the training scenes",
    "ms/img": "milliseconds per test image to predict the panoptic output (batch)",
    "img/s": "test images per second, the same measurement",
}
#: Method colours of the bar charts, in method order.
METHOD_COLOURS = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#7c3aed", "#0891b2")


@dataclass
class SegmentationResult:
    """One method's results on one split: ``metrics`` (what
    :func:`objrec.commands.segment.measure` returns, with ``fit_seconds`` when known),
    predicted ``semantic`` uint8 (N, H, W) and ``instances`` (N, H, W) of that split."""

    name: str
    metrics: dict
    semantic: np.ndarray
    instances: np.ndarray
    approach: str = ""
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        a, d = METHOD_INFO.get(self.name, ("", ""))
        self.approach = self.approach or a
        self.description = self.description or d


def _num(v, fmt: str = "{:.3f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return fmt.format(v)


def _row(r: SegmentationResult) -> dict[str, Any]:
    m = r.metrics
    s, p, a = m["semantic"], m["panoptic"], m["mask_ap"]
    ms = m.get("predict_ms_per_image")
    return {
        "method": r.name,
        "approach": r.approach or "-",
        "mIoU": s["miou"],
        "mIoU obj": s["miou_objects"],
        "pixel acc": s["pixel_accuracy"],
        "Dice": s["mean_dice"],
        "PQ": p["pq"],
        "PQ things": p["pq_things"],
        "SQ": p["sq"],
        "RQ": p["rq"],
        "mask AP": a["ap"],
        "AP50": a["ap50"],
        "fit s": m.get("fit_seconds"),
        "ms/img": ms,
        "img/s": 1000 / ms if ms else None,
    }


_FORMATS = {"fit s": "{:,.1f}", "ms/img": "{:.2f}", "img/s": "{:,.0f}"}


def _table(rows: list[dict]) -> tuple[list[dict], list[list[str]]]:
    keys = [k for k in rows[0] if k not in ("method", "approach", "img/s")]  # img/s: the figure
    head = [{"label": "method", "tip": ""}, {"label": "approach", "tip": ""}]
    head += [{"label": k, "tip": COLUMN_TIPS.get(k, "")} for k in keys]
    body = [
        [r["method"], r["approach"], *(_num(r[k], _FORMATS.get(k, "{:.3f}")) for k in keys)]
        for r in rows
    ]
    return head, body


def _per_class_table(r: SegmentationResult, legend: list[dict]) -> list[dict]:
    s, p, a = r.metrics["semantic"], r.metrics["panoptic"], r.metrics["mask_ap"]
    out = []
    for e in legend:
        c = e["label"]
        pc = p["per_class"][c] if c < len(p["per_class"]) else {}
        out.append(
            {
                "colour": e["colour"],
                "cells": [
                    str(c),
                    e["name"],
                    _num(s["iou"][c] if c < len(s["iou"]) else None),
                    _num(s["dice"][c] if c < len(s["dice"]) else None),
                    _num(pc.get("pq")),
                    _num(pc.get("sq")),
                    _num(pc.get("rq")),
                    str(pc.get("tp", "-")),
                    str(pc.get("fp", "-")),
                    str(pc.get("fn", "-")),
                    _num(a["per_class"][c] if c < len(a["per_class"]) else None),
                ],
            }
        )
    return out


PER_CLASS_HEAD = ["label", "class", "IoU", "Dice", "PQ", "SQ", "RQ", "TP", "FP", "FN", "mask AP"]


# ----------------------------------------------------------------------------- figures


def quality_cost_figure(rows: list[dict]):
    """Three panels, one bar (group) per method: mIoU, PQ and mask AP (axis 0..1), fit
    time (seconds, log) and predict speed (test images per second, log). A method without
    a measured fit time gets no bar and the note "not measured"."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from objrec.report.plots import format_number, new_figure

    names = [r["method"] for r in rows]
    y = np.arange(len(names))
    fig = new_figure(11, 0.55 * len(names) + 1.7)
    axes = fig.subplots(1, 3, sharey=True, width_ratios=[1.4, 1, 1])
    ax = axes[0]
    h = 0.26
    for j, (key, colour) in enumerate(
        (("mIoU", "#2563eb"), ("PQ", "#f97316"), ("mask AP", "#16a34a"))
    ):
        vals = np.array([r[key] if r[key] is not None else np.nan for r in rows], float)
        at = y + (j - 1) * h
        ax.barh(at, np.nan_to_num(vals), height=h, color=colour, label=key)
        for yi, v in zip(at, vals, strict=True):
            ax.text(np.nan_to_num(v), yi, " " + _num(v, "{:.2f}"), va="center", fontsize=7)
    ax.set_xlim(0, 1.15)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("score (0..1)")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncols=3, frameon=False)
    for ax, key, label, colour in (
        (axes[1], "fit s", "fit time (s, log)", "#6b7280"),
        (axes[2], "img/s", "predict speed (test images/s, log)", "#7c3aed"),
    ):
        vals = [r[key] for r in rows]
        good = [v for v in vals if v]
        for yi, v in zip(y, vals, strict=True):
            if v:
                ax.barh(yi, v, color=colour)
                ax.text(v, yi, " " + format_number(v), va="center", fontsize=8)
            else:
                ax.text(1, yi, " not measured", va="center", fontsize=8, color="#6b7280")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(numticks=5))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v)))
        if good:
            ax.set_xlim(min(min(good) / 3, 1), max(good) * 8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].grid(axis="x", alpha=0.3)
    return fig


def per_class_iou_figure(results: list[SegmentationResult], names: list[str]):
    """Grouped bars: IoU (0..1) of every label (background first), one bar per method in
    :data:`METHOD_COLOURS`; a label a method's masks and the truth both lack has no bar."""
    from objrec.report.plots import new_figure

    k = len(names)
    fig = new_figure(min(12.0, max(5.5, 0.55 * k * max(1, len(results)) ** 0.5 + 2)), 3.4)
    ax = fig.subplots()
    w = 0.8 / max(len(results), 1)
    x = np.arange(k)
    for j, r in enumerate(results):
        iou = np.array([v if v is not None else np.nan for v in r.metrics["semantic"]["iou"]])
        iou = np.concatenate([iou, np.full(max(0, k - len(iou)), np.nan)])[:k]
        ax.bar(
            x + (j - (len(results) - 1) / 2) * w,
            iou,
            width=w,
            color=METHOD_COLOURS[j % len(METHOD_COLOURS)],
            label=r.name,
        )
    ax.set_xticks(x, names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("IoU")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(results), 4), loc="lower left", bbox_to_anchor=(0, 1),
              frameon=False)  # fmt: skip
    return fig


def cases_figure(images, true_sem, true_inst, r: SegmentationResult, idx, scores, n_labels):
    """Rows = test scenes ``idx``; columns: image, then truth and prediction side by side
    in the semantic, instance and panoptic views (:mod:`objrec.segmentation.overlay`;
    predicted objects matched to a true one share its colour). Row labels: scene index,
    per-image PQ and mIoU."""
    from objrec.report.mosaic import tile_figure
    from objrec.segmentation import overlay as O

    cols = ["image", "true semantic", "predicted", "true instances", "predicted",
            "true panoptic", "predicted"]  # fmt: skip
    tiles, titles, labels = [], [], []
    for row, i in enumerate(idx):
        img, ts, ti = images[i], true_sem[i], true_inst[i]
        ps = r.semantic[i]
        pi = O.align_instances(ti, r.instances[i])
        pics = [
            img,
            O.semantic_overlay(img, ts, n_labels),
            O.semantic_overlay(img, ps, n_labels),
            O.instance_overlay(img, ti),
            O.instance_overlay(img, pi),
            O.panoptic_overlay(img, ts, ti, n_labels),
            O.panoptic_overlay(img, ps, pi, n_labels),
        ]
        tiles += [p.astype(np.float64) / 255 for p in pics]
        titles += cols if row == 0 else [""] * len(cols)
        labels.append(f"scene {int(i)}\nPQ {scores['pq'][i]:.2f}\nmIoU {scores['miou'][i]:.2f}")
    fig, _, _ = tile_figure(tiles, cols=len(cols), titles=titles, row_labels=labels, cell=1.25,
                            label_width=0.9)  # fmt: skip
    return fig


def side_by_side_figure(images, true_sem, true_inst, results, idx, per_image, n_labels):
    """Rows = test scenes ``idx``; columns: image, true panoptic, each method's panoptic
    prediction, titled with its per-image PQ."""
    from objrec.report.mosaic import tile_figure
    from objrec.segmentation import overlay as O

    tiles, titles = [], []
    for i in idx:
        img, ts, ti = images[i], true_sem[i], true_inst[i]
        tiles += [img / 255.0, O.panoptic_overlay(img, ts, ti, n_labels) / 255.0]
        titles += [f"scene {int(i)}", "truth"]
        for r in results:
            pi = O.align_instances(ti, r.instances[i])
            tiles.append(O.panoptic_overlay(img, r.semantic[i], pi, n_labels) / 255.0)
            titles.append(f"{r.name} PQ {per_image[r.name]['pq'][i]:.2f}")
    fig, _, _ = tile_figure(tiles, cols=2 + len(results), titles=titles, cell=1.4)
    return fig


def pick_cases(scores: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(right, wrong): indices of the ``k`` scenes of highest per-image PQ (ties: higher
    mIoU first) and of the ``k`` lowest (worst first), never the same scene twice (with
    fewer than 2 k scenes the right ones take the larger half)."""
    pq = np.nan_to_num(np.asarray(scores["pq"], float), nan=-1.0)
    miou = np.nan_to_num(np.asarray(scores["miou"], float), nan=-1.0)
    n = len(pq)
    order = np.lexsort((miou, pq))  # ascending: worst first
    n_right = min(k, (n + 1) // 2)
    n_wrong = min(k, n - n_right)
    return order[::-1][:n_right], order[:n_wrong]


# ----------------------------------------------------------------------------- the page


def write_segmentation_report(
    folder,
    split,
    classes,
    results: list[SegmentationResult],
    *,
    dataset: str = "scenes",
    split_name: str = "test",
    info: dict | None = None,
    title: str | None = None,
    n_cases: int = 3,
    file_name: str = "report.html",
    plot_prefix: str = "",
) -> Path:
    """Draw every figure and write ``folder/file_name``; returns its path.

    Parameters
    ----------
    split : the evaluated scenes: ``images`` uint8 (N, H, W, 3), ``semantic`` (N, H, W),
        ``instances`` (N, H, W) (a :class:`objrec.data.scenes.SceneSplit`).
    classes : object class names (semantic label c + 1 is ``classes[c]``).
    results : one :class:`SegmentationResult` per method, predictions on ``split``.
    info : extra facts for the page header (e.g. ``{"training scenes": 10000}``).
    n_cases : right and wrong scenes shown per method.
    plot_prefix : put before every file name in ``plots/`` (several reports, one folder).
    """
    from objrec import __version__
    from objrec.errors import InputError
    from objrec.evaluation.segmentation import per_image_scores
    from objrec.report.html import _Plots, _slug, render
    from objrec.segmentation.base import IGNORE
    from objrec.segmentation.overlay import ALPHA, DIM, legend

    if not results:
        raise InputError("a segmentation report needs at least one method's results")
    folder = Path(folder)
    images, true_sem, true_inst = split.images, split.semantic, split.instances
    n_labels = len(classes) + 1
    for r in results:
        if r.semantic.shape != true_sem.shape or r.instances.shape != true_sem.shape:
            raise InputError(
                f"{r.name}: predictions {r.semantic.shape} / {r.instances.shape} do not match "
                f"the {split_name} masks {true_sem.shape}"
            )
    plots = _Plots(folder / "plots")
    pfx = plot_prefix
    leg = legend(classes)
    names = [e["name"] for e in leg]
    rows = [_row(r) for r in results]
    head, body = _table(rows)
    best = max(rows, key=lambda r: -1 if r["PQ"] is None or not math.isfinite(r["PQ"]) else r["PQ"])
    per_image = {
        r.name: per_image_scores(
            true_sem, true_inst, r.semantic, r.instances, n_labels, ignore_index=IGNORE
        )
        for r in results
    }
    overview = [
        plots.add(
            quality_cost_figure(rows),
            f"{pfx}comparison",
            "Quality and cost",
            "mIoU, PQ and mask AP on the same test scenes (0 to 1, longer is better), fit time "
            "on the training scenes and predict speed (panoptic output, batch) of each method.",
            wide=True,
        ),
        plots.add(
            per_class_iou_figure(results, names),
            f"{pfx}per-class-iou",
            "Per-class IoU",
            "Intersection over union of every label's pixels (background first), one bar per "
            "method; no bar where neither the truth nor the prediction holds the label.",
            wide=True,
        ),
    ]
    if len(results) > 1 and len(images):
        spread = np.nanmax([per_image[r.name]["pq"] for r in results], 0) - np.nanmin(
            [per_image[r.name]["pq"] for r in results], 0
        )
        idx = np.argsort(-np.nan_to_num(spread), kind="stable")[: min(4, len(images))]
        overview.append(
            plots.add(
                side_by_side_figure(images, true_sem, true_inst, results, idx, per_image, n_labels),
                f"{pfx}side-by-side",
                "Side by side: where the methods differ most",
                "The test scenes with the largest spread of per-image PQ between the methods: "
                "the true panoptic map and each method's, with its PQ on that scene.",
                wide=True,
            )
        )
    sections = []
    for r in results:
        m = r.metrics
        s, p, a = m["semantic"], m["panoptic"], m["mask_ap"]
        right, wrong = pick_cases(per_image[r.name], n_cases)
        pics = []
        for which, idx, what in (
            ("right", right, "highest"),
            ("wrong", wrong, "lowest"),
        ):
            if not len(idx):
                continue
            pics.append(
                plots.add(
                    cases_figure(images, true_sem, true_inst, r, idx, per_image[r.name], n_labels),
                    f"{pfx}{r.name}-{which}",
                    f"{which.capitalize()} cases",
                    f"The {len(idx)} {split_name} scenes of {what} per-image PQ (ties: mIoU) for "
                    f"{r.name}: the image, then truth and prediction in the semantic view (one "
                    "colour per class), the instance view (one colour per object) and "
                    "the panoptic view (class colour shaded per object). A predicted object "
                    "matching a true one (IoU > 0.5) has its colour.",
                    wide=True,
                )
            )
        ms = m.get("predict_ms_per_image")
        fit = m.get("fit_seconds")
        summary = [
            ("mIoU", _num(s["miou"])),
            ("mIoU objects", _num(s["miou_objects"])),
            ("pixel accuracy", _num(s["pixel_accuracy"], "{:.2%}")),
            ("mean Dice", _num(s["mean_dice"])),
            ("PQ", _num(p["pq"])),
            ("PQ things / stuff", f"{_num(p['pq_things'])} / {_num(p['pq_stuff'])}"),
            ("SQ / RQ", f"{_num(p['sq'])} / {_num(p['rq'])}"),
            ("mask AP (AP50, AP75)", f"{_num(a['ap'])} ({_num(a['ap50'])}, {_num(a['ap75'])})"),
        ]
        costs = [
            ("fit time", "not measured" if fit is None else f"{fit:,.1f} s"),
            ("training scenes", _num(m.get("train_scenes"), "{:,}")),
            ("predict", "-" if not ms else f"{ms:.2f} ms per image ({1000 / ms:,.0f} images/s)"),
        ]
        sections.append(
            {
                "name": r.name,
                "anchor": "m-" + _slug(r.name),
                "approach": r.approach,
                "description": r.description,
                "params": r.params,
                "summary": summary,
                "costs": costs,
                "per_class": _per_class_table(r, leg),
                "cases": pics,
            }
        )
    side = "×".join(str(v) for v in images.shape[1:3])
    context = {
        "title": title or f"objrec segmentation: {dataset}",
        "dataset": {
            "name": dataset,
            "split": split_name,
            "n": len(images),
            "shape": side,
            "n_classes": len(classes),
            "info": dict(info or {}),
        },
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "table_head": head,
        "table_rows": [
            {"cells": b, "anchor": "m-" + _slug(r["method"]), "best": r is best}
            for r, b in zip(rows, body, strict=True)
        ],
        "best": best["method"],
        "overview": overview,
        "legend": leg,
        "alpha": ALPHA,
        "dim": DIM,
        "per_class_head": PER_CLASS_HEAD,
        "methods": sections,
    }
    html = render(context, template="segmentation.html.j2")
    path = folder / file_name
    atomic_write_bytes(path, html.encode("utf-8"))
    return path
