"""Serving a segmentation model: per image the semantic mask as a PNG and the objects as
JSON (what ``POST /v1/segment`` answers, see :mod:`objrec.serving.app`).

Images are brought to the model's input size (its training scenes' size, ``input_shape``
of the metadata) by the one image pipeline (:mod:`objrec.data.images`), so the masks are
at that size too; ``bbox`` and ``area`` are in the mask's pixels.

Mask PNGs are palette images, as Pascal VOC's: the pixel values are the labels (0 =
background, read them with ``numpy.asarray(PIL.Image.open(f))``), the palette gives every
label its colour (:func:`objrec.segmentation.overlay.class_palette`, the colours of the
report and ``objrec segment show``) and label 0 is transparent, so a browser draws the PNG
over the image as an overlay. The instance map is a palette PNG too (ids 1..255 in
:func:`~objrec.segmentation.overlay.instance_palette`'s colours), or a 16-bit grey PNG when
an image holds more than 255 objects.
"""

from __future__ import annotations

import io

import numpy as np

from objrec.errors import ObjrecError
from objrec.serving.preprocess import spec_for_model


def mask_png(mask: np.ndarray, *, instances: bool = False) -> bytes:
    """A label mask uint8 or uint16 (H, W) as PNG bytes: a palette PNG (value = label or
    object id, colour from the class palette or, ``instances``, the instance palette; 0
    transparent) when every value is below 256, else 16-bit grey."""
    from PIL import Image

    from objrec.segmentation.overlay import class_palette, instance_palette

    mask = np.asarray(mask)
    buf = io.BytesIO()
    top = int(mask.max(initial=0))
    if top < 256:
        im = Image.fromarray(mask.astype(np.uint8))
        colours = (instance_palette if instances else class_palette)(256)
        im.putpalette(colours.ravel().tolist())
        im.save(buf, format="PNG", transparency=0, optimize=False)
    else:
        Image.fromarray(mask.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def instance_table(sem: np.ndarray, inst: np.ndarray, scores: dict, names) -> list[dict]:
    """The objects of one image: per instance id of ``inst`` (uint16 (H, W), 0 = none) its
    ``label`` (class name), ``index`` (the label's mask value in ``sem``), ``score`` (0..1),
    ``area`` (pixels) and ``bbox`` ``[x, y, width, height]`` (pixels, as COCO's), by id."""
    out = []
    ids = np.unique(inst)
    for i in ids[ids > 0].tolist():
        ys, xs = np.nonzero(inst == i)
        c = int(np.bincount(sem[ys, xs]).argmax())
        x0, y0 = int(xs.min()), int(ys.min())
        out.append(
            {
                "id": int(i),
                "label": names[c],
                "index": c,
                "score": float(scores.get(i, 0.0)),
                "area": len(xs),
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
            }
        )
    return out


class SegmentPredictor:
    """Wraps a fitted segmenter (``task`` "segment") for the server: images already at
    ``input_shape`` in, masks and objects out.

    Parameters
    ----------
    segmenter : a fitted :class:`~objrec.segmentation.base.Segmenter`, as ``objrec.load``
        returns it (its metadata in ``objrec_metadata_``).
    metadata : the model's metadata (default ``segmenter.objrec_metadata_``).
    """

    task = "segment"
    backend = "native"
    backend_note = ""

    def __init__(self, segmenter, *, metadata=None):
        from objrec.metadata import class_names_for

        if getattr(segmenter, "task", None) != "segment":
            raise ObjrecError(f"{type(segmenter).__name__} is not a segmenter")
        meta = metadata if metadata is not None else getattr(segmenter, "objrec_metadata_", {})
        self.estimator = segmenter
        self.metadata = dict(meta or {})
        shape = self.metadata.get("input_shape") or getattr(segmenter, "input_shape_", ())
        self.input_shape = tuple(int(s) for s in shape)
        self.image_spec = spec_for_model(self.metadata, self.input_shape)
        self.classes = class_names_for(segmenter.classes_, self.metadata.get("class_names"))
        from objrec.segmentation.overlay import class_palette

        pal = class_palette(self.n_classes).tolist()
        self.colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in pal]

    @property
    def n_classes(self) -> int:
        """Labels, background included."""
        return len(self.classes)

    def segment(self, X: np.ndarray) -> list[dict]:
        """Per image of ``X`` (uint8 (N, *input_shape)): ``width``, ``height`` (of the
        masks), ``mask`` (semantic, PNG bytes), ``instance_mask`` (PNG bytes) and
        ``instances`` (:func:`instance_table`)."""
        sem, inst, scores = self.estimator.predict_panoptic(X)
        out = []
        for s, k, sc in zip(sem, inst, scores, strict=True):
            out.append(
                {
                    "width": int(s.shape[1]),
                    "height": int(s.shape[0]),
                    "mask": mask_png(s),
                    "instance_mask": mask_png(k, instances=True),
                    "instances": instance_table(s, k, sc, self.classes),
                }
            )
        return out

    def info(self) -> dict:
        """What a client needs to know about the model (for ``GET /v1/model``)."""
        m = self.metadata
        keep = ("method", "created", "params", "metrics", "training", "versions")
        return {
            **{k: m[k] for k in keep if k in m},
            "task": self.task,
            "classes": self.classes,
            "colors": self.colors,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "image": self.image_spec.to_dict(),
            "backend": self.backend,
        }
