"""The colours of segmentation pictures, and masks drawn over their image.

One owner for the colours: the report (:mod:`objrec.report.segmentation`), ``objrec
segment show`` and :func:`objrec.data.scenes.draw_scenes` read them from here; a web page
gets them from :func:`legend` (plain JSON-able data).

The colours
-----------
* **Semantic** (one colour per label, whatever the object: two 3s share a colour):
  label 0, the background, is black (no colour over the image); labels 1..10 take
  :data:`CLASS_COLOURS` (matplotlib's ``tab10`` with its grey swapped for a lime, so no
  class looks like an uncoloured grey photo); labels past 10 take golden-ratio hues
  (saturation 0.65, value 0.95) so any number of classes stays distinct.
* **Instance** (one colour per object, whatever its class): id 0 (no object) black,
  id ``k`` the ``k``-th golden-ratio hue from a fixed start, alternating full and 80 %
  brightness so that neighbours in the sequence also differ in lightness; a white line
  where two objects touch (:func:`outlines`). In pictures
  that set a prediction next to its ground truth, a predicted object that matches a
  true one (IoU > 0.5, the panoptic-quality rule) takes the true object's id and so its
  colour; the other predicted objects take ids (and colours) no true object has
  (:func:`align_instances`).
* **Panoptic** (every pixel a class, every object its own id): each object in its class
  colour (the hue says the class), shaded by its id (id 1 as is, id 2 darker, id 3
  lighter ...: :data:`SHADES`, cycled every 7 ids; with the aligned ids above a matched
  object has the same shade in the truth and the prediction), with a white line where two
  objects touch; the background (the "stuff" label 0) is not coloured.

Overlays (:func:`overlay`) paint the mask colour where the mask is not background, lit by the
photo (the colour times ``ALPHA + (1 - ALPHA) * luminance / 255``: the hue is always the
class or object colour, whatever the colour of the object in the photo, and the texture
shows through in its brightness) and leave the background as a dimmed grey copy of the photo
(:data:`DIM` of its luminance), so that the coloured pixels are the mask.

Images are uint8 (H, W, 3) (or (H, W) grey), masks integer (H, W): semantic labels
0..n_labels-1 (0 = background; 255, not labelled, is drawn as background), instance ids
(0 = none), as in :mod:`objrec.data.scenes`.
"""

from __future__ import annotations

import colorsys

import numpy as np

from objrec.errors import InputError
from objrec.segmentation.base import IGNORE

#: Colours of semantic labels 1..10 (label 0, background, is black): matplotlib's tab10
#: with its grey (#7f7f7f) replaced by a lime (#7fdb3b).
CLASS_COLOURS = (
    "#1f77b4",  # 1 blue
    "#ff7f0e",  # 2 orange
    "#2ca02c",  # 3 green
    "#d62728",  # 4 red
    "#9467bd",  # 5 purple
    "#8c564b",  # 6 brown
    "#e377c2",  # 7 pink
    "#7fdb3b",  # 8 lime
    "#bcbd22",  # 9 olive
    "#17becf",  # 10 cyan
)
#: The least brightness of a mask colour (0..1): a pixel of the colour c over a photo of
#: luminance Y (0..255) is drawn c * (ALPHA + (1 - ALPHA) * Y / 255).
ALPHA = 0.6
#: The background of an overlay: this fraction of the photo's luminance (grey, dimmed).
DIM = 0.55
#: Panoptic shading of the object with id k: ``SHADES[(k - 1) % 7]``; > 0 mixes the class
#: colour with white by that fraction, < 0 with black.
SHADES = (0.0, -0.35, 0.3, -0.55, 0.45, -0.15, 0.15)
#: Colour of the lines where objects touch (instance and panoptic views).
OUTLINE = (255, 255, 255)

_GOLDEN = 0.618033988749895


def _hex_rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


def _hue(i: int, start: float, s: float, v: float) -> np.ndarray:
    h = (start + i * _GOLDEN) % 1.0
    return np.round(np.array(colorsys.hsv_to_rgb(h, s, v)) * 255)


def class_palette(n_labels: int) -> np.ndarray:
    """uint8 (n_labels, 3): the colour of every semantic label (0 black, see the module
    docstring)."""
    n = max(int(n_labels), 1)
    out = np.zeros((n, 3), np.uint8)
    for i in range(1, n):
        if i <= len(CLASS_COLOURS):
            out[i] = _hex_rgb(CLASS_COLOURS[i - 1])
        else:
            out[i] = _hue(i, 0.05, 0.65, 0.95)
    return out


