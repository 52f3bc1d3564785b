"""What every segmenter shares: input checks, ``predict`` from ``predict_proba`` and the
panoptic output."""

from __future__ import annotations

import numpy as np

from objrec.errors import InputError

#: The mask value that is no label (Pascal VOC's object borders and "difficult" regions):
#: such pixels are left out of training and of every metric.
IGNORE = 255


def check_images(images) -> np.ndarray:
    """uint8 (N, H, W, 3) images; grey (N, H, W) are tripled."""
    X = np.asarray(images)
    if X.ndim == 3:
        X = np.repeat(X[..., None], 3, axis=3)
    if X.ndim != 4 or X.shape[3] != 3:
        raise InputError(f"images must be (N, H, W, 3) or (N, H, W), got {X.shape}")
    if X.dtype != np.uint8:
        raise InputError(f"images must be uint8 0..255, got {X.dtype}")
    return X


def check_masks(images: np.ndarray, masks, n_labels: int | None) -> tuple[np.ndarray, int]:
    """uint8 masks (N, H, W) matching ``images``, and the number of labels (given, or
    the largest label + 1, at least 2). :data:`IGNORE` (255) is kept as it is and is
    no label."""
    Y = np.asarray(masks)
    if Y.shape != images.shape[:3]:
        raise InputError(f"masks {Y.shape} do not match the images {images.shape[:3]}")
    if not np.issubdtype(Y.dtype, np.integer):
        raise InputError(f"masks must hold integer labels, got {Y.dtype}")
    if Y.size and Y.min() < 0:
        raise InputError("masks hold negative labels")
    if Y.size and Y.max() > IGNORE:
        raise InputError(f"masks hold label {int(Y.max())}; labels are 0..254, {IGNORE} = ignore")
    top = int(np.where(Y == IGNORE, 0, Y).max(initial=0))
    n = max(top + 1, 2) if n_labels is None else int(n_labels)
    if top >= n:
        raise InputError(f"masks hold label {top}, but n_labels={n} (labels 0..{n - 1})")
    return Y.astype(np.uint8), n


class Segmenter:
    """Base class: subclasses define ``fit`` and ``predict_proba``."""

    n_labels_: int

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise InputError(f"{type(self).__name__} is not fitted: call fit(images, masks) first")

    def predict(self, images) -> np.ndarray:
        """Semantic masks uint8 (N, H, W): the most probable label of every pixel."""
        return self.predict_proba(images).argmax(1).astype(np.uint8)

    def predict_panoptic(self, images, **kw):
        """(semantic uint8 (N, H, W), instances uint16 (N, H, W), scores [{id: score}])
        from :func:`objrec.segmentation.postprocess.panoptic_batch`."""
        from objrec.segmentation.postprocess import panoptic_batch

        return panoptic_batch(self.predict_proba(images), **kw)
