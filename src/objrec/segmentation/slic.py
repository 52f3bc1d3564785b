"""Superpixels and a classifier: SLIC regions, one feature vector and one label each.

Every image is cut into about ``n_segments`` SLIC superpixels (scikit-image's
``slic`` on the image in CIE Lab, ``compactness`` weighing position against colour).
Each superpixel gets :data:`N_FEATURES` features (:func:`superpixel_features`):

* colour: mean and standard deviation of L, a, b;
* texture: mean and standard deviation of five filter responses of L (gradient
  magnitude at sigma 1 and 2 pixels, scale-normalised Laplacian of Gaussian at sigma 1,
  2 and 4);
* shape: area over the mean superpixel area, bounding-box height and width over the
  image side, and the fill ratio (area over bounding-box area);
* contrast: mean Lab minus the image's median Lab, and minus the mean Lab of its
  neighbours (weighted by shared border length);
* a small HOG of its bounding box: gradient orientations of L (8 unsigned bins over
  0..180 degrees, magnitude-weighted) summed over the box's 2 x 2 cells, L2-normalised
  (32 values; integral images make it one pass per image);
* context: the same HOG over a ``context`` x ``context`` window (default 32 pixels)
  centred on the superpixel's centroid, 3 x 3 cells (72 values): the shape around a
  superpixel, which tells a fragment of a "3" from one of an "8".

A histogram gradient-boosting classifier (scikit-learn) learns the majority label of
each superpixel (unweighted: with sample weights scikit-learn's binning computes weighted
percentiles one by one, 0.2 s per feature); superpixels mostly made of ignored pixels (label
:data:`~objrec.segmentation.base.IGNORE`) are left out. A superpixel's class
probabilities are painted back onto its pixels, and objects come from the shared
post-processing (:mod:`objrec.segmentation.postprocess`).

Time and memory are bounded: features are computed image by image, prediction runs
``batch`` images at a time, and training keeps at most ``max_train_superpixels``
superpixels (a seeded random subset). The classifier runs on ``n_threads`` OpenMP threads
(default 1): on a machine whose cores are shared with other jobs, OpenMP's spinning
barriers made two threads 20x slower than one (45 s against 2.2 s for the same fit).

A fitted segmenter saves as an objrec model folder
(:meth:`~objrec.segmentation.base.Segmenter.save`, ``objrec.load``): ``objrec.json`` and
:data:`SLIC_NAME`, a skops file of the classifier (or the one label of a constant
segmenter) checked against the metadata on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from objrec.errors import ModelFileError
from objrec.segmentation.base import (
    IGNORE,
    Segmenter,
    _number,
    _optional,
    _whole,
    check_images,
    check_masks,
)

#: the SLIC segmenter's file in the model folder: skops, {"classifier_":
#: HistGradientBoostingClassifier or None, "constant_": int (the one label when None, else
#: -1), "n_train_superpixels_": int}
SLIC_NAME = "slic.skops"

#: Features per superpixel: 6 colour + 10 texture + 4 shape + 6 contrast + 32 box HOG
#: + 72 context HOG.
N_FEATURES = 130
_HOG_BINS = 8


def superpixels(image: np.ndarray, n_segments: int = 300, compactness: float = 10.0):
    """(Lab image float32 (H, W, 3), superpixel labels int64 (H, W) numbered 0..K-1, K)
    of one uint8 RGB image (H, W, 3)."""
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    lab = rgb2lab(image).astype(np.float32)
    # slic converts the uint8 image to Lab itself: handed the float Lab image with
    # convert2lab=False, it returned a plain grid at compactness 10 (every superpixel of
    # one size; scikit-image 0.26), useless on thin strokes
    seg = slic(image, n_segments=n_segments, compactness=compactness, start_label=0,
               channel_axis=-1)  # fmt: skip
    _, seg = np.unique(seg, return_inverse=True)  # consecutive 0..K-1
    seg = seg.reshape(image.shape[:2]).astype(np.int64)
    return lab, seg, int(seg.max()) + 1


def _orientation_integral(L: np.ndarray) -> np.ndarray:
    """Integral images float64 (H + 1, W + 1, 8) of the gradient magnitude of ``L`` (H, W)
    per unsigned orientation bin (0..180 degrees)."""
    H, W = L.shape
    gy, gx = np.gradient(L.astype(np.float32))
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    b = np.minimum((ang / np.pi * _HOG_BINS).astype(np.int64), _HOG_BINS - 1)
    hist = np.zeros((H, W, _HOG_BINS), np.float32)
    np.put_along_axis(hist, b[..., None], mag[..., None], axis=2)
    integral = np.zeros((H + 1, W + 1, _HOG_BINS), np.float64)
    integral[1:, 1:] = hist.cumsum(0).cumsum(1)
    return integral


def box_hog(integral: np.ndarray, boxes: np.ndarray, cells: int) -> np.ndarray:
    """HOG float32 (k, cells * cells * 8) of boxes (k, 4) = (r0, r1, c0, c1) (end
    exclusive): each box cut into a ``cells`` x ``cells`` grid, orientations summed per
    cell (from :func:`_orientation_integral`), L2-normalised over the box."""
    r0, r1, c0, c1 = boxes.T
    rows = [r0 + (r1 - r0) * j // cells for j in range(cells + 1)]
    cols = [c0 + (c1 - c0) * j // cells for j in range(cells + 1)]
    parts = []
    for i in range(cells):
        ra, rb = rows[i], rows[i + 1]
        for j in range(cells):
            ca, cb = cols[j], cols[j + 1]
            parts.append(integral[rb, cb] - integral[ra, cb] - integral[rb, ca] + integral[ra, ca])
    out = np.concatenate(parts, axis=1)
    out /= np.sqrt((out**2).sum(1, keepdims=True) + 1e-6)
    return out.astype(np.float32)


def superpixel_features(lab: np.ndarray, seg: np.ndarray, k: int, context: int = 32) -> np.ndarray:
    """Features float32 (k, :data:`N_FEATURES`) of the ``k`` superpixels ``seg`` (H, W)
    of one image in Lab ``lab`` (H, W, 3) (the module docstring lists them); ``context``:
    side in pixels of the window of the context HOG."""
    from scipy import ndimage

    H, W = seg.shape
    L = lab[..., 0]
    maps = [lab[..., 0], lab[..., 1], lab[..., 2],
            ndimage.gaussian_gradient_magnitude(L, 1.0),
            ndimage.gaussian_gradient_magnitude(L, 2.0)]  # fmt: skip
    maps += [ndimage.gaussian_laplace(L, s) * s * s for s in (1.0, 2.0, 4.0)]
    flat = seg.ravel()
    area = np.bincount(flat, minlength=k).astype(np.float64)
    stack = np.stack([m.ravel() for m in maps]).astype(np.float64)  # (8, H*W)
    sums = np.stack([np.bincount(flat, s, minlength=k) for s in stack], 1)
    sq = np.stack([np.bincount(flat, s * s, minlength=k) for s in stack], 1)
    mean = sums / area[:, None]
    std = np.sqrt(np.maximum(sq / area[:, None] - mean**2, 0.0))
    # bounding boxes (r0, r1, c0, c1), end exclusive
    rr, cc = np.divmod(np.arange(H * W), W)
    r0 = np.full(k, H, np.int64)
    c0 = np.full(k, W, np.int64)
    r1 = np.zeros(k, np.int64)
    c1 = np.zeros(k, np.int64)
    np.minimum.at(r0, flat, rr)
    np.minimum.at(c0, flat, cc)
    np.maximum.at(r1, flat, rr + 1)
    np.maximum.at(c1, flat, cc + 1)
    bh, bw = r1 - r0, c1 - c0
    shape = np.stack([area / (H * W / k), bh / H, bw / W, area / (bh * bw)], 1)
    # contrast with the image and with the neighbours (border-length weighted)
    lab_mean = mean[:, :3]
    median = np.median(lab.reshape(-1, 3), axis=0)
    pairs = np.concatenate([np.stack([seg[:, :-1].ravel(), seg[:, 1:].ravel()], 1),
                            np.stack([seg[:-1].ravel(), seg[1:].ravel()], 1)])  # fmt: skip
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    nb_sum = np.zeros((k, 3))
    np.add.at(nb_sum, pairs[:, 0], lab_mean[pairs[:, 1]])
    nb_n = np.bincount(pairs[:, 0], minlength=k)[:, None]
    nb_mean = np.where(nb_n > 0, nb_sum / np.maximum(nb_n, 1), lab_mean)
    contrast = np.concatenate([lab_mean - median, lab_mean - nb_mean], 1)
    integral = _orientation_integral(L)
    hog = box_hog(integral, np.stack([r0, r1, c0, c1], 1), 2)
    # context: a window of side ``context`` centred on the superpixel, clipped to the image
    cy = np.bincount(flat, rr, minlength=k) / area
    cx = np.bincount(flat, cc, minlength=k) / area
    half = context / 2
    window = np.stack([np.clip(np.round(cy - half), 0, H), np.clip(np.round(cy + half), 0, H),
                       np.clip(np.round(cx - half), 0, W), np.clip(np.round(cx + half), 0, W)],
                      1).astype(np.int64)  # fmt: skip
    ctx = box_hog(integral, window, 3)
    feats = np.concatenate([mean[:, :3], std[:, :3], mean[:, 3:], std[:, 3:], shape,
                            contrast, hog, ctx], 1)  # fmt: skip
    return feats.astype(np.float32)


def superpixel_labels(seg: np.ndarray, k: int, mask: np.ndarray, n_labels: int):
    """(majority label int64 (k,), pixels holding it (k,), valid bool (k,)) of each
    superpixel under ``mask`` (H, W): ignored pixels (:data:`IGNORE`) do not vote, and a
    superpixel is valid when at least half of its pixels are not ignored."""
    flat, m = seg.ravel(), mask.ravel().astype(np.int64)
    keep = m != IGNORE
    counts = np.bincount(flat[keep] * n_labels + m[keep], minlength=k * n_labels)
    counts = counts.reshape(k, n_labels)
    area = np.bincount(flat, minlength=k)
    label = counts.argmax(1)
    return label, counts.max(1), counts.sum(1) * 2 >= np.maximum(area, 1)


class SlicSegmenter(Segmenter):
    """SLIC superpixels, :func:`superpixel_features` and a gradient-boosting classifier;
    per-superpixel probabilities painted back to pixels."""

    method = "slic"
    _state_attributes = ("classifier_", "constant_", "n_train_superpixels_")
    _state_file = SLIC_NAME
    _param_rules: ClassVar[dict] = {
        "n_segments": ("a whole number >= 1", _whole(1)),
        "compactness": ("a positive number", _number(0, strict=True)),
        "context": ("a whole number >= 1 (pixels)", _whole(1)),
        "max_iter": ("a whole number >= 1", _whole(1)),
        "learning_rate": ("a positive number", _number(0, strict=True)),
        "max_leaf_nodes": ("a whole number >= 2", _whole(2)),
        "max_train_superpixels": ("a whole number >= 1", _whole(1)),
        "n_labels": ("a whole number >= 2 or null", _optional(_whole(2))),
        "n_threads": ("a whole number >= 1", _whole(1)),
        "seed": ("a whole number >= 0", _whole(0)),
    }

    def __init__(
        self,
        n_segments: int = 300,
        compactness: float = 10.0,
        context: int = 32,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        max_train_superpixels: int = 400_000,
        n_labels: int | None = None,
        n_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.n_segments = n_segments
        self.compactness = compactness
        self.context = context
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.max_train_superpixels = max_train_superpixels
        self.n_labels = n_labels
        self.n_threads = n_threads
        self.seed = seed

    def _image_features(self, image: np.ndarray):
        lab, seg, k = superpixels(image, self.n_segments, self.compactness)
        return superpixel_features(lab, seg, k, self.context), seg, k

    def fit(self, images, masks) -> SlicSegmenter:
        """Fit on uint8 images (N, H, W, 3) and label masks (N, H, W), 0 = background,
        :data:`IGNORE` = not a label (left out)."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        X = check_images(images)
        Y, self.n_labels_ = check_masks(X, masks, self.n_labels)
        self._fitted_on(X)
        feats, labels = [], []
        for img, mask in zip(X, Y, strict=True):
            F, seg, k = self._image_features(img)
            lab, _, valid = superpixel_labels(seg, k, mask, self.n_labels_)
            feats.append(F[valid])
            labels.append(lab[valid])
        F, y = np.concatenate(feats), np.concatenate(labels)
        if len(y) > self.max_train_superpixels:
            keep = np.random.default_rng(self.seed).choice(
                len(y), self.max_train_superpixels, replace=False
            )
            F, y = F[keep], y[keep]
        if len(np.unique(y)) < 2:  # one label everywhere: every pixel gets it
            self.classifier_ = None
            self.constant_ = int(y[0]) if len(y) else 0
        else:
            # early stopping holds out a stratified 10 %: only with enough of every label
            rare = int(np.unique(y, return_counts=True)[1].min())
            self.classifier_ = HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                early_stopping=len(y) > 10_000 and rare >= 20,
                random_state=self.seed,
            )
            with threadpool_limits(self.n_threads):
                self.classifier_.fit(F, y)
            self.constant_ = -1
        self.n_train_superpixels_ = len(y)
        return self

    def predict_proba(self, images, *, batch: int = 64) -> np.ndarray:
        """Label probabilities float32 (N, L, H, W), constant over each superpixel."""
        from threadpoolctl import threadpool_limits

        self._check_fitted()
        X = check_images(images)
        N, H, W, _ = X.shape
        out = np.zeros((N, self.n_labels_, H, W), np.float32)
        if self.classifier_ is None:
            out[:, self.constant_] = 1.0
            return out
        cols = self.classifier_.classes_.astype(int)
        for s in range(0, N, batch):
            parts = [self._image_features(img) for img in X[s : s + batch]]
            with threadpool_limits(self.n_threads):
                P = self.classifier_.predict_proba(np.concatenate([p[0] for p in parts]))
            P = P.astype(np.float32)
            start = 0
            for i, (_, seg, k) in enumerate(parts):
                full = np.zeros((k, self.n_labels_), np.float32)
                full[:, cols] = P[start : start + k]
                start += k
                out[s + i] = full[seg].transpose(2, 0, 1)
        out /= np.maximum(out.sum(1, keepdims=True), 1e-12)
        return out

    # ----------------------------------------------------------------- model file
    def _check_state(self, folder, meta, file) -> None:
        """The classifier (or the constant label), its labels and its feature count fit the
        metadata; raise :class:`ModelFileError` naming what does not."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        from objrec.metadata import META_NAME

        where = Path(folder) / META_NAME
        L = self.n_labels_
        clf, const, n_train = self.classifier_, self.constant_, self.n_train_superpixels_
        if not _whole(0)(n_train) or not isinstance(const, int) or isinstance(const, bool):
            raise ModelFileError(
                f"{file}: constant_ and n_train_superpixels_ must be whole numbers, got "
                f"{const!r} and {n_train!r}"
            )
        if clf is None:
            if not 0 <= const < L:
                raise ModelFileError(
                    f"{where}: field 'classes' holds {L} labels, but the constant label in "
                    f"{file.name} is {const}; the model file was edited"
                )
            return
        if not isinstance(clf, HistGradientBoostingClassifier) or const != -1:
            raise ModelFileError(
                f"{file}: not a SLIC segmenter's file (classifier_ a "
                f"HistGradientBoostingClassifier and constant_ -1, or None and a label)"
            )
        labels = np.asarray(getattr(clf, "classes_", []))
        if (
            labels.ndim != 1
            or len(labels) < 2
            or not np.issubdtype(labels.dtype, np.integer)
            or labels.min(initial=0) < 0
            or labels.max(initial=0) >= L
        ):
            top = int(labels.max(initial=0)) if np.issubdtype(labels.dtype, np.integer) else "?"
            raise ModelFileError(
                f"{where}: field 'classes' holds {L} labels, but the classifier in {file.name} "
                f"predicts labels up to {top}; the model file was edited"
            )
        if getattr(clf, "n_features_in_", None) != N_FEATURES:
            raise ModelFileError(
                f"{file}: the classifier takes {getattr(clf, 'n_features_in_', '?')} features, "
                f"a superpixel has {N_FEATURES}"
            )