def instance_palette(n_ids: int) -> np.ndarray:
    """uint8 (n_ids, 3): the colour of instance ids 0..n_ids-1 (0 black)."""
    n = max(int(n_ids), 1)
    out = np.zeros((n, 3), np.uint8)
    for i in range(1, n):
        out[i] = _hue(i, 0.11, 0.8, 1.0 if i % 2 else 0.8)
    return out


def legend(classes, *, background: str = "background") -> list[dict]:
    """The semantic colours as data: ``[{"label": 0, "name": "background", "colour":
    "#000000"}, {"label": 1, "name": classes[0], ...}, ...]`` (label c + 1 is
    ``classes[c]``), for a page's legend or a web client."""
    names = [background, *(str(c) for c in classes)]
    pal = class_palette(len(names))
    return [
        {"label": i, "name": n, "colour": "#{:02x}{:02x}{:02x}".format(*pal[i])}
        for i, n in enumerate(names)
    ]


def _check(image, *masks) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"image must be uint8 (H, W, 3) or (H, W), got {img.dtype} {img.shape}")
    for m in masks:
        m = np.asarray(m)
        if m.shape != img.shape[:2]:
            raise InputError(f"mask {m.shape} does not match the image {img.shape[:2]}")
        if not np.issubdtype(m.dtype, np.integer):
            raise InputError(f"masks must hold integers, got {m.dtype}")
        if m.size and m.min() < 0:
            raise InputError("masks hold negative values")
    return img


def _labels(sem, n_labels: int) -> np.ndarray:
    """``sem`` with its :data:`~objrec.segmentation.base.IGNORE` pixels (not labelled) as
    background, checked against ``n_labels``."""
    sem = np.asarray(sem)
    if n_labels <= IGNORE:
        sem = np.where(sem == IGNORE, 0, sem)
    top = int(sem.max(initial=0))
    if top >= n_labels:
        raise InputError(f"mask holds label {top}, but n_labels={n_labels}")
    return sem


def semantic_colours(sem, n_labels: int) -> np.ndarray:
    """uint8 (H, W, 3): every pixel in its label's colour (:func:`class_palette`)."""
    return class_palette(n_labels)[_labels(sem, n_labels)]


def instance_colours(inst) -> np.ndarray:
    """uint8 (H, W, 3): every pixel in its object's colour (:func:`instance_palette`)."""
    inst = np.asarray(inst)
    return instance_palette(int(inst.max(initial=0)) + 1)[inst]


def _shade(colour: np.ndarray, t: float) -> np.ndarray:
    c = colour.astype(np.float64)
    return c + (255 - c) * t if t >= 0 else c * (1 + t)


def panoptic_colours(sem, inst, n_labels: int) -> np.ndarray:
    """uint8 (H, W, 3): every object in its class colour shaded by its id (id k takes
    ``SHADES[(k - 1) % len(SHADES)]``); pixels of a class without an id in the plain
    class colour; background black."""
    sem = _labels(sem, n_labels)
    inst = np.asarray(inst)
    pal = class_palette(n_labels)
    out = pal[sem].astype(np.float64)
    for k in np.unique(inst):
        if k == 0:
            continue
        m = (inst == k) & (sem > 0)
        t = SHADES[(int(k) - 1) % len(SHADES)]
        for c in np.unique(sem[m]):
            out[m & (sem == c)] = _shade(pal[c], t)
    return np.round(out).astype(np.uint8)


def outlines(inst) -> np.ndarray:
    """bool (H, W): object pixels with a 4-neighbour in another object, i.e. the line
    where two objects touch or overlap. The border with the background gets none: the
    colour against the grey photo shows it, and strokes 2 pixels thin keep their colour."""
    inst = np.asarray(inst)
    p = np.pad(inst, 1, mode="constant", constant_values=0)
    c = p[1:-1, 1:-1]
    edge = np.zeros(c.shape, bool)
    for n in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        edge |= (n != c) & (n > 0)
    return edge & (c > 0)


def overlay(image, colours, where, *, edges=None) -> np.ndarray:
    """uint8 (H, W, 3): ``colours`` (uint8 (H, W, 3)) lit by ``image``'s luminance (see
    :data:`ALPHA`) where ``where`` (bool (H, W)) holds, a dimmed grey photo elsewhere,
    ``edges`` (bool (H, W)) in :data:`OUTLINE`."""
    img = _check(image).astype(np.float64)
    grey = img @ np.array([0.299, 0.587, 0.114])
    out = np.repeat((DIM * grey)[..., None], 3, axis=2)
    where = np.asarray(where, bool)
    light = ALPHA + (1 - ALPHA) * grey[where] / 255
    out[where] = np.asarray(colours, np.float64)[where] * light[:, None]
    if edges is not None:
        out[np.asarray(edges, bool)] = OUTLINE
    return np.round(np.clip(out, 0, 255)).astype(np.uint8)


