"""Grids of small pictures drawn as one image: one Axes, one ``imshow``.

A grid of 50 images as 50 matplotlib Axes costs seconds to lay out and draw; the same
grid tiled into one RGB array costs milliseconds. Tiles are converted to RGB in 0..1
(:func:`to_rgb`, colour maps applied here), resized (nearest neighbour) to one size,
and placed with white gaps and a band for a title above each; row labels go in a left
margin. :func:`tile_figure` returns where each tile landed so callers can draw on top
(e.g. HOG glyphs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure


def to_rgb(
    img: np.ndarray, cmap: str | None = None, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """An image as (h, w, 3) float RGB in 0..1.

    uint8 grey (h, w) / (h, w, 1) or RGB (h, w, 3) images are shown as they are (0..255);
    anything else is scaled from ``vmin``..``vmax`` (default: its min..max) through ``cmap``
    (default grey).
    """
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] >= 3:
        a = a[..., :3]
        if a.dtype == np.uint8:
            return a.astype(np.float64) / 255
        lo = a.min() if vmin is None else vmin
        hi = a.max() if vmax is None else vmax
        return np.clip((a - lo) / ((hi - lo) or 1.0), 0, 1)
    if a.dtype == np.uint8 and cmap is None and vmin is None and vmax is None:
        g = a.astype(np.float64) / 255
        return np.repeat(g[..., None], 3, axis=-1)
    a = a.astype(np.float64)
    lo = float(a.min()) if vmin is None else vmin
    hi = float(a.max()) if vmax is None else vmax
    x = np.clip((a - lo) / ((hi - lo) or 1.0), 0, 1)
    return colormaps[cmap or "gray"](x)[..., :3]


def resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W[, C]) to (h, w[, C])."""
    r = np.arange(h) * img.shape[0] // h
    c = np.arange(w) * img.shape[1] // w
    return img[r][:, c]


@dataclass
class Placement:
    """Where tile i landed, in the mosaic's pixel coordinates: top-left corner and scale
    (mosaic pixels per source pixel along rows and columns)."""

    x0: float
    y0: float
    sy: float
    sx: float


def tile_figure(
    tiles: Sequence[np.ndarray],
    *,
    cols: int,
    titles: Sequence[str] | None = None,
    title_colors: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell: float = 1.1,
    label_width: float = 1.0,
    min_side: int = 48,
    fontsize: float = 7.5,
) -> tuple[Figure, object, list[Placement | None]]:
    """Tile ``tiles`` ((h, w, 3) RGB 0..1, any sizes; None leaves a cell empty) on a grid.

    ``cell``: inches per tile (width); ``row_labels``: text left of each row (a margin of
    ``label_width`` inches). Tiles are upscaled by an integer factor to at least
    ``min_side`` pixels so that small images stay crisp. Returns (figure, axes, placements).
    """
    present = [t for t in tiles if t is not None]
    th = max(t.shape[0] for t in present)
    tw = max(t.shape[1] for t in present)
    f = max(1, int(np.ceil(min_side / max(th, tw))))
    th, tw = th * f, tw * f
    n = len(tiles)
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    pad = max(2, tw // 12)
    band = round(th * 0.32) if titles is not None else 0
    if titles is not None and any("\n" in (t or "") for t in titles):
        band *= 2
    # a title band only above rows that have a title
    has_title = [
        titles is not None
        and any(titles[i] for i in range(r * cols, min(n, (r + 1) * cols)) if i < len(titles))
        for r in range(rows)
    ]
    row_top = np.concatenate([[0], np.cumsum([(band if t else 0) + th + pad for t in has_title])])
    H, W = int(row_top[-1]) + pad, cols * (tw + pad) + pad
    canvas = np.ones((H, W, 3))
    places: list[Placement | None] = []
    for i, t in enumerate(tiles):
        if t is None:
            places.append(None)
            continue
        r, c = divmod(i, cols)
        y0, x0 = int(row_top[r]) + pad + (band if has_title[r] else 0), c * (tw + pad) + pad
        canvas[y0 : y0 + th, x0 : x0 + tw] = resize_nearest(t, th, tw)
        places.append(Placement(x0, y0, th / t.shape[0], tw / t.shape[1]))
    left = label_width if row_labels is not None else 0.05
    width_in = cols * cell
    height_in = width_in * H / W
    fig = Figure(figsize=(left + width_in + 0.05, height_in))
    fw = left + width_in + 0.05
    ax = fig.add_axes((left / fw, 0, width_in / fw, 1))
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    if titles is not None:
        for i, p in enumerate(places):
            if p is None or i >= len(titles) or not titles[i]:
                continue
            ax.text(
                p.x0 + tw / 2,
                p.y0 - band * 0.45,
                titles[i],
                ha="center",
                va="center",
                fontsize=fontsize,
                color=title_colors[i] if title_colors is not None else "black",
            )
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            ax.text(
                -pad,
                row_top[r] + pad + (band if has_title[r] else 0) + th / 2,
                label,
                ha="right",
                va="center",
                fontsize=fontsize,
                clip_on=False,
            )
    return fig, ax, places
