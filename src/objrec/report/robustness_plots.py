"""Figures of the invariance suite: accuracy against severity per family (one line per
method) and one sample image across every severity of each nuisance.

Functions return :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state);
:func:`write_robustness_plots` saves them as PNG files for the HTML report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from objrec.evaluation import nuisances as nz


def _show(ax, image: np.ndarray) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    kw = {"cmap": "gray", "vmin": 0, "vmax": 255} if img.ndim == 2 else {}
    ax.imshow(img, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def identical_curves(result) -> list[list[str]]:
    """Groups (of two or more) of methods whose accuracy is the same at every family and
    severity, clean included: on the plot their lines lie on top of each other."""
    curves = np.concatenate(
        [
            np.asarray(result.clean_accuracy, float)[:, None],
            result.accuracy.reshape(len(result.methods), -1),
        ],
        axis=1,
    )
    groups: list[list[int]] = []
    for m in range(len(result.methods)):
        for g in groups:
            if np.allclose(curves[g[0]], curves[m], atol=1e-9, equal_nan=True):
                g.append(m)
                break
        else:
            groups.append([m])
    return [[result.methods[i] for i in g] for g in groups if len(g) > 1]


def accuracy_vs_severity_figure(result, families: Sequence[str] | None = None) -> Figure:
    """One panel per family: accuracy (%) against severity (0 = clean), a line per method.

    Every method has its own marker; the legend names methods whose curves coincide
    everywhere ("same curve as ..."), and those are drawn with hollow, larger markers so
    that the one below still shows. ``result`` is a
    :class:`objrec.evaluation.robustness.RobustnessResult`.
    """
    fams = list(families) if families else list(result.families)
    ncols = min(4, len(fams))
    nrows = -(-len(fams) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    xs = [0, *result.severities]
    same = {}
    for g in identical_curves(result):
        for name in g[1:]:
            same[name] = [n for n in g if n != name]
    labels = {
        name: name + (f" (same curve as {', '.join(same[name])})" if name in same else "")
        for name in result.methods
    }
    for ax, fam in zip(axes, fams, strict=False):
        j = result.families.index(fam)
        for m, name in enumerate(result.methods):
            ys = [result.clean_accuracy[m], *result.accuracy[m, j]]
            ls = "--" if name == result.baseline else "-"
            hollow = name in same
            ax.plot(
                xs,
                100 * np.asarray(ys),
                ls,
                marker=MARKERS[m % len(MARKERS)],
                ms=7 if hollow else 4,
                mfc="none" if hollow else None,
                lw=1.2,
                label=labels[name],
            )
        ax.set_title(fam)
        ax.set_xticks(xs)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    for ax in axes[len(fams) :]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("accuracy (%)")
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="outside lower center", ncols=min(len(labels_), 4), fontsize=8)
    return fig


def severity_montage_figure(
    image: np.ndarray,
    families: Sequence[str] | None = None,
    *,
    severities: Sequence[int] = (0, *nz.SEVERITIES),
    seed: int = 0,
    by_nuisance: bool = True,
) -> Figure:
    """One image (uint8 (H, W) or (H, W, C)) under every severity: a row per nuisance of
    the given families (``by_nuisance``) or per family, a column per severity."""
    img = np.asarray(image)
    fams = list(families) if families else nz.list_families()
    rows: list[tuple[str, str]] = []
    for f in fams:
        members = nz.resolve(f)
        if by_nuisance and len(members) > 1:
            rows.extend((f"{f}: {m}", m) for m in members)
        else:
            rows.append((f, f))
    size = 1.0
    fig = Figure(
        figsize=(size * len(severities) + 1.6, size * len(rows) + 0.4), layout="constrained"
    )
    axes = fig.subplots(len(rows), len(severities), squeeze=False)
    for r, (label, name) in enumerate(rows):
        for c, s in enumerate(severities):
            out = nz.corrupt(img[None], name, s, seed)[0]
            _show(axes[r, c], out)
            if r == 0:
                axes[r, c].set_title(str(s), fontsize=9)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("severity", fontsize=9)
    return fig


def write_robustness_plots(
    result, folder: str | Path, sample_image: np.ndarray | None = None, *, dpi: int = 100
) -> dict[str, Path]:
    """Save ``accuracy_vs_severity.png`` and (given a sample image) ``samples.png`` into
    ``folder``; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figs = {"accuracy_vs_severity": accuracy_vs_severity_figure(result)}
    if sample_image is not None:
        figs["samples"] = severity_montage_figure(sample_image, result.families, seed=result.seed)
    paths = {}
    for name, fig in figs.items():
        paths[name] = folder / f"{name}.png"
        fig.savefig(paths[name], dpi=dpi, facecolor="white")
    return paths