def semantic_overlay(image, sem, n_labels: int) -> np.ndarray:
    """uint8 (H, W, 3): the semantic mask over the image (one colour per class)."""
    _check(image, sem)
    sem = _labels(sem, n_labels)
    return overlay(image, semantic_colours(sem, n_labels), sem > 0)


def instance_overlay(image, inst) -> np.ndarray:
    """uint8 (H, W, 3): the instance map over the image (one colour per object, white
    lines where objects touch)."""
    _check(image, inst)
    inst = np.asarray(inst)
    return overlay(image, instance_colours(inst), inst > 0, edges=outlines(inst))


def panoptic_overlay(image, sem, inst, n_labels: int) -> np.ndarray:
    """uint8 (H, W, 3): the panoptic map over the image (class colour shaded per object,
    white lines where objects touch, background uncoloured)."""
    _check(image, sem, inst)
    sem, inst = _labels(sem, n_labels), np.asarray(inst)
    return overlay(
        image, panoptic_colours(sem, inst, n_labels), sem > 0, edges=outlines(inst) & (sem > 0)
    )


def align_instances(true_inst, pred_inst) -> np.ndarray:
    """``pred_inst`` (integer (H, W)) with its ids renumbered for drawing beside
    ``true_inst``: a predicted object whose IoU with a true object is above 0.5 takes that
    object's id (such a match is unique); the others take ids above every true id, in
    order. Returns uint32 (H, W)."""
    t = np.asarray(true_inst).astype(np.int64)
    p = np.asarray(pred_inst).astype(np.int64)
    if t.shape != p.shape:
        raise InputError(f"instance maps {t.shape} and {p.shape} differ in shape")
    out = np.zeros(p.shape, np.uint32)
    t_ids, t_area = np.unique(t, return_counts=True)
    area = dict(zip(t_ids.tolist(), t_area.tolist(), strict=True))
    nxt = int(t.max(initial=0)) + 1
    for k in np.unique(p):
        if k == 0:
            continue
        m = p == k
        ids, inter = np.unique(t[m], return_counts=True)
        best = None
        for i, n in zip(ids.tolist(), inter.tolist(), strict=True):
            if i and n / (area[i] + m.sum() - n) > 0.5:
                best = i
        if best is None:
            best, nxt = nxt, nxt + 1
        out[m] = best
    return out


def scene_picture(
    images, semantic, instances, n_labels: int, pred_semantic=None, pred_instances=None
) -> np.ndarray:
    """One picture uint8 (N * H, 4 * W, 3), or (N * H, 7 * W, 3) with a prediction: per
    scene the image, then its semantic, instance and panoptic overlays, then (given
    ``pred_semantic`` and ``pred_instances``, (N, H, W) each) the prediction's, its
    objects renumbered by :func:`align_instances` so that a matched object keeps its
    true colour. Inputs: images uint8 (N, H, W, 3), masks (N, H, W)."""
    images = np.asarray(images)
    semantic, instances = np.asarray(semantic), np.asarray(instances)
    if images.ndim != 4 or semantic.shape != images.shape[:3] or instances.shape != semantic.shape:
        raise InputError(
            f"images {images.shape}, semantic {semantic.shape}, instances {instances.shape}: "
            "expected (N, H, W, 3) and two (N, H, W)"
        )
    if (pred_semantic is None) != (pred_instances is None):
        raise InputError("give both the predicted semantic masks and instance maps, or neither")
    if pred_semantic is not None:
        pred_semantic, pred_instances = np.asarray(pred_semantic), np.asarray(pred_instances)
        if pred_semantic.shape != semantic.shape or pred_instances.shape != semantic.shape:
            raise InputError(
                f"predictions {pred_semantic.shape} / {pred_instances.shape} do not match the "
                f"masks {semantic.shape}"
            )
    rows = []
    for i, img in enumerate(images):
        s, k = semantic[i], instances[i]
        row = [img, semantic_overlay(img, s, n_labels), instance_overlay(img, k),
               panoptic_overlay(img, s, k, n_labels)]  # fmt: skip
        if pred_semantic is not None:
            ps, pk = pred_semantic[i], align_instances(k, pred_instances[i])
            row += [semantic_overlay(img, ps, n_labels), instance_overlay(img, pk),
                    panoptic_overlay(img, ps, pk, n_labels)]  # fmt: skip
        rows.append(np.concatenate(row, axis=1))
    if not rows:
        cols = 7 if pred_semantic is not None else 4
        return np.zeros((0, cols * images.shape[2], 3), np.uint8)
    return np.concatenate(rows, axis=0)
