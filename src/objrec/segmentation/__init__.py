"""Segmentation methods: every pixel a label (semantic), every object an id (instance),
both merged (panoptic).

Every method is an estimator with one contract::

    seg = make_segmenter("forest")           # or "slic", "unet"
    seg.fit(images, masks)                   # uint8 (N, H, W, 3) and uint8 (N, H, W), 0 = bg
    masks = seg.predict(images)              # uint8 (N, H, W)
    proba = seg.predict_proba(images)        # float32 (N, L, H, W), sums to 1 over L
    sem, inst, scores = seg.predict_panoptic(images)  # + uint16 ids, per-image {id: score}
    seg.save(folder); seg = objrec.load(folder)  # an objrec model folder, task "segment"

Methods: ``forest`` (:mod:`objrec.segmentation.classic`, a per-pixel random forest on a
filter bank, the TextonBoost idea), ``slic`` (:mod:`objrec.segmentation.slic`, SLIC
superpixels with colour, texture, shape and HOG features and a gradient-boosting
classifier) and ``unet`` (:mod:`objrec.segmentation.unet`, a
small U-Net trained with cross-entropy + Dice). The classic methods turn semantic
probabilities into objects by :mod:`objrec.segmentation.postprocess`: connected
components, one label per component by summed probability, split by watershed on the
distance transform; so does the U-Net by default. With ``grouping="centers"`` it also
learns object centres and offsets from the instance maps (``fit(images, masks,
instances=ids)``) and groups pixels around the predicted centres
(:mod:`objrec.segmentation.centers`, Panoptic-DeepLab).
"""

from __future__ import annotations

from objrec.errors import ModelFileError, ObjrecError

METHODS = ("forest", "slic", "unet")


def make_segmenter(name: str, **params):
    """A new, unfitted segmenter by name (``forest``, ``slic`` or ``unet``) with its parameters."""
    key = name.lower().replace("_", "-")
    if key in ("forest", "filterbank-forest", "classic"):
        from objrec.segmentation.classic import FilterBankForest

        return FilterBankForest(**params)
    if key in ("slic", "superpixels"):
        from objrec.segmentation.slic import SlicSegmenter

        return SlicSegmenter(**params)
    if key in ("unet", "u-net"):
        from objrec.segmentation.unet import UNetSegmenter

        return UNetSegmenter(**params)
    raise ObjrecError(f"unknown segmentation method {name!r} (known: {', '.join(METHODS)})")


def load_segmenter(path):
    """The fitted segmenter saved at ``path`` (model folder, run folder or archive), through
    :func:`objrec.artifact.load`; a classification model there is refused."""
    from objrec.artifact import load

    est = load(path)
    if getattr(est, "task", "classify") != "segment":
        raise ModelFileError(
            f"{path}: a classification model ({est.objrec_metadata_.method}), not a segmenter; "
            "train one with objrec segment train"
        )
    return est
