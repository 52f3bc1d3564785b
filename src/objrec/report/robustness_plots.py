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


def accuracy_vs_severity_figure(result, families: Sequence[str] | None = None) -> Figure:
    """One panel per family: accuracy (%) against severity (0 = clean), a line per method.

    ``result`` is a :class:`objrec.evaluation.robustness.RobustnessResult`.
    """
    fams = list(families) if families else list(result.families)
    ncols = min(4, len(fams))
    nrows = -(-len(fams) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    xs = [0, *result.severities]
    for ax, fam in zip(axes, fams, strict=False):
        j = result.families.index(fam)
        for m, name in enumerate(result.methods):
            ys = [result.clean_accuracy[m], *result.accuracy[m, j]]
            ls = "--" if name == result.baseline else "-"
            ax.plot(xs, 100 * np.asarray(ys), ls, marker="o", ms=3, label=name)
        ax.set_title(fam)
        ax.set_xticks(xs)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    for ax in axes[len(fams) :]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
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
