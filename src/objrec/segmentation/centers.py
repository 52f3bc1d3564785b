"""Instances from object centres and offsets (Panoptic-DeepLab, Cheng et al., CVPR 2020).

Besides the label probabilities, the network predicts per pixel a centre heatmap (one
channel: a Gaussian of standard deviation ``sigma`` pixels around every object's centre
of mass, the largest where two overlap) and an offset (two channels, ``dy`` and ``dx`` in
pixels) from the pixel to the centre of the object it belongs to.

Training targets come from the instance maps (:func:`center_targets`); at predict time
(:func:`panoptic_from_centers`) the centres are the local maxima of the heatmap above a
threshold (max-pool non-maximum suppression), every foreground pixel (background
probability under 0.5, as in :mod:`objrec.segmentation.postprocess`) goes to the
predicted centre nearest to where its offset points, and every object takes the label
most of its pixels have (majority vote of the per-pixel argmax over the object labels).
Stuff is the background (label 0), things are the objects.
"""

from __future__ import annotations

import numpy as np

from objrec.errors import InputError
from objrec.segmentation.postprocess import stack_panoptic


def center_targets(instances, sigma: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of instance maps ``instances`` (N, H, W) or (H, W) (integer object
    ids, 0 = none).

    Returns ``heat`` float32 (N, H, W): per pixel the largest of
    ``exp(-((y - cy)^2 + (x - cx)^2) / (2 sigma^2))`` over the objects' centres of mass
    ``(cy, cx)`` (pixel coordinates, row and column; 0 where there is no object), and
    ``offset`` float32 (N, 2, H, W): ``(cy - y, cx - x)`` of the pixel's own object
    (pixels), 0 on pixels without an object. An (H, W) input gives N = 1.
    """
    inst = np.asarray(instances)
    if inst.ndim == 2:
        inst = inst[None]
    if inst.ndim != 3 or not np.issubdtype(inst.dtype, np.integer):
        raise InputError(f"instance maps must be integer (N, H, W), got {inst.dtype} {inst.shape}")
    if inst.size and inst.min() < 0:
        raise InputError("instance maps hold negative ids")
    if not (isinstance(sigma, int | float) and sigma > 0):
        raise InputError(f"sigma must be a number > 0 (pixels), got {sigma!r}")
    N, H, W = inst.shape
    heat = np.zeros((N, H, W), np.float32)
    offset = np.zeros((N, 2, H, W), np.float32)
    yy, xx = np.mgrid[:H, :W].astype(np.float64)
    for i in range(N):
        ids = inst[i].astype(np.int64)
        top = int(ids.max(initial=0))
        if top == 0:
            continue
        flat = ids.ravel()
        n = np.bincount(flat, minlength=top + 1)
        count = np.maximum(n, 1).astype(np.float64)  # ids not present: no centre, no 0 / 0
        cy = np.bincount(flat, weights=yy.ravel(), minlength=top + 1) / count
        cx = np.bincount(flat, weights=xx.ravel(), minlength=top + 1) / count
        for k in np.flatnonzero(n[1:]) + 1:
            g = np.exp(-((yy - cy[k]) ** 2 + (xx - cx[k]) ** 2) / (2.0 * sigma**2))
            np.maximum(heat[i], g.astype(np.float32), out=heat[i])
        thing = ids > 0
        offset[i, 0] = np.where(thing, cy[ids] - yy, 0.0)
        offset[i, 1] = np.where(thing, cx[ids] - xx, 0.0)
    return heat, offset


def find_centers(heat: np.ndarray, *, threshold: float = 0.1, nms_kernel: int = 7,
                 top_k: int = 64) -> np.ndarray:  # fmt: skip
    """Centres int64 (K, 2) (row, column), strongest first: the pixels of ``heat`` (H, W)
    above ``threshold`` that are the largest in their ``nms_kernel`` x ``nms_kernel``
    window (max-pool non-maximum suppression), at most ``top_k``. Of maxima that tie
    within one window (a plateau) only the first in scan order stays."""
    from scipy import ndimage

    heat = np.asarray(heat, np.float32)
    if heat.ndim != 2:
        raise InputError(f"heatmap must be (H, W), got {heat.shape}")
    if not (isinstance(nms_kernel, int) and nms_kernel >= 1):
        raise InputError(f"nms_kernel must be a whole number >= 1, got {nms_kernel!r}")
    pooled = ndimage.maximum_filter(heat, size=nms_kernel, mode="constant", cval=-np.inf)
    ys, xs = np.nonzero((heat == pooled) & (heat > threshold))
    order = np.argsort(-heat[ys, xs], kind="stable")
    r = nms_kernel // 2
    kept: list[tuple[int, int]] = []
    for y, x in zip(ys[order].tolist(), xs[order].tolist(), strict=True):
        if len(kept) >= top_k:
            break
        if all(max(abs(y - ky), abs(x - kx)) > r for ky, kx in kept):
            kept.append((y, x))
    return np.asarray(kept, np.int64).reshape(-1, 2)


def panoptic_from_centers(
    proba: np.ndarray,
    heat: np.ndarray,
    offset: np.ndarray,
    *,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int = 64,
    min_area: int = 12,
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Semantic mask uint8 (H, W), instance map uint16 (H, W) and {id: score} of one image
    from its label probabilities ``proba`` float (L, H, W) (label 0 = background), centre
    heatmap ``heat`` (H, W) and offsets ``offset`` (2, H, W) (dy, dx in pixels).

    Each foreground pixel (``proba[0] < 0.5``) at (y, x) goes to the centre of
    :func:`find_centers` nearest to (y + dy, x + dx); with no centre found the 8-connected
    foreground components are the objects. An object takes the label that most of its
    pixels' argmax over labels 1..L-1 gives; objects under ``min_area`` pixels become
    background. Ids are 1.. in the order of the centres (strongest first); an object's
    score is the mean probability of its label over its pixels.
    """
    from scipy import ndimage

    proba = np.asarray(proba, np.float32)
    if proba.ndim != 3 or proba.shape[0] < 2:
        raise InputError(f"probabilities must be (L >= 2, H, W), got {proba.shape}")
    L, H, W = proba.shape
    heat = np.asarray(heat, np.float32)
    offset = np.asarray(offset, np.float32)
    if heat.shape != (H, W) or offset.shape != (2, H, W):
        raise InputError(
            f"heatmap {heat.shape} and offsets {offset.shape} must be (H, W) and (2, H, W) "
            f"for probabilities {proba.shape}"
        )
    sem = np.zeros((H, W), np.uint8)
    inst = np.zeros((H, W), np.uint16)
    scores: dict[int, float] = {}
    fg = proba[0] < 0.5
    if not fg.any():
        return sem, inst, scores
    py, px = np.nonzero(fg)
    centres = find_centers(heat, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k)
    if len(centres):
        ty = py + offset[0, py, px]
        tx = px + offset[1, py, px]
        d2 = (ty[:, None] - centres[None, :, 0]) ** 2 + (tx[:, None] - centres[None, :, 1]) ** 2
        group = d2.argmin(1)
        n_groups = len(centres)
    else:
        comps, n_groups = ndimage.label(fg, structure=np.ones((3, 3), bool))
        group = comps[py, px] - 1
    thing_label = proba[1:, py, px].argmax(0) + 1  # (P,) per foreground pixel
    next_id = 1
    for g in range(n_groups):
        sel = group == g
        if int(sel.sum()) < min_area:
            continue
        c = int(np.bincount(thing_label[sel], minlength=L).argmax())
        ys, xs = py[sel], px[sel]
        sem[ys, xs] = c
        inst[ys, xs] = next_id
        scores[next_id] = float(proba[c, ys, xs].mean())
        next_id += 1
    return sem, inst, scores


def panoptic_centers_batch(
    proba: np.ndarray, heat: np.ndarray, offset: np.ndarray, **kw
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """:func:`panoptic_from_centers` for each image of ``proba`` (N, L, H, W), ``heat``
    (N, H, W) and ``offset`` (N, 2, H, W)."""
    proba, heat, offset = np.asarray(proba), np.asarray(heat), np.asarray(offset)
    if proba.ndim != 4 or len(heat) != len(proba) or len(offset) != len(proba):
        raise InputError(
            f"probabilities (N, L, H, W), heatmaps (N, H, W) and offsets (N, 2, H, W) must "
            f"share N, got {proba.shape}, {heat.shape}, {offset.shape}"
        )
    out = [
        panoptic_from_centers(p, h, o, **kw) for p, h, o in zip(proba, heat, offset, strict=True)
    ]
    return stack_panoptic(out, proba.shape[2:])
